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
import json
import math
import os

import numpy as np
import keras
import pytest

from keras_adadim import cli
from keras_adadim import config_checks
from keras_adadim import presets
from keras_adadim import training
from simulated_kill import KillAfter  # tests/simulated_kill.py

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


# ---------------------------------------------------------- training data
def _images(n, seed=0, size=16):
    rng = np.random.default_rng(seed)
    return (rng.random((n, size, size)) * 255).astype("uint8")


def _npz(path, n_train=64, n_test=32, seed=0, labels_train=None):
    rng = np.random.default_rng(seed + 1)
    np.savez(
        path,
        train_images=_images(n_train, seed),
        train_labels=(rng.integers(0, 4, n_train) if labels_train is None
                      else labels_train),
        test_images=_images(n_test, seed + 2),
        test_labels=rng.integers(0, 4, n_test),
    )
    return str(path)


SMALL = dict(epochs=2, batch_size=16, width=4, projector_hidden_dim=16,
             projector_dim=8, alpha_every=1, alpha_batches=1,
             monitor_every=0, eval="none", checkpoint_every_steps=1, seed=0)


def test_fingerprint_follows_the_content(tmp_path):
    from PIL import Image

    from keras_adadim import data as data_lib

    a = data_lib.from_arrays(_images(8), np.arange(8) % 2)
    same = data_lib.from_arrays(_images(8), np.arange(8) % 2)
    assert data_lib.fingerprint(a) == data_lib.fingerprint(same)
    assert data_lib.fingerprint(a)["kind"] == "arrays"
    pixel = _images(8)
    pixel[3, 2, 1] ^= 1
    other_labels = np.arange(8) % 2
    other_labels[0] = 1
    for changed in (data_lib.from_arrays(pixel, np.arange(8) % 2),
                    data_lib.from_arrays(_images(8), other_labels),
                    data_lib.from_arrays(_images(7), np.arange(7) % 2)):
        assert data_lib.fingerprint(changed)["sha256"] != \
            data_lib.fingerprint(a)["sha256"]
    # A folder: paths, sizes and modification times (no decoding).
    root = tmp_path / "folder"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_images(1, seed=i)[0]).save(root / c / f"{i}.png")
    before = data_lib.fingerprint(data_lib.load_dataset(str(root)))
    assert before["kind"] == "files" and before["num_examples"] == 6
    assert data_lib.fingerprint(data_lib.load_dataset(str(root))) == before
    Image.fromarray(_images(1, seed=9)[0]).save(root / "dog" / "1.png")
    edited = data_lib.fingerprint(data_lib.load_dataset(str(root)))
    assert edited["sha256"] != before["sha256"]
    os.remove(root / "cat" / "0.png")
    assert data_lib.fingerprint(data_lib.load_dataset(str(root)))[
        "sha256"] not in (before["sha256"], edited["sha256"])



