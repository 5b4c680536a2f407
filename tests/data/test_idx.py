"""The MNIST-format IDX reader (keras_adadim.data.idx) and its hooks in
load_dataset: a folder of IDX files by path, and "fashion_mnist" from the
system folder. Every file is written here, small, into tmp_path; nothing
touches the network (TensorFlow Datasets' data_dir is an empty temporary
folder, and its download is replaced where it would run)."""

import gzip
import os

import numpy as np
import pytest
from idx_bytes import idx_bytes as _idx_bytes  # tests/idx_bytes.py

from keras_adadim.data import resolve_scheme
from keras_adadim.data.sources import tfds as tfds_source
from keras_adadim.data import idx
from keras_adadim.data import load_dataset
from keras_adadim.data import pretraining_dataset
from keras_adadim.data.idx import IdxFormatError
from keras_adadim.data.idx import load_idx_split
from keras_adadim.data.idx import read_idx

def _write(path, data, gz=None):
    """Write IDX ``data`` (an array, or raw bytes) to ``path``, gzipped when
    the name ends in .gz (or when ``gz`` says so)."""
    raw = data if isinstance(data, bytes) else _idx_bytes(data)
    if gz if gz is not None else str(path).endswith(".gz"):
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)
    return str(path)


def _mnist_folder(folder, n_train=12, n_test=5, h=7, w=5, gz=True,
                  prefix="", test_name="t10k", seed=0, classes=10):
    """A folder of the four IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for split, on_disk, n in (("train", "train", n_train),
                              ("test", test_name, n_test)):
        images = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
        labels = (np.arange(n) % classes).astype(np.uint8)
        _write(os.path.join(folder, f"{prefix}{on_disk}-images-idx3-ubyte"
                            f"{ext}"), images)
        _write(os.path.join(folder, f"{prefix}{on_disk}-labels-idx1-ubyte"
                            f"{ext}"), labels)
        arrays[split] = (images, labels)
    return arrays


def _as_arrays(data):
    xs, ys = zip(*data.dataset.as_numpy_iterator())
    return np.stack(xs), np.array(ys)


# ---- read_idx ------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,shape", [
    ("uint8", (4, 3, 2)), ("uint8", (9,)), ("int8", (2, 5)),
    ("int16", (3, 2)), ("int32", (6,)), ("float32", (2, 2, 2)),
    ("float64", (3,)),
])
def test_read_idx_round_trips_every_type(tmp_path, gz, dtype, shape):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = _write(tmp_path / ("a.idx" + (".gz" if gz else "")), array)
    got = read_idx(path)
    assert got.shape == shape and got.dtype == np.dtype(dtype)
    assert got.dtype.isnative  # converted from the file's big-endian
    np.testing.assert_array_equal(got, array)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    # Gzipped data under a plain name, and plain data under a .gz name.
    a = _write(tmp_path / "x-idx3-ubyte", array, gz=True)
    b = _write(tmp_path / "y-idx3-ubyte.gz", array, gz=False)
    np.testing.assert_array_equal(read_idx(a), array)
    np.testing.assert_array_equal(read_idx(b), array)


def _bad(tmp_path, name, raw, gz=False):
    return _write(tmp_path / name, raw, gz=gz)


@pytest.mark.parametrize("case,pattern", [
    ("html", r"not an IDX file.*magic number 0x3c68746d.*HTML"),
    ("magic", r"not an IDX file.*0x00000f03"),
    ("empty", r"too short for an IDX header"),
    ("header", r"truncated in its header"),
    ("data", r"truncated: its header promises shape \(10, 4, 4\)"),
    ("trailing", r"3 bytes beyond"),
    ("gzip", r"damaged gzip data"),
])
def test_read_idx_bad_files_name_the_file_and_the_fix(tmp_path, case,
                                                      pattern):
    good = _idx_bytes(np.zeros((10, 4, 4), np.uint8))
    raw, gz = {
        "html": (b"<html><body>Not found</body></html>", False),
        "magic": (b"\x00\x00\x0f\x03" + good[4:], False),
        "empty": (b"", False),
        "header": (good[:9], False),
        "data": (good[:-7], False),
        "trailing": (good + b"abc", False),
        "gzip": (gzip.compress(good)[:-6], None),
    }[case]
    if case == "gzip":
        path = str(tmp_path / "train-images-idx3-ubyte.gz")
        with open(path, "wb") as f:
            f.write(raw)
    else:
        path = _bad(tmp_path, "train-images-idx3-ubyte", raw, gz=gz)
    with pytest.raises(IdxFormatError, match=pattern) as err:
        read_idx(path)
    assert path in str(err.value)
    assert "again" in str(err.value)  # says what to do
    assert isinstance(err.value, ValueError)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")


# ---- folders of IDX files ------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_split_reads_what_was_written(tmp_path, gz):
    written = _mnist_folder(tmp_path / "digits-ish", gz=gz, classes=4)
    for split, alias in (("train", "train"), ("test", "t10k")):
        for name in (split, alias):
            got = load_idx_split(tmp_path / "digits-ish", name)
            images, labels = written[split]
            assert got["images"].shape == images.shape + (1,)
            assert got["images"].dtype == np.uint8
            np.testing.assert_array_equal(got["images"][..., 0], images)
            np.testing.assert_array_equal(got["labels"], labels)
            assert got["labels"].dtype == np.int64
            assert got["split"] == split and got["num_classes"] == 4
            assert got["class_names"] is None


def test_slices_like_tensorflow_datasets(tmp_path):
    written = _mnist_folder(tmp_path / "d", n_train=20)
    images, labels = written["train"]
    for split, sl in (("train[:5]", slice(None, 5)),
                      ("train[-4:]", slice(-4, None)),
                      ("train[25%:50%]", slice(5, 10)),
                      ("train[3:-3]", slice(3, -3))):
        got = load_idx_split(tmp_path / "d", split)
        np.testing.assert_array_equal(got["images"][..., 0], images[sl])
        np.testing.assert_array_equal(got["labels"], labels[sl])
    with pytest.raises(ValueError, match="bounds must be integers"):
        load_idx_split(tmp_path / "d", "train[a:b]")


def test_count_mismatch_names_both_files(tmp_path):
    folder = tmp_path / "d"
    _mnist_folder(folder)
    labels = _write(folder / "train-labels-idx1-ubyte.gz",
                    np.zeros(11, np.uint8))
    with pytest.raises(IdxFormatError) as err:
        load_idx_split(folder, "train")
    msg = str(err.value)
    assert "12 images" in msg and "11 labels" in msg
    assert str(folder / "train-images-idx3-ubyte.gz") in msg and labels in msg
    assert "Download both files" in msg
    # The other split is untouched.
    assert len(load_idx_split(folder, "test")["labels"]) == 5


def test_missing_labels_or_images_file_names_the_expected_file(tmp_path):
    folder = tmp_path / "d"
    _mnist_folder(folder)
    os.remove(folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as err:
        load_idx_split(folder, "test")
    msg = str(err.value)
    assert str(folder / "t10k-labels-idx1-ubyte[.gz]") + " is missing" in msg
    assert "Put the labels file" in msg
    os.remove(folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(FileNotFoundError,
                       match=r"train-images-idx3-ubyte\[\.gz\] is missing"):
        load_idx_split(folder, "train")


def test_swapped_files_and_missing_split_and_empty_folder(tmp_path):
    folder = tmp_path / "d"
    _mnist_folder(folder)
    # A labels file under the images name.
    _write(folder / "t10k-images-idx3-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(IdxFormatError, match="labels file under an images"):
        load_idx_split(folder, "test")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        os.remove(folder / f)
    with pytest.raises(FileNotFoundError, match="has no test split: no "
                       r"t10k-images-idx3-ubyte\[\.gz\]"):
        load_idx_split(folder, "test")
    with pytest.raises(ValueError, match="splits 'train' and 'test'"):
        load_idx_split(folder, "val")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="No MNIST-format IDX files"):
        load_idx_split(empty, "train")


def test_load_dataset_by_path_plain_and_gz(tmp_path):
    plain = _mnist_folder(tmp_path / "plain", gz=False, seed=3)
    packed = _mnist_folder(tmp_path / "fashion-mnist", gz=True, seed=4)
    for folder, written in ((tmp_path / "plain", plain),
                            (tmp_path / "fashion-mnist", packed)):
        for split in ("train", "test"):
            data = load_dataset(str(folder), split)
            assert data.source == f"idx:{folder}"
            assert data.image_shape == (7, 5, 1) and data.split == split
            assert data.num_examples == len(written[split][0])
            x, y = _as_arrays(data)
            np.testing.assert_array_equal(x[..., 0], written[split][0])
            np.testing.assert_array_equal(y, written[split][1])
    # A folder named like Fashion-MNIST gets its class names.
    data = load_dataset(tmp_path / "fashion-mnist", "train[:4]")
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10
    assert data.split == "train[:4]" and data.num_examples == 4
    assert load_dataset(str(tmp_path / "plain")).class_names is None


def test_emnist_names_prefixes_and_orientation(tmp_path):
    folder = tmp_path / "gzip"
    balanced = _mnist_folder(folder, prefix="emnist-balanced-",
                             test_name="test", classes=47, n_train=50)
    data = load_dataset(str(folder), "test")
    assert data.name == "emnist-balanced" and data.num_classes == 47
    x, y = _as_arrays(data)
    # Stored transposed (column-major); read back upright.
    assert data.image_shape == (5, 7, 1)
    np.testing.assert_array_equal(
        x[..., 0], balanced["test"][0].transpose(0, 2, 1))
    np.testing.assert_array_equal(y, balanced["test"][1])
    # Two sets in one folder: pick one by prefix.
    _mnist_folder(folder, prefix="emnist-digits-", test_name="test",
                  n_train=3, seed=1)
    with pytest.raises(ValueError, match="several datasets.*"
                       "'emnist-balanced', 'emnist-digits'"):
        load_dataset(str(folder))
    data = load_dataset(str(folder / "emnist-digits"), "train")
    assert data.num_examples == 3 and data.name == "emnist-digits"


def test_pretraining_views_of_a_28px_gray_idx_set(tmp_path):
    _mnist_folder(tmp_path / "d", n_train=8, h=28, w=28)
    data = load_dataset(str(tmp_path / "d"))
    assert resolve_scheme(data, "auto") == "asymmetric"
    (x1, x2), y = next(iter(pretraining_dataset(data, batch_size=4)))
    assert tuple(x1.shape) == (4, 28, 28, 1) == tuple(x2.shape)
    assert y.shape == (4,)


# ---- "fashion_mnist" by name ---------------------------------------------


@pytest.fixture
def system_dir(tmp_path, monkeypatch):
    """An empty system datasets folder and an empty tfds data_dir."""
    root = tmp_path / "system"
    root.mkdir()
    monkeypatch.setenv(idx.SYSTEM_DATASETS_ENV, str(root))
    return root


def test_fashion_mnist_from_the_system_folder(tmp_path, system_dir):
    written = _mnist_folder(system_dir / "fashion-mnist", h=28, w=28,
                            n_train=20, n_test=10, seed=5)
    tfds_dir = str(tmp_path / "tfds")  # nothing prepared there
    for split in ("train", "test"):
        data = load_dataset("fashion_mnist", split, data_dir=tfds_dir,
                            download=False)
        assert data.name == "fashion_mnist"
        assert data.source == f"idx:{system_dir / 'fashion-mnist'}"
        assert data.image_shape == (28, 28, 1) and data.num_classes == 10
        assert data.class_names[-1] == "Ankle boot"
        x, y = _as_arrays(data)
        np.testing.assert_array_equal(x[..., 0], written[split][0])
        np.testing.assert_array_equal(y, written[split][1])
    assert load_dataset("Fashion-MNIST", "test[:3]", data_dir=tfds_dir,
                        download=False).num_examples == 3


def test_system_folder_constant_is_used_without_the_variable(tmp_path,
                                                             monkeypatch):
    monkeypatch.delenv(idx.SYSTEM_DATASETS_ENV, raising=False)
    monkeypatch.setattr(idx, "SYSTEM_DATASETS_DIR", str(tmp_path / "sys"))
    _mnist_folder(tmp_path / "sys" / "mnist", n_test=4)
    data = load_dataset("mnist", "test", data_dir=str(tmp_path / "tfds"),
                        download=False)
    assert data.num_examples == 4 and data.class_names[3] == "3"
    assert data.source == f"idx:{tmp_path / 'sys' / 'mnist'}"


def test_fashion_mnist_missing_gives_both_ways(tmp_path, system_dir):
    tfds_dir = str(tmp_path / "tfds")
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion_mnist", data_dir=tfds_dir, download=False)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "/usr/share/datasets/fashion-mnist" in msg
    assert str(system_dir / "fashion-mnist") in msg  # where it looked
    assert "tfds.builder('fashion_mnist'" in msg and tfds_dir in msg
    assert "download=False" in msg


def test_fashion_mnist_failed_download_gives_both_ways(tmp_path, system_dir,
                                                       monkeypatch):
    calls = []

    def no_network(tfds_name, split, data_dir, download, channels,
                   name=None):
        calls.append((tfds_name, download))
        try:
            raise OSError("Temporary failure in name resolution")
        except OSError as e:
            raise FileNotFoundError("not prepared") from e

    monkeypatch.setattr(tfds_source, "load_tfds", no_network)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    msg = str(err.value)
    assert calls == [("fashion_mnist", True)]
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "download_and_prepare" in msg
    assert "OSError: Temporary failure in name resolution" in msg


def test_prepared_tensorflow_datasets_copy_comes_first(tmp_path, system_dir,
                                                       monkeypatch):
    _mnist_folder(system_dir / "fashion-mnist")
    tfds_dir = tmp_path / "tfds"
    # A prepared copy as TensorFlow Datasets lays it out, as far as its
    # builder and is_prepared() read it; the load itself is replaced.
    variant = tfds_dir / "fashion_mnist" / "3.0.1"
    variant.mkdir(parents=True)
    (variant / "dataset_info.json").write_text(
        '{"name": "fashion_mnist", "version": "3.0.1"}')
    (variant / "features.json").write_text("{}")
    calls = []
    monkeypatch.setattr(
        tfds_source, "load_tfds",
        lambda *args, **kw: calls.append((args, kw)) or "from tfds",
    )
    assert load_dataset("fashion_mnist", data_dir=str(tfds_dir)) == \
        "from tfds"
    (args, kw), = calls
    assert args[0] == "fashion_mnist" and args[3] is False  # no download
    assert kw == {"name": "fashion_mnist"}


def test_presets_know_fashion_mnist():
    from keras_adadim.presets import resolve

    config = resolve("digits", "fashion_mnist")
    assert config["train_split"] == "train" and config["test_split"] == "test"
    assert config["image_size"] is None and config["augmentation"] == "auto"
