"""A run's inputs are checked before any work (issue 13).

- Settings: ``presets.resolve(...)`` and ``training.pretrain(...)`` from
  Python refuse what ``adadim pretrain`` refuses at parse time, from one
  table (``config_checks.RULES``), naming the setting and the fix, before
  any data is loaded or model built, writing nothing.
- Training data: a fingerprint recorded when a run starts; a resume on
  other data (a changed .npz file) is refused naming the run directory.
- Bad data: an empty training set, and label / image arrays of different
  lengths, give a clear error naming the source before training.
"""

import importlib
import math

import pytest

from keras_adadim import cli
from keras_adadim import config_checks
from keras_adadim import presets
from keras_adadim import training

# ------------------------------------------------------------- settings
# key -> values the library refuses (as Python values).
BAD = {
    "epochs": [0, -1, 1.5, "2", True, None],
    "batch_size": [1, 0, -8],
    "learning_rate": [-1, 0, math.nan, math.inf, "1e-3"],
    "probe_learning_rate": [0, -0.1],
    "knn_k": [0, -5],
    "probe_epochs": [0],
    "few_labels": [-1],
    "eval": ["foo", "ALL", None],
    "backbone": ["resnet19", "", "ResNet18"],
    "optimizer": ["adam", "SGD"],
    "projector": ["big"],
    "augmentation": ["simclr", "  "],
    "schedule": ["step"],
    "stem": ["cifar10"],
    "gamma": [2.0, 1.0, -1e-4, math.nan],
    "momentum_encoder": [1.5, -0.1],
    "temperature": [0, -0.5],
    "seed": [-1, 2**32, 0.5],
    "channels": [2, 0],
    "image_size": [1, 0],
    "alpha": [1.5, -0.1, "adaptivee", math.nan],
    "monitor_samples": [1],
    "monitor_every": [-1],
    "weight_decay": [-1e-6, math.inf],
    "warmup_epochs": [-1],
    "sgd_momentum": [1.5],
    "width": [0],
    "width_multiplier": [0, -1],
    "projector_dim": [0],
    "projector_hidden_dim": [0],
    "predictor_hidden_dim": [0],
    "queue_size": [0],
    "alpha_every": [0],
    "alpha_batches": [0],
    "checkpoint_every_steps": [-1],
    "online_probe": ["yes"],
    "train_split": [""],
}
BAD_CASES = [pytest.param(k, v, id=f"{k}={v!r}")
             for k, values in BAD.items() for v in values]
# Methods whose settings these are (others refuse them as unused).
_METHOD_OF = {"queue_size": "nnclr", "momentum_encoder": "byol",
              "predictor_hidden_dim": "byol"}


def _message_ok(message, key):
    assert f"`{key}`" in message, message
    assert "Fix: set" in message and "command line: --" in message, message


# None is an unset override for resolve / pretrain(**overrides) (the
# preset's value is kept); in a configuration dict it is checked.
BAD_CASES_SET = [c for c in BAD_CASES if c.values[1] is not None]
BAD_CASES_NONE = [c for c in BAD_CASES if c.values[1] is None]


@pytest.mark.parametrize("key,value", BAD_CASES_SET)
def test_resolve_refuses_like_the_cli(key, value):
    extra = {"method": _METHOD_OF[key]} if key in _METHOD_OF else {}
    with pytest.raises(ValueError) as e:
        presets.resolve(**extra, **{key: value})
    _message_ok(str(e.value), key)


@pytest.fixture
def no_work(monkeypatch):
    """Loading data or building a model fails the test."""
    from keras_adadim import data as data_lib

    def forbidden(*a, **k):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(data_lib, "load_dataset", forbidden)
    monkeypatch.setattr(training, "build_model", forbidden)


@pytest.mark.parametrize("key,value", BAD_CASES_SET)
def test_pretrain_refuses_before_any_work(key, value, tmp_path, no_work):
    out = tmp_path / "run"
    extra = {"method": _METHOD_OF[key]} if key in _METHOD_OF else {}
    with pytest.raises(ValueError) as e:
        training.pretrain(output=str(out), verbose=0, log=lambda *a: None,
                          **extra, **{key: value})
    _message_ok(str(e.value), key)
    assert not out.exists()