@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the data-fingerprint check and the resume are backend-independent (the runner's code path is one); in the TF pass")
def test_resume_on_changed_training_data_is_refused(tmp_path):
    """Kill a run on an .npz dataset, replace the file's images (same
    shape, so the steps per epoch agree): the resume is refused naming the
    run directory and the fix, and the run's files are left as they were;
    with the original file back, it resumes."""
    data = tmp_path / "set.npz"
    _npz(data)
    original = data.read_bytes()
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.pretrain(dataset=str(data), output=str(out), verbose=0,
                          log=lambda *a: None, callbacks=[KillAfter(6)],
                          **SMALL)
    config = json.loads((out / "config.json").read_text())
    assert config["data_fingerprint"]["kind"] == "arrays"
    assert config["data_fingerprint"]["num_examples"] == 64
    _npz(data, seed=5)  # other images, same shapes
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()
             and p.name != "run.lock"}
    with pytest.raises(ValueError) as e:
        training.pretrain(dataset=str(data), output=str(out), verbose=0,
                          log=lambda *a: None, **SMALL)
    message = str(e.value)
    assert str(out) in message and "training data" in message
    assert "changed" in message and "new `--output`" in message
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()
            and p.name != "run.lock"} == files
    data.write_bytes(original)
    resumed = training.pretrain(dataset=str(data), output=str(out),
                                verbose=0, log=lambda *a: None, **SMALL)
    assert resumed["resumed_from"] == (1, 2)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the data-fingerprint check and the resume are backend-independent (the runner's code path is one); in the TF pass")
def test_cli_resume_on_changed_data_exits_2(tmp_path, capsys):
    """The same refusal through `adadim pretrain` (error: ..., status 2)
    for a folder dataset whose files changed."""
    from PIL import Image

    root = tmp_path / "folder"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(_images(1, seed=i)[0]).save(root / c / f"{i}.png")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.pretrain(dataset=str(root), output=str(out), verbose=0,
                          log=lambda *a: None, callbacks=[KillAfter(1)],
                          **SMALL)
    Image.fromarray(_images(1, seed=99)[0]).save(root / "a" / "3.png")
    argv = ["pretrain", "--dataset", str(root), "--output", str(out),
            "--verbose", "0"]
    for key, value in SMALL.items():
        flag = "--checkpoint-every" if key == "checkpoint_every_steps" \
            else "--" + key.replace("_", "-")
        argv += [flag, str(value)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: The training data of the run in" in err
    assert str(out) in err


# ---------------------------------------------------------------- bad data
@pytest.fixture
def no_model(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("a model was built for unusable data")

    monkeypatch.setattr(training, "build_model", forbidden)


def test_empty_npz_split_refused_before_training(tmp_path, no_model):
    data = _npz(tmp_path / "empty.npz", n_train=0)
    out = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        training.pretrain(dataset=data, output=str(out), verbose=0,
                          log=lambda *a: None, **SMALL)
    assert "holds no images" in str(e.value) and data in str(e.value)
    assert "train_images" in str(e.value)
    assert not out.exists()


def test_empty_test_split_refused_before_training(tmp_path, no_model):
    data = _npz(tmp_path / "notest.npz", n_test=0)
    with pytest.raises(ValueError, match="test_split`='test'.*holds no "
                       "images.*eval='none'"):
        training.pretrain(dataset=data, output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None,
                          **{**SMALL, "eval": "linear"})
    assert not (tmp_path / "run").exists()


def test_missing_test_split_refused_before_training(tmp_path, no_model):
    data = _npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="test_split`='nope'.*no split "
                       "'nope'.*--test-split.*--eval none --monitor-every 0"):
        training.pretrain(dataset=data, output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None,
                          **{**SMALL, "test_split": "nope", "eval": "linear"})
    assert not (tmp_path / "run").exists()


def test_knn_k_larger_than_the_probe_split_refused(tmp_path, no_model):
    data = _npz(tmp_path / "d.npz", n_train=40)
    with pytest.raises(ValueError, match="knn_k`=41 .*only 40 images.*"
                       "--knn-k"):
        training.pretrain(dataset=data, output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None,
                          **{**SMALL, "eval": "all", "knn_k": 41})
    assert not (tmp_path / "run").exists()


def test_few_labels_above_the_smallest_class_refused(tmp_path, no_model):
    labels = np.array([0] * 30 + [1] * 30 + [2] * 4)  # class 2: 4 images
    data = _npz(tmp_path / "d.npz", labels_train=labels)
    with pytest.raises(ValueError, match="few_labels`=5 .*class 2 .*only 4 "
                       "labelled images.*--few-labels"):
        training.pretrain(dataset=data, output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None,
                          **{**SMALL, "eval": "linear", "few_labels": 5})
    assert not (tmp_path / "run").exists()


def test_label_counts_of_each_source(tmp_path):
    from keras_adadim import data as data_lib

    labels = np.array([0] * 30 + [1] * 30 + [3] * 4)
    npz = data_lib.load_dataset(_npz(tmp_path / "d.npz",
                                     labels_train=labels))
    assert npz.label_counts().tolist() == [30, 30, 0, 4]
    digits = data_lib.load_dataset("digits", split="test")
    assert digits.label_counts().sum() == digits.num_examples


def test_batch_larger_than_the_data_refused(tmp_path, no_model):
    data = _npz(tmp_path / "small.npz", n_train=10)
    with pytest.raises(ValueError, match="10 images, fewer than "
                       "`batch_size`=16.*batch_size <= 10"):
        training.pretrain(dataset=data, output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None, **SMALL)


def test_empty_folder_refused(tmp_path, no_model):
    root = tmp_path / "folder"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    with pytest.raises(ValueError, match="No images"):
        training.pretrain(dataset=str(root), output=str(tmp_path / "run"),
                          verbose=0, log=lambda *a: None, **SMALL)
    assert not (tmp_path / "run").exists()


def test_empty_arrays_refused_by_the_pipeline():
    from keras_adadim import data as data_lib

    empty = data_lib.from_arrays(np.zeros((0, 8, 8), "uint8"),
                                 np.zeros(0, "int64"), name="nothing")
    with pytest.raises(ValueError, match="'nothing'.*is empty"):
        data_lib.pretraining_dataset(empty, batch_size=2)


@pytest.mark.parametrize("n_labels", [9, 11, 0])
def test_from_arrays_length_mismatch_names_the_source(n_labels):
    from keras_adadim import data as data_lib

    with pytest.raises(ValueError) as e:
        data_lib.from_arrays(_images(10), np.zeros(n_labels, "int64"),
                             name="mine")
    message = str(e.value)
    assert "from_arrays('mine')" in message
    assert f"{n_labels} labels for 10 images" in message
    assert "one label per image" in message


def test_npz_length_mismatch_names_the_file_and_arrays(tmp_path, no_model):
    data = _npz(tmp_path / "mismatch.npz",
                labels_train=np.zeros(63, "int64"))
    out = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        training.pretrain(dataset=data, output=str(out), verbose=0,
                          log=lambda *a: None, **SMALL)
    message = str(e.value)
    assert data in message and "train_labels for train_images" in message
    assert "63 labels for 64 images" in message
    assert "InvalidArgument" not in message
    assert not out.exists()
