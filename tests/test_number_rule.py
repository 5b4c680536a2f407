"""One rule for numbers (``_validation.number_rule``): the methods'
constructor arguments (``check_number``) and the run settings
(``config_checks``: ``presets.resolve``, ``training.pretrain`` and the
command line) are checked by it, so they give the same verdict on a value;
each words its refusal for its caller (the argument; the setting / flag)."""

import math

import keras
import numpy as np
import pytest

from keras_adadim import config_checks
from keras_adadim._validation import NumberRefused
from keras_adadim._validation import check_number
from keras_adadim._validation import number_rule
from keras_adadim.methods import get_method

INF, NAN = math.inf, math.nan


# ------------------------------------------------------------ refusals
@pytest.mark.parametrize("value", [INF, -INF, NAN, np.float32("inf"),
                                   np.float64("nan")])
@pytest.mark.parametrize("bounds", [
    dict(low=0), dict(low=0, low_open=True), dict(high=1),
    dict(low=0, high=1), dict(), dict(low=1, integer=True)])
def test_non_finite_refused_whatever_the_range(value, bounds):
    """inf / -inf / NaN are refused even by a range open above (they used
    to pass `check_number(name, inf, 0)`), the message naming the
    argument, its range and the value."""
    with pytest.raises(NumberRefused) as e:
        number_rule(value, **bounds)
    assert e.value.reason == "finite"
    with pytest.raises(ValueError, match=r"^`lr` must be .*got (inf|-inf|"
                       r"nan), which is not a finite number\.$|^`lr` must be"
                       r" a finite number; got"):
        check_number("lr", value, **bounds)


def test_non_finite_message_keeps_the_range():
    with pytest.raises(ValueError, match=r"^`temperature` must be > 0; got "
                       r"inf, which is not a finite number\.$"):
        check_number("temperature", INF, 0, low_open=True)
    with pytest.raises(ValueError, match=r"^`alpha` must be in \[0\.0, "
                       r"1\.0\]; got nan"):
        check_number("alpha", NAN, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^`x` must be a finite number; "
                       r"got -inf\.$"):
        check_number("x", -INF)


@pytest.mark.parametrize("value", [True, False, np.True_, np.array(False),
                                   "warm", "0.5", "", None, [1.0], 3 + 0j,
                                   np.array([1.0, 2.0])])
@pytest.mark.parametrize("integer", [False, True])
def test_bool_text_and_other_non_numbers_refused(value, integer):
    with pytest.raises(NumberRefused) as e:
        number_rule(value, 0, integer=integer)
    assert e.value.reason == "type"
    kind = "an integer" if integer else "a number"
    with pytest.raises(ValueError) as e:
        check_number("size", value, 0, integer=integer)
    assert str(e.value) == f"`size` must be {kind}; got {value!r}."


# -------------------------------------------------------------- ranges
@pytest.mark.parametrize("low,high,low_open,high_open,inside,outside", [
    (0, None, False, False, [0, 0.0, 1e-12, 5], [-1e-12, -3]),
    (0, None, True, False, [1e-12, 7], [0, 0.0, -1]),
    (0, 1, False, False, [0, 1, 1.0, 0.5], [-1e-9, 1 + 1e-9]),
    (0, 1, False, True, [0, 0.999], [1, 1.0, 1.5, -0.1]),
    (0, 1, True, True, [0.5], [0, 1]),
    (None, 1, False, True, [-5, 0.99], [1, 2]),
])
def test_closed_ends_accept_the_bound_open_ends_refuse_it(
        low, high, low_open, high_open, inside, outside):
    kw = dict(low_open=low_open, high_open=high_open)
    for value in inside:
        got = number_rule(value, low, high, **kw)
        assert got == value and type(got) is float
        assert check_number("x", value, low, high, **kw) == value
    for value in outside:
        with pytest.raises(NumberRefused) as e:
            number_rule(value, low, high, **kw)
        assert e.value.reason == "range"
        with pytest.raises(ValueError, match=rf"^`x` must be .*; got "
                           rf"{value}\.$"):
            check_number("x", value, low, high, **kw)


