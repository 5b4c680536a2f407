"""Every example runs at a tiny size, so none rots."""

import os
import runpy
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, args, monkeypatch):
    path = os.path.join(ROOT, "examples", name)
    monkeypatch.setattr(sys, "argv", [path, *args])
    return runpy.run_path(path, run_name="__main__")


def test_pretrain_digits_example(tmp_path, monkeypatch, capsys):
    run_example(
        "pretrain_digits.py",
        ["--epochs", "1", "--alpha-every", "1", "--width", "4",
         "--output", str(tmp_path)],
        monkeypatch,
    )
    assert (tmp_path / "adadim.keras").exists()
    assert (tmp_path / "encoder.keras").exists()
    assert "linear-probe accuracy" in capsys.readouterr().out


def _tiny_cifar100(data_dir, n_train=64, n_test=32):
    """A tiny CIFAR-100 prepared by tensorflow-datasets' own CIFAR-100
    builder code path: its DatasetInfo (features, version) with random
    images, so `load_dataset("cifar100", data_dir=...)` reads it offline."""
    import numpy as np
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import cifar

    with tfds.core.registered.skip_registration():

        class TinyCifar100(cifar.Cifar100):
            name = "cifar100"

            def _split_generators(self, dl_manager):
                return {"train": self._gen(0, n_train),
                        "test": self._gen(1, n_test)}

            def _gen(self, seed, n):
                rng = np.random.default_rng(seed)
                for i in range(n):
                    yield i, {
                        "id": f"{seed}_{i}",
                        "image": rng.integers(0, 256, (32, 32, 3), "uint8"),
                        "label": int(i % 4),
                        "coarse_label": int(i % 2),
                    }

    TinyCifar100(data_dir=str(data_dir)).download_and_prepare()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the runner's code path is the same on every backend (the model and losses are tested on all three); one run, in the TF pass")
def test_pretrain_cifar100_example(tmp_path, monkeypatch, capsys):
    _tiny_cifar100(tmp_path / "tfds")
    out = tmp_path / "run"
    result = run_example(
        "pretrain_cifar100.py",
        ["--backbone", "resnet18", "--width-multiplier", "0.125",
         "--epochs", "1", "--batch-size", "32", "--probe-epochs", "2",
         "--data-dir", str(tmp_path / "tfds"), "--output", str(out)],
        monkeypatch,
    )["main"]
    assert (out / "encoder.keras").exists()
    config = __import__("json").load(open(out / "config.json"))
    # The baseline preset (Table 7) with the flags on top.
    assert config["optimizer"] == "lars" and config["augmentation"] == \
        "asymmetric" and config["projector_dim"] == 2048
    assert config["backbone"] == "resnet18" and config["epochs"] == 1
    assert "AdaDim encoder" in capsys.readouterr().out
    del result


def test_pretrain_image_folder_example(tmp_path, monkeypatch, capsys):
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for label in ("cats", "dogs"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                PIL.Image.fromarray(
                    rng.integers(0, 256, (20, 20, 3), "uint8")
                ).save(folder / f"{i}.png")
    out = tmp_path / "run"
    run_example(
        "pretrain_image_folder.py",
        [str(tmp_path / "images"), "--image-size", "16", "--backbone",
         "small_cnn", "--epochs", "1", "--batch-size", "16",
         "--probe-epochs", "2", "--output", str(out)],
        monkeypatch,
    )
    assert (out / "encoder.keras").exists() and (out / "results.json").exists()
    assert "AdaDim encoder" in capsys.readouterr().out


def test_linear_eval_and_finetune_examples(monkeypatch, capsys):
    report = run_example(
        "linear_eval.py",
        ["adadim-smallcnn-digits", "--dataset", "digits", "--probe-epochs",
         "2", "--few-labels", "2"],
        monkeypatch,
    )["main"]
    del report
    out = capsys.readouterr().out
    assert "kNN" in out
    run_example(
        "finetune_few_labels.py",
        ["adadim-smallcnn-digits", "--labels-per-class", "2", "--epochs",
         "2", "--probe-epochs", "2"],
        monkeypatch,
    )
    out = capsys.readouterr().out
    assert "fine-tuned (pre-trained)" in out and "random init" in out


def test_custom_method_example(tmp_path, capsys):
    """The README's write-your-own-method example trains, logs its terms,
    and its model saves and loads with the method's settings."""
    import keras

    out = str(tmp_path / "align_uniform.keras")
    ns = runpy.run_path(os.path.join(ROOT, "examples", "custom_method.py"))
    model, history = ns["main"](["--epochs", "2", "--width", "4", "--output", out])
    printed = capsys.readouterr().out
    assert "alignment" in printed and "linear-probe accuracy" in printed
    assert set(history) >= {"loss", "alignment", "uniformity", "probe_accuracy"}
    assert history["loss"][-1] < history["loss"][0]
    loaded = keras.models.load_model(out)
    assert type(loaded.method).__name__ == "AlignUniform"
    assert loaded.method.lambda_ == 1.0
