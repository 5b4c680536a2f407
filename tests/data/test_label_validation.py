"""Labels outside 0..num_classes-1 (or negative) are refused when the data
is loaded, with the dataset's name or file, before any training (they used
to give the online probe a loss of exactly 0 and fail only after training)."""

import numpy as np
import pytest

from keras_adadim import cli
from keras_adadim import data as data_lib

IMAGES = np.zeros((6, 8, 8), np.uint8)


@pytest.mark.parametrize("labels,class_names,bad", [
    ([0, 1, 2, 0, 1, 5], ["a", "b", "c"], "5 at index 5"),
    ([0, 1, 2, 0, 1, 3], ["a", "b", "c"], "3 at index 5"),
    ([0, 1, -1, 0, 1, 2], None, "-1 at index 2"),
    ([0, 1, -7, 0, 1, 2], None, "-7 at index 2"),
    ([-2] * 6, None, "-2 at index 0"),
    ([0, 1, 2, 0, -1, 1], ["a", "b", "c"], "-1 at index 4"),
])
def test_from_arrays_refuses_out_of_range_labels(labels, class_names, bad):
    with pytest.raises(ValueError, match="label") as e:
        data_lib.from_arrays(IMAGES, labels, name="mine",
                             class_names=class_names)
    assert "'mine'" in str(e.value) and bad in str(e.value)


@pytest.mark.parametrize("labels,class_names,num_classes", [
    ([0, 1, 2, 0, 1, 2], None, 3),
    ([0, 0, 0, 0, 0, 0], ["a", "b", "c"], 3),
    ([-1] * 6, None, None),  # no labels at all
    (None, None, None),
])
def test_from_arrays_accepts_valid_labels(labels, class_names, num_classes):
    ds = data_lib.from_arrays(IMAGES, labels, class_names=class_names)
    assert ds.num_classes == num_classes


def _npz(path, train_labels, test_labels=(0, 1, 0, 1, 0, 1)):
    np.savez(path, train_images=IMAGES, train_labels=np.array(train_labels),
             test_images=IMAGES, test_labels=np.array(test_labels))
    return str(path)


@pytest.mark.parametrize("train_labels", [
    [0, 1, -1, 0, 1, 1], [[0], [1], [-3], [0], [1], [1]]])
def test_npz_with_negative_labels_refused_naming_the_file(tmp_path,
                                                         train_labels):
    path = _npz(tmp_path / "mine.npz", train_labels)
    with pytest.raises(ValueError, match="not in 0..1") as e:
        data_lib.load_dataset(path, split="train")
    assert path in str(e.value)


def test_pretrain_refuses_bad_labels_before_training(tmp_path, capsys):
    path = _npz(tmp_path / "mine.npz", [0, 1, -1, 0, 1, 1])
    out = tmp_path / "run"
    status = cli.main(["pretrain", "--dataset", path, "--output", str(out),
                       "--epochs", "1", "--verbose", "0"])
    assert status == 2
    err = capsys.readouterr().err
    assert "mine.npz" in err and "-1 at index 2" in err
    # Nothing trained, nothing left behind (not even the run's lock file).
    assert not out.exists()