def test_range_messages_name_the_argument_the_range_and_the_value():
    cases = [(dict(low=0), -1, "`a` must be >= 0; got -1."),
             (dict(low=0, low_open=True), 0, "`a` must be > 0; got 0."),
             (dict(high=1, high_open=True), 1, "`a` must be < 1; got 1."),
             (dict(low=0.0, high=1.0, high_open=True), 1.0,
              "`a` must be in [0.0, 1.0); got 1.0."),
             (dict(low=1, integer=True), 0, "`a` must be >= 1; got 0.")]
    for bounds, value, message in cases:
        with pytest.raises(ValueError) as e:
            check_number("a", value, **bounds)
        assert str(e.value) == message


def test_integers_where_integer_is_asked():
    """Whole floats (2.0) are integers (returned as int), for both callers,
    as before; 2.5 is not; large ints stay exact."""
    for value in (2, 2.0, np.int64(2), np.float32(2.0)):
        got = number_rule(value, 1, integer=True)
        assert got == 2 and type(got) is int
        assert check_number("size", value, 1, integer=True) == 2
    assert config_checks.check("epochs", 2.0) == 2
    with pytest.raises(ValueError, match=r"^`size` must be an integer; got "
                       r"2\.5\.$"):
        check_number("size", 2.5, 1, integer=True)
    with pytest.raises(config_checks.SettingError,
                       match="must be an integer >= 1; got 2.5"):
        config_checks.check("epochs", 2.5)
    assert number_rule(2**60 + 1, 0, integer=True) == 2**60 + 1
    # Not integer: ints become floats.
    assert type(number_rule(3, 0)) is float


def test_numbers_of_numpy_and_the_backend_accepted():
    """NumPy numbers and a one-element array or tensor (any backend) are
    numbers, as `check_number` took them before."""
    assert check_number("t", np.float32(0.5), 0) == 0.5
    assert check_number("t", np.array(0.25), 0) == 0.25
    assert check_number("t", keras.ops.convert_to_tensor(0.5), 0) == 0.5
    assert check_number("q", keras.ops.convert_to_tensor(3), 1,
                        integer=True) == 3


# ------------------------------- one verdict for settings and arguments
VALUES = [0, 1, 2, -1, 0.5, 2.0, 2.5, 1.0, 0.999, 1e-9, 2**32 - 1, 2**32,
          INF, -INF, NAN, True, False, "1", "warm", np.float32(0.5),
          np.int64(3), np.True_]
NUMERIC = [k for k, r in config_checks.RULES.items()
           if r.kind in ("int", "float") and not r.choices]


def _verdict(call):
    try:
        return ("ok", call())
    except (ValueError, NumberRefused):  # SettingError is a ValueError
        return ("refused", None)


@pytest.mark.parametrize("key", NUMERIC)
def test_a_setting_and_check_number_agree(key):
    """Each numeric run setting, and `check_number` called with the same
    range, accept and refuse the same values and return the same number."""
    rule = config_checks.RULES[key]
    for value in VALUES:
        setting = _verdict(lambda: config_checks.check(key, value))
        argument = _verdict(lambda: check_number(
            key, value, rule.low, rule.high, low_open=rule.low_open,
            high_open=rule.high_open, integer=rule.kind == "int"))
        assert setting == argument, (key, value, setting, argument)


@pytest.mark.parametrize("value", VALUES)
def test_the_settings_and_the_method_arguments_agree(value):
    """Settings that are also AdaDim's constructor arguments (gamma,
    temperature, alpha): the same verdict on the same value."""
    for key in ("gamma", "temperature", "alpha"):
        setting = _verdict(lambda: config_checks.check(key, value))
        argument = _verdict(lambda: get_method("adadim", **{key: value}))
        assert setting[0] == argument[0], (key, value, setting, argument)


def test_config_messages_name_the_setting_and_the_fix():
    """The settings' wording is kept: the setting or flag, what it accepts
    (a finite number), the value, the fix."""
    with pytest.raises(config_checks.SettingError) as e:
        config_checks.parse_text("learning_rate", "inf")
    assert str(e.value) == "must be a finite number > 0; got 'inf'"
    with pytest.raises(ValueError) as e:
        config_checks.validate({"batch_size": 1, "weight_decay": INF})
    message = str(e.value)
    assert "`batch_size` must be an integer >= 2; got 1" in message
    assert "--batch-size" in message and "Fix: set batch_size" in message
    assert "`weight_decay` must be a finite number >= 0; got inf" in message
    assert "--weight-decay" in message