@pytest.mark.parametrize("key,value", BAD_CASES_SET + BAD_CASES_NONE)
def test_pretrain_with_a_config_dict_is_checked(key, value, tmp_path,
                                                no_work):
    """A configuration passed whole (not through resolve) is checked too,
    None values included (a setting that has no automatic value)."""
    config = presets.resolve(**({"method": _METHOD_OF[key]}
                                if key in _METHOD_OF else {}))
    config[key] = value
    with pytest.raises(ValueError) as e:
        training.pretrain(config, output=str(tmp_path / "run"), verbose=0)
    _message_ok(str(e.value), key)
    assert not (tmp_path / "run").exists()


def test_overrides_on_a_config_and_unknown_method(tmp_path, no_work):
    config = presets.resolve()
    with pytest.raises(ValueError, match="`epochs` must be an integer >= 1"):
        training.pretrain(config, output=str(tmp_path / "a"), epochs=0)
    with pytest.raises(ValueError, match="Unknown method 'simclrr'.*simclr"):
        training.pretrain({**config, "method": "simclrr"},
                          output=str(tmp_path / "b"))
    # Several bad settings: one error listing all of them.
    with pytest.raises(ValueError) as e:
        presets.resolve(epochs=0, knn_k=0, eval="foo")
    for key in ("epochs", "knn_k", "eval"):
        assert f"`{key}`" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_good_edges_and_integral_floats_accepted():
    config = presets.resolve(epochs=2.0, batch_size=2, gamma=0,
                             momentum_encoder=1, alpha=0, seed=2**32 - 1,
                             knn_k=1, probe_epochs=1, channels=3,
                             image_size=2, backbone="resnet18",
                             augmentation="ressl", schedule="cosine")
    assert config["epochs"] == 2 and isinstance(config["epochs"], int)
    assert config["alpha"] == 0.0


def test_every_preset_and_table9_row_is_valid():
    for preset in presets.PRESETS:
        presets.resolve(preset)
    for dataset, preset in presets.table9_rows():
        presets.resolve(preset, dataset)


def test_rules_cover_every_setting_and_the_library_names():
    """The table knows every configuration key (but the two resolve
    checks itself), and its name lists are the library's."""
    from keras_adadim import optimizers
    from keras_adadim.data import augment
    from keras_adadim.models import backbones
    from keras_adadim.models import heads
    resnet = importlib.import_module("keras_adadim.models.resnet")

    assert set(config_checks.RULES) == set(presets.DEFAULTS) - {
        "method", "preset"}
    assert set(config_checks.BACKBONE_NAMES) == set(backbones.BACKBONES)
    assert set(config_checks.PROJECTOR_NAMES) == {"small", *heads.PROJECTORS}
    assert set(config_checks.OPTIMIZER_NAMES) == set(
        optimizers.OPTIMIZER_NAMES)
    assert set(config_checks.AUGMENTATION_NAMES) == {
        "auto", *augment.SCHEME_NAMES}
    assert set(config_checks.STEM_NAMES) == set(resnet.STEMS)


TEXTS = ["0", "1", "2", "-1", "0.5", "1.5", "1e-4", "0.999", "nan", "inf",
         "abc", "", " ", "none", "all", "adaptive", "cosine", "small_cnn",
         "resnet18", "lars", "small", "ressl", "auto", "cifar", str(2**32)]


@pytest.mark.parametrize("flag,key,kind", [
    pytest.param(f, k, t, id=f) for f, k, t, _ in cli._PRETRAIN_FLAGS
    if k != "method"])
def test_cli_and_api_agree_on_every_value(flag, key, kind):
    """The CLI's argparse type and the library's check accept and refuse
    the same values (from one table), with the same message."""
    import argparse

    for text in TEXTS:
        try:
            got = kind(text)
        except argparse.ArgumentTypeError as e:
            cli_error = str(e)
        else:
            cli_error = None
        try:
            value = config_checks.parse_text(key, text)
        except config_checks.SettingError as e:
            assert cli_error == str(e), (text, cli_error, str(e))
            continue
        assert cli_error is None, (text, cli_error)
        assert got == value
        # The value the CLI passes on is accepted by validate as is.
        assert config_checks.validate({key: got})[key] == got


def test_cli_choice_flags_refused_at_parse_time(capsys):
    for flag, value in (("--backbone", "resnet19"), ("--optimizer", "adam"),
                        ("--projector", "big"), ("--schedule", "step"),
                        ("--augmentation", "simclr"), ("--stem", "x")):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["pretrain", f"{flag}={value}"])
        err = capsys.readouterr().err
        assert f"argument {flag}: must be one of" in err, err
        assert repr(value) in err
