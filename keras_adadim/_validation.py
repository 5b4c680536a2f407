"""Input checks shared by losses, metrics and models.

Each check raises a ``ValueError`` that names the problem and the fix, so that
users never see a silent NaN or a stack trace from deep inside a backend.
Shape checks are static (they run while tracing, too); value checks (NaN/Inf)
run only on concrete tensors, see ``_backend.is_concrete``.
"""

import contextlib
import math
import numbers
import threading

# Keras (and the backend) are imported inside the tensor checks, not here:
# ``config_checks`` (which the command line imports) uses this module's
# number rule, and ``adadim --help`` must start without a backend.

_CHECKS = threading.local()

# Statistics are always computed in float32, whatever the compute dtype of
# the network (mixed_float16 / mixed_bfloat16 policies).
STAT_DTYPE = "float32"


def as_matrix(x, name="x", min_rows=1):
    """Return ``x`` as a float32 matrix (n, k) after checking it.

    Raises ValueError for a wrong rank, a non-floating dtype, too few rows or
    (on concrete values) NaN/Inf entries.
    """
    import keras
    from keras import ops

    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if len(x.shape) != 2:
        raise ValueError(
            f"`{name}` must be a 2-D matrix (batch, features); got shape "
            f"{tuple(x.shape)}. Flatten or pool the features first, e.g. "
            "`keras.layers.GlobalAveragePooling2D()`."
        )
    if not ("float" in dtype or dtype.startswith("int") or dtype == "bool"):
        raise ValueError(f"`{name}` must be numeric; got dtype {dtype}.")
    n = x.shape[0]
    if n is not None and n < min_rows:
        raise ValueError(
            f"`{name}` has {n} row(s) but this statistic needs at least "
            f"{min_rows} (variance and covariance are undefined for a batch "
            f"of {n}). Use a batch size of at least {min_rows}, or "
            "`drop_remainder=True` in your `tf.data` pipeline."
        )
    x = ops.cast(x, STAT_DTYPE)
    check_finite(x, name)
    return x


@contextlib.contextmanager
def no_value_checks():
    """Within: :func:`check_finite` checks nothing. For the training step,
    whose losses run eagerly on PyTorch: there each check reads the device
    (a host sync per loss call, which stalls a GPU's queue), while the
    model's bad-batch guard already reports a non-finite loss. Per thread,
    nestable."""
    before = getattr(_CHECKS, "off", False)
    _CHECKS.off = True
    try:
        yield
    finally:
        _CHECKS.off = before


def check_finite(x, name="x"):
    """Raise ValueError if a concrete tensor holds NaN or Inf (not within
    :func:`no_value_checks`).

    The test is on the *result*: a concrete input used inside a traced
    function (jax.jit, tf.function) yields a traced flag, which is skipped.
    """
    if getattr(_CHECKS, "off", False):
        return
    from keras import ops

    from keras_adadim._backend import is_concrete

    all_finite = ops.all(ops.isfinite(x))
    if is_concrete(all_finite) and not bool(all_finite):
        raise ValueError(
            f"`{name}` contains NaN or Inf values. Check the input data "
            "(e.g. division by zero during normalisation) or lower the "
            "learning rate if the values come from a diverged model."
        )


def check_same_shape(a, b, name_a, name_b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape; got "
            f"{tuple(a.shape)} and {tuple(b.shape)}. Both views of a batch "
            "must hold the same images in the same order."
        )


def check_same_rows(a, b, name_a, name_b):
    if a.shape[0] is not None and b.shape[0] is not None:
        if a.shape[0] != b.shape[0]:
            raise ValueError(
                f"`{name_a}` and `{name_b}` must have the same number of rows "
                f"(one per sample); got {a.shape[0]} and {b.shape[0]}."
            )


# ------------------------------------------------------------------ numbers
# The one range rule for numbers given as settings: the methods' constructor
# arguments (``check_number``) and the run settings (``config_checks``, the
# command line's and ``presets.resolve``'s) both apply ``number_rule``, each
# with its own wording, so the two cannot disagree on a value.


class NumberRefused(ValueError):
    """``number_rule`` refused a value. ``reason`` is ``"type"`` (not a
    number: text, ``True`` / ``False``, ``None``, ...; or not a whole number
    where an integer is needed), ``"finite"`` (``inf``, ``-inf``, NaN) or
    ``"range"`` (a finite number outside the range)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _real(value):
    """``value`` as an ``int`` (integer types) or a ``float``, or None if it
    is not a real number. Python and NumPy numbers, and one-element arrays
    or tensors of an integer or floating dtype, are; text (``"0.5"``),
    ``True`` / ``False`` (NumPy's too) and ``None`` are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    dtype = str(getattr(value, "dtype", ""))  # NumPy, TF, PyTorch, JAX
    if "bool" in dtype or not ("int" in dtype or "float" in dtype):
        return None
    try:
        return int(value) if "int" in dtype else float(value)
    except (TypeError, ValueError, OverflowError):  # more than one element
        return None


def number_rule(value, low=None, high=None, *, low_open=False,
                high_open=False, integer=False):
    """``value`` as a ``float`` (an ``int`` when ``integer``) if it is a
    finite real number in the range, else ``NumberRefused``.

    The range is ``low`` to ``high`` (either None: unbounded), each end
    included unless ``low_open`` / ``high_open``. Where ``integer``, whole
    floats (``2.0``) are accepted and returned as ``int``; ``2.5`` is not.
    ``inf``, ``-inf`` and NaN are refused whatever the range (reason
    ``"finite"``); ``True`` / ``False`` are not numbers here.
    """
    number = _real(value)
    if number is None:
        raise NumberRefused("type")
    if isinstance(number, float) and not math.isfinite(number):
        raise NumberRefused("finite")
    if integer:
        if isinstance(number, float):
            if not number.is_integer():
                raise NumberRefused("type")
            number = int(number)
    else:
        try:
            number = float(number)
        except OverflowError:  # an int beyond the largest float
            raise NumberRefused("finite") from None
    if low is not None and (number <= low if low_open else number < low):
        raise NumberRefused("range")
    if high is not None and (number >= high if high_open else number > high):
        raise NumberRefused("range")
    return number


def check_number(name, value, low=None, high=None, *, low_open=False,
                 high_open=False, integer=False):
    """A constructor argument as ``float`` (``int`` when ``integer``) if
    ``number_rule`` accepts it, else ``ValueError`` naming it, the range
    and the value: "`temperature` must be > 0; got -1." ("... got inf,
    which is not a finite number." for inf / NaN; "`size` must be an
    integer; got 2.5." for a value of the wrong type)."""
    try:
        return number_rule(value, low, high, low_open=low_open,
                           high_open=high_open, integer=integer)
    except NumberRefused as refused:
        reason = refused.reason
    kind = "an integer" if integer else "a number"
    if reason == "type":
        raise ValueError(f"`{name}` must be {kind}; got {value!r}.") from None
    if low is None and high is None:  # only a non-finite value is refused
        raise ValueError(f"`{name}` must be a finite number; got {value}.") \
            from None
    if high is None:
        bound = f"{'>' if low_open else '>='} {low}"
    elif low is None:
        bound = f"{'<' if high_open else '<='} {high}"
    else:
        bound = (f"in {'(' if low_open else '['}{low}, {high}"
                 f"{')' if high_open else ']'}")
    if reason == "finite":
        raise ValueError(f"`{name}` must be {bound}; got {value}, which is "
                         "not a finite number.") from None
    raise ValueError(f"`{name}` must be {bound}; got {value}.") from None
