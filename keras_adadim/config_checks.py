"""The rules every run setting must satisfy, as data, in one place.

``RULES`` maps a configuration key (``keras_adadim.presets.DEFAULTS``) to
what it accepts. Both front doors read it, so they cannot drift apart:

- the command line: ``adadim pretrain --epochs 0`` is refused while the
  flags are parsed (``cli.py`` builds each flag's argparse type with
  ``parse_text``; the error names the flag, ``--epochs``);
- the library: ``presets.resolve(...)`` and ``training.pretrain(...)`` call
  ``validate(config)`` before any data is loaded or any model built; the
  ``ValueError`` names the setting (``epochs``) and the fix.

Numbers are checked by ``_validation.number_rule``, the rule the methods'
constructor arguments are checked by (``_validation.check_number``): one
range rule (type, finite, ends open or closed), worded here for settings.

Nothing here imports Keras or a backend (the command line starts fast).
The names of backbones, projectors, optimizers, ... are repeated here
because their modules import Keras; ``tests/test_run_validation.py``
checks that the lists agree.
"""

import dataclasses
import difflib
import numbers

from keras_adadim._validation import NumberRefused
from keras_adadim._validation import number_rule


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one setting accepts.

    kind: ``"int"``, ``"float"``, ``"choice"`` (one of ``choices``),
        ``"text"`` (a non-empty string), ``"bool"`` or ``"alpha"``
        (``"adaptive"``, ``"cosine"``, ``"linear"`` or a number in [0, 1]).
    low, high: the range of a number (inclusive unless ``*_open``).
    choices: the accepted values of a ``choice`` (or of an ``int``).
    nullable: ``None`` is accepted (the setting's "automatic" value).
    """

    kind: str
    low: object = None
    high: object = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nullable: bool = False


BACKBONE_NAMES = ("small_cnn", "resnet18", "resnet34", "resnet50",
                  "vit_tiny", "vit_small")  # models.backbones.BACKBONES
STEM_NAMES = ("auto", "cifar", "imagenet")  # models.resnet.STEMS
PROJECTOR_NAMES = ("small", "baseline", "expanded",
                   "simclr")  # "small" + models.heads.PROJECTORS
OPTIMIZER_NAMES = ("lars", "sgd", "adamw")  # optimizers.OPTIMIZER_NAMES
AUGMENTATION_NAMES = ("auto", "asymmetric", "ressl", "symmetric",
                      "digits")  # "auto" + data.augment.SCHEME_NAMES
AUGMENT_ON_NAMES = ("host", "device", "auto")  # where the views are made
# The methods that train on multi-crop's local views (their `multi_crop`).
MULTI_CROP_METHODS = ("swav", "dino")
SCHEDULE_NAMES = ("constant", "cosine")
EVAL_NAMES = ("none", "linear", "knn", "all")
ALPHA_SCHEDULES = ("adaptive", "cosine", "linear")

_INT = "int"
_FLOAT = "float"

RULES = {
    "dataset": Rule("text"),
    "data_dir": Rule("text", nullable=True),
    "train_split": Rule("text"),
    "test_split": Rule("text"),
    "image_size": Rule(_INT, 2, nullable=True),
    "channels": Rule(_INT, choices=(1, 3), nullable=True),
    "backbone": Rule("choice", choices=BACKBONE_NAMES),
    "width_multiplier": Rule(_FLOAT, 0, low_open=True),
    "width": Rule(_INT, 1),
    "stem": Rule("choice", choices=STEM_NAMES),
    "projector": Rule("choice", choices=PROJECTOR_NAMES),
    "projector_dim": Rule(_INT, 1),
    "projector_hidden_dim": Rule(_INT, 1),
    "predictor": Rule("bool"),
    "predictor_hidden_dim": Rule(_INT, 1, nullable=True),
    "queue_size": Rule(_INT, 1),
    "num_prototypes": Rule(_INT, 1, nullable=True),
    "momentum_encoder": Rule(_FLOAT, 0, 1, nullable=True),
    "temperature": Rule(_FLOAT, 0, low_open=True),
    # beta = gamma * alpha; gamma >= 1 would outweigh the objective and a
    # negative one flips the sign of the mutual-information term.
    "gamma": Rule(_FLOAT, 0, 1, high_open=True),
    "alpha": Rule("alpha"),
    "alpha_every": Rule(_INT, 1),
    "alpha_batches": Rule(_INT, 1),
    "augmentation": Rule("choice", choices=AUGMENTATION_NAMES),
    "augment_on": Rule("choice", choices=AUGMENT_ON_NAMES),
    "local_crops": Rule(_INT, 0),
    "local_crop_size": Rule(_INT, 2, nullable=True),
    "epochs": Rule(_INT, 1),
    "batch_size": Rule(_INT, 2),  # the losses need batch statistics
    "optimizer": Rule("choice", choices=OPTIMIZER_NAMES),
    "learning_rate": Rule(_FLOAT, 0, low_open=True),
    "scale_lr_by_batch": Rule("bool"),
    "schedule": Rule("choice", choices=SCHEDULE_NAMES),
    "weight_decay": Rule(_FLOAT, 0),
    "warmup_epochs": Rule(_INT, 0),
    "sgd_momentum": Rule(_FLOAT, 0, 1),
    "online_probe": Rule("bool"),
    "probe_learning_rate": Rule(_FLOAT, 0, low_open=True),
    "monitor_every": Rule(_INT, 0),
    "monitor_samples": Rule(_INT, 2),
    "eval": Rule("choice", choices=EVAL_NAMES),
    "eval_baselines": Rule("bool"),
    "probe_epochs": Rule(_INT, 1),
    "few_labels": Rule(_INT, 0),
    "knn_k": Rule(_INT, 1),
    "checkpoint_every_steps": Rule(_INT, 0),
    "devices": Rule(_INT, 1),
    "steps_per_execution": Rule(_INT, 1),
    "seed": Rule(_INT, 0, 2**32 - 1),  # NumPy seeds are 32-bit
}


class SettingError(ValueError):
    """A setting's value is refused. ``str()`` is what it accepts and what
    it got ("must be an integer >= 1; got 0"), without the setting's name:
    the command line prefixes the flag, ``validate`` the key."""


def describe(rule):
    """What a rule accepts, e.g. ``"an integer >= 1"``."""
    if rule.kind == _INT:
        if rule.choices:
            return "one of " + ", ".join(map(str, rule.choices))
        if rule.high is None:
            return f"an integer >= {rule.low}"
        return f"an integer in {rule.low}..{rule.high}"
    if rule.kind == _FLOAT:
        parts = []
        if rule.low is not None:
            parts.append(f"{'>' if rule.low_open else '>='} {rule.low}")
        if rule.high is not None:
            parts.append(f"{'<' if rule.high_open else '<='} {rule.high}")
        return "a finite number " + " and ".join(parts)
    if rule.kind == "choice":
        return "one of " + ", ".join(rule.choices)
    if rule.kind == "alpha":
        return ("'adaptive', 'cosine', 'linear' or a number in [0, 1]")
    if rule.kind == "bool":
        return "True or False"
    return "non-empty text"


def _refuse(rule, value):
    message = f"must be {describe(rule)}; got {value!r}"
    if rule.kind == "choice" and isinstance(value, str):
        close = difflib.get_close_matches(value.lower(), rule.choices, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    raise SettingError(message)


def _number(rule, value, low, high):
    """``value`` as an ``int`` (kind ``int``) or ``float`` if the shared
    number rule (``_validation.number_rule``) accepts it in [low, high]
    (ends open as ``rule`` says), else ``SettingError``."""
    try:
        return number_rule(value, low, high, low_open=rule.low_open,
                           high_open=rule.high_open,
                           integer=rule.kind == _INT)
    except NumberRefused:
        _refuse(rule, value)


def check(key, value):
    """``value`` if setting ``key`` accepts it (as the library passes it:
    ``int``, ``float``, ``str``, ``bool``, ``None``), else ``SettingError``.
    Integral floats (``2.0``) are accepted as integers and returned as
    ``int``; ``True``/``False``, text and non-finite numbers are not
    numbers here (``_validation.number_rule``)."""
    rule = RULES[key]
    if value is None:
        if rule.nullable:
            return None
        _refuse(rule, value)
    if rule.kind == "bool":
        if isinstance(value, bool) or (isinstance(value, numbers.Integral)
                                       and value in (0, 1)):
            return bool(value)
        _refuse(rule, value)
    if rule.kind == "text":
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, str):
            raise SettingError("must not be empty")
        _refuse(rule, value)
    if rule.kind == "choice":
        if isinstance(value, str) and not value.strip():
            raise SettingError("must not be empty")
        if value not in rule.choices:
            _refuse(rule, value)
        return value
    if rule.kind == "alpha":
        if isinstance(value, str) and value in ALPHA_SCHEDULES:
            return value
        return _number(rule, value, 0.0, 1.0)  # as methods.adadim's alpha
    number = _number(rule, value, rule.low, rule.high)
    if rule.choices and number not in rule.choices:
        _refuse(rule, value)
    return number


def parse_text(key, text):
    """The value of setting ``key`` typed as ``text`` on the command line
    (``"0.5"``, ``"adaptive"``), checked by ``check``; ``SettingError``
    (whose message quotes the text typed) if it is refused."""
    rule = RULES[key]
    value = text
    if rule.kind == _INT:
        try:
            value = int(text)
        except ValueError:
            _refuse(rule, text)
    elif rule.kind == _FLOAT:
        try:
            value = float(text)
        except ValueError:
            _refuse(rule, text)
    elif rule.kind == "alpha" and text not in ALPHA_SCHEDULES:
        try:
            value = float(text)
        except ValueError:
            _refuse(rule, text)
    try:
        return check(key, value)
    except SettingError as e:
        if "must not be empty" in str(e):
            raise
        _refuse(rule, text)  # quote what was typed, not its conversion


def _example(key, rule):
    """A value that ``key`` accepts, for the error's fix."""
    if rule.kind == _INT:
        if rule.choices:
            return rule.choices[-1]
        return rule.low
    if rule.kind == _FLOAT:
        if rule.low is None:
            return 0.0
        return rule.low if not rule.low_open else None
    if rule.kind == "choice":
        return rule.choices[0]
    return None


def validate(config):
    """Check every setting of ``config`` that ``RULES`` knows; raise one
    ``ValueError`` listing each refused setting with what it accepts and
    the command-line flag that sets it. Returns ``config`` with integral
    floats turned into ints (``epochs=2.0`` -> ``2``)."""
    problems = []
    out = dict(config)
    for key, rule in RULES.items():
        if key not in config:
            continue
        try:
            out[key] = check(key, config[key])
        except SettingError as e:
            example = _example(key, rule)
            eg = "" if example is None else f", e.g. {key}={example!r}"
            flag = "--" + key.replace("_", "-")
            if key == "checkpoint_every_steps":
                flag = "--checkpoint-every"
            problems.append(
                f"`{key}` {e}. Fix: set {key} to {describe(rule)}{eg} "
                f"(command line: {flag})."
            )
    if problems:
        raise ValueError(
            "Invalid run setting" + ("s" if len(problems) > 1 else "")
            + ": " + " ".join(problems)
        )
    return out


__all__ = ["RULES", "Rule", "SettingError", "check", "describe",
           "parse_text", "validate"]
