"""Input checks shared by losses, metrics and models.

Each check raises a ``ValueError`` that names the problem and the fix, so that
users never see a silent NaN or a stack trace from deep inside a backend.
Shape checks are static (they run while tracing, too); value checks (NaN/Inf)
run only on concrete tensors, see ``_backend.is_concrete``.
"""

import contextlib
import threading

import keras
from keras import ops

from keras_adadim._backend import is_concrete

_CHECKS = threading.local()

# Statistics are always computed in float32, whatever the compute dtype of
# the network (mixed_float16 / mixed_bfloat16 policies).
STAT_DTYPE = "float32"


def as_matrix(x, name="x", min_rows=1):
    """Return ``x`` as a float32 matrix (n, k) after checking it.

    Raises ValueError for a wrong rank, a non-floating dtype, too few rows or
    (on concrete values) NaN/Inf entries.
    """
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


def check_number(name, value, low=None, high=None, *, low_open=False,
                 high_open=False, integer=False):
    """A constructor argument as ``float`` (``int`` when ``integer``) if it
    is a number in the range, else ``ValueError`` naming it and the range:
    "`temperature` must be > 0; got -1." (NaN is outside every range;
    ``True`` / ``False`` are not numbers here)."""
    if isinstance(value, bool):
        number = None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if integer and number is not None and not number.is_integer():
        number = None
    kind = "an integer" if integer else "a number"
    if number is None:
        raise ValueError(f"`{name}` must be {kind}; got {value!r}.")
    if high is None:
        bound = f"{'>' if low_open else '>='} {low}"
    elif low is None:
        bound = f"{'<' if high_open else '<='} {high}"
    else:
        bound = (f"in {'(' if low_open else '['}{low}, {high}"
                 f"{')' if high_open else ']'}")
    inside = number == number and (  # NaN compares unequal
        low is None or (number > low if low_open else number >= low)) and (
        high is None or (number < high if high_open else number <= high))
    if not inside:
        raise ValueError(f"`{name}` must be {bound}; got {value}.")
    return int(number) if integer else number
