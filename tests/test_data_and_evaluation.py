"""The digits pipeline, the linear probe and the main job (`adadim pretrain`)."""

import json

import numpy as np
import pytest

from keras_adadim.data import digits_views
from keras_adadim.data import load_digits
from keras_adadim.data import two_view_dataset
from keras_adadim.evaluation import linear_probe
from keras_adadim.evaluation import per_class_subset


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_load_digits_is_real_and_stratified(digits):
    assert digits["train_images"].shape == (1437, 8, 8, 1)
    assert digits["test_images"].shape == (360, 8, 8, 1)
    assert digits["train_images"].dtype == np.float32
    assert 0.0 <= digits["train_images"].min() and digits["train_images"].max() <= 1.0
    counts = np.bincount(digits["test_labels"])
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 each


def test_two_view_dataset_batches_and_views(digits):
    ds = two_view_dataset(
        digits["train_images"], digits["train_labels"], digits_views(),
        batch_size=100, seed=1,
    )
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 1437 // 100  # drop_remainder: no partial batch
    (v1, v2), y = batches[0]
    assert v1.shape == v2.shape == (100, 8, 8, 1)
    assert not np.allclose(v1, v2)  # two different augmentations
    # The two views of an image are closer than views of different images.
    flat1, flat2 = v1.reshape(100, -1), v2.reshape(100, -1)
    d = ((flat1[:, None] - flat2[None]) ** 2).sum(-1)
    off_diagonal = d[~np.eye(100, dtype=bool)]
    assert np.mean(np.diag(d)) < 0.95 * np.mean(off_diagonal)
    # Reproducible from the seed.
    again = next(two_view_dataset(
        digits["train_images"], digits["train_labels"], digits_views(),
        batch_size=100, seed=1,
    ).as_numpy_iterator())
    np.testing.assert_array_equal(again[0][0], v1)
    unlabeled = next(two_view_dataset(digits["train_images"], batch_size=8).as_numpy_iterator())
    assert len(unlabeled) == 1 and len(unlabeled[0]) == 2  # ((x1, x2),)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": np.zeros((10, 8, 8, 1), "uint8")}, "float"),
        ({"images": np.full((10, 8, 8, 1), np.nan, "float32")}, "NaN"),
        ({"labels": np.zeros(3, "int32")}, "labels"),
        ({"batch_size": 1}, ">= 2"),
        ({"batch_size": 64}, "larger than the dataset"),
    ],
)
def test_two_view_dataset_bad_input(kwargs, match):
    args = {"images": np.zeros((10, 8, 8, 1), "float32"), **kwargs}
    with pytest.raises(ValueError, match=match):
        two_view_dataset(**args)


def test_linear_probe_separable_and_chance(rng):
    """Perfectly separable features reach ~100%; pure noise stays near
    chance (independent ground truth for the probe)."""
    y = np.repeat(np.arange(4), 50)
    centres = rng.standard_normal((4, 16)) * 5
    x = centres[y] + rng.standard_normal((200, 16))
    acc = linear_probe(x[::2], y[::2], x[1::2], y[1::2], epochs=30)
    assert acc > 0.95
    noise = rng.standard_normal((200, 16))
    acc = linear_probe(noise[::2], y[::2], noise[1::2], y[1::2], epochs=30)
    assert acc < 0.5


def test_per_class_subset(digits):
    idx = per_class_subset(digits["train_labels"], 10, seed=0)
    assert len(idx) == 100
    assert np.all(np.bincount(digits["train_labels"][idx]) == 10)
    with pytest.raises(ValueError, match="fewer than"):
        per_class_subset(digits["train_labels"], 1000)


def test_main_command_prints_the_comparison(tmp_path, capsys):
    """The README's main job (`adadim pretrain` with its defaults), at a tiny
    size, so that it never rots: alpha updates, then linear-probe accuracy of
    the AdaDim encoder, a random-init encoder and raw pixels, with all labels
    and with 10 per class."""
    from keras_adadim import cli

    assert cli.main(
        ["pretrain", "--epochs", "2", "--alpha-every", "1", "--probe-epochs",
         "3", "--width", "4", "--monitor-every", "1", "--verbose", "2",
         "--output", str(tmp_path / "run")]
    ) == 0
    out = capsys.readouterr().out
    assert "AlphaUpdater: epoch 0: alpha =" in out
    assert "AlphaUpdater: epoch 1: alpha =" in out
    table = out[out.index("Top-1 accuracy"):].splitlines()
    assert table[1].split() == ["features", "linear", "10/class"]
    rows = {line[:22].strip(): [float(v) for v in line[22:].split()]
            for line in table[2:5]}
    assert set(rows) == {"AdaDim encoder", "random-init encoder", "raw pixels"}
    assert all(len(v) == 2 and all(0 <= a <= 1 for a in v)
               for v in rows.values())
    results = json.load(open(tmp_path / "run" / "results.json"))
    assert results["evaluation"]["raw pixels"]["all_labels"][
        "linear_top1"] == pytest.approx(rows["raw pixels"][0], abs=5e-4)
    assert (tmp_path / "run" / "training_dynamics.png").stat().st_size > 10_000
