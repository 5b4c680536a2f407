"""Every dataset file ``load_dataset`` reads from disk — ``.npz`` files
(by path, and a MedMNIST name under ``data_dir``), folders of images (by
path, Tiny ImageNet's ``val_annotations.txt`` layout, and a folder dataset
name under ``data_dir``) and folders of MNIST-format IDX files (by path,
an EMNIST prefix, and Fashion-MNIST from the system folder) — that is
missing, empty, truncated, of the wrong format or of the wrong shape gives,
from ``load_dataset`` itself (before any training):

* a ``ValueError`` (``IdxFormatError`` for IDX files), or
  ``FileNotFoundError`` for a missing file, and never NumPy's, zipfile's,
  PIL's or TensorFlow's own error;
* a message naming the offending file (and, where one helps, the fix);
* and nothing on disk changed (every file's bytes and mtime, and the set of
  files and folders, are the same before and after).

Every file is written here, tiny, into tmp_path; no network, no training.
"""

import gzip
import io
import os
import re
import zipfile

import numpy as np
import pytest
from idx_bytes import idx_bytes as _idx_bytes  # tests/idx_bytes.py
from disk_snapshot import snapshot  # tests/disk_snapshot.py

from keras_adadim.data import idx
from keras_adadim.data import load_dataset

# The only error types a bad dataset file may raise.
CLEAN_TYPES = (ValueError, FileNotFoundError, idx.IdxFormatError)


# ---- helpers -------------------------------------------------------------


def assert_clean_error(root, call, named, expected=ValueError, fix=None):
    """``call()`` raises ``expected`` (exactly one of CLEAN_TYPES, or a
    subclass the library defines) whose message contains ``named`` (and
    matches the regex ``fix``), and the tree under ``root`` is unchanged.
    Returns the message."""
    before = snapshot(root)
    with pytest.raises(Exception) as info:
        call()
    err = info.value
    assert type(err) in CLEAN_TYPES and isinstance(err, expected), (
        f"raw {type(err).__module__}.{type(err).__name__}: {err}")
    message = str(err)
    assert str(named) in message, f"{named} not named in: {message}"
    if fix is not None:
        assert re.search(fix, message, re.IGNORECASE), message
    assert snapshot(root) == before, "the files on disk changed"
    return message


def test_snapshot_sees_changes(tmp_path):
    """The snapshot notices a rewrite with the same bytes (mtime), an edit,
    a new file and a new folder (no vacuous pass)."""
    f = tmp_path / "a.bin"
    f.write_bytes(b"x")
    before = snapshot(tmp_path)
    os.utime(f, ns=(0, 0))
    assert snapshot(tmp_path) != before
    before = snapshot(tmp_path)
    f.write_bytes(b"y")
    os.utime(f, ns=(0, 0))
    assert snapshot(tmp_path) != before
    before = snapshot(tmp_path)
    (tmp_path / "d").mkdir()
    assert snapshot(tmp_path) != before


# ---- .npz ------------------------------------------------------------------


def _good_arrays():
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "train_labels": np.array([[0], [1], [2], [0], [1], [2]], np.uint8),
        "test_images": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        "test_labels": np.array([[0], [1], [2]], np.uint8),
    }


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _with(**changes):
    arrays = _good_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return _npz_bytes(arrays)


def _zip_of(**members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _object_npz():
    buf = io.BytesIO()
    images = np.empty(6, dtype=object)
    images[:] = [np.zeros((4, 4), np.uint8)] * 6
    np.savez(buf, train_images=images, train_labels=np.zeros(6, np.uint8))
    return buf.getvalue()


def _bad_crc_npz():
    raw = bytearray(_npz_bytes(_good_arrays()))
    # Flip a byte inside the first member's data: the zip opens, reading
    # the array fails its CRC check.
    raw[100] ^= 0xFF
    return bytes(raw)


GOOD_NPZ = _npz_bytes(_good_arrays())

# case -> (file content (None: no file), split, regex of the fix or None)
NPZ_CASES = {
    "missing": (None, "train", None),
    "empty": (b"", "train", "download or write it again"),
    "truncated": (GOOD_NPZ[: len(GOOD_NPZ) // 2], "train",
                  "truncated.*again"),
    "damaged member (bad CRC)": (_bad_crc_npz(), "train", "damaged"),
    "text": (b"train_images,train_labels\n1,2\n", "train", "again"),
    "html error page": (b"<html><body>404</body></html>", "train", None),
    "a .npy array": (_npy_bytes(np.zeros((6, 4, 4), np.uint8)), "train",
                     "not a .npz archive"),
    "zip of something else": (_zip_of(**{"hello.txt": "hi"}), "train",
                              "MedMNIST layout"),
    "no arrays": (_npz_bytes({}), "train", "MedMNIST layout"),
    "other arrays": (_npz_bytes({"x": np.zeros((2, 4, 4), np.uint8),
                                 "y": np.zeros(2, np.uint8)}), "train",
                     "MedMNIST layout"),
    "no such split": (GOOD_NPZ, "val", "MedMNIST layout"),
    "pickled object images": (_object_npz(), "train", "Python objects"),
    "images rank 1": (_with(train_images=np.zeros(6, np.uint8)), "train",
                      r"\(n, H, W\)"),
    "images rank 2": (_with(train_images=np.zeros((6, 16), np.uint8)),
                      "train", r"\(n, H, W\)"),
    "images rank 5": (_with(train_images=np.zeros((6, 4, 4, 1, 1),
                                                  np.uint8)), "train",
                      r"\(n, H, W\)"),
    "images with 2 channels": (
        _with(train_images=np.zeros((6, 4, 4, 2), np.uint8)), "train",
        r"C in \(1, 3\)"),
    "images of zero height": (
        _with(train_images=np.zeros((6, 0, 4), np.uint8)), "train",
        "no images"),
    "no images": (_with(train_images=np.zeros((0, 4, 4), np.uint8),
                        train_labels=np.zeros((0,), np.uint8)), "train",
                  "no images"),
    "images of strings": (_with(train_images=np.full((6, 4, 4), "a")),
                          "train", "dtype"),
    "images float out of range": (
        _with(train_images=np.full((6, 4, 4), 3.0, np.float32)), "train",
        r"\[0, 1\]"),
    "images NaN": (_with(train_images=np.full((6, 4, 4), np.nan)), "train",
                   "NaN"),
    "images negative integers": (
        _with(train_images=np.full((6, 4, 4), -5, np.int16)), "train",
        "0..255"),
    "labels too short": (_with(train_labels=np.zeros(5, np.uint8)), "train",
                         "one label per image"),
    "labels too long": (_with(train_labels=np.zeros((7, 1), np.uint8)),
                        "train", "one label per image"),
    "labels rank 3": (_with(train_labels=np.zeros((6, 1, 1), np.uint8)),
                      "train", r"shape \(6,\)"),
    "labels scalar": (_with(train_labels=np.array(3, np.uint8)), "train",
                      "one label per image"),
    "labels (n, 0)": (_with(train_labels=np.zeros((6, 0), np.uint8)),
                      "train", "one label per image"),
    "labels not integers": (_with(train_labels=np.full(6, 0.5)), "train",
                            "integer class indices"),
    "labels NaN": (_with(train_labels=np.full(6, np.nan)), "train",
                   "integer class indices"),
    "labels strings": (_with(train_labels=np.array(list("abcabc"))),
                       "train", "integer class indices"),
    "labels negative": (_with(train_labels=np.array([0, 1, -3, 0, 1, 2])),
                        "train", "class indices 0..C-1"),
    "labels pickled objects": (
        _with(train_labels=np.array([0, 1, None, 0, 1, 2], dtype=object)),
        "train", "Python objects"),
}


def _npz_case(tmp_path, case):
    content, split, fix = NPZ_CASES[case]
    path = tmp_path / "data.npz"
    if content is not None:
        path.write_bytes(content)
    return path, split, fix


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_bad_npz_named(tmp_path, case):
    path, split, fix = _npz_case(tmp_path, case)
    expected = FileNotFoundError if case == "missing" else ValueError
    assert_clean_error(tmp_path, lambda: load_dataset(str(path), split),
                       path, expected, fix)


@pytest.mark.parametrize("case", ["empty", "truncated", "labels strings",
                                  "images rank 5"])
def test_bad_medmnist_npz_by_name_named(tmp_path, case):
    """A MedMNIST name reads <data_dir>/<name>.npz: the same errors."""
    content, split, fix = NPZ_CASES[case]
    path = tmp_path / "bloodmnist.npz"
    path.write_bytes(content)
    assert_clean_error(
        tmp_path,
        lambda: load_dataset("bloodmnist", split, data_dir=str(tmp_path)),
        path, ValueError, fix)


def test_bad_labels_of_another_split_do_not_break_this_one(tmp_path):
    """Malformed test labels are reported when the test split is loaded;
    the train split still loads (its classes from its own labels)."""
    path = tmp_path / "data.npz"
    path.write_bytes(_with(test_labels=np.array(list("abc"))))
    data = load_dataset(str(path), "train")
    assert data.num_examples == 6 and data.num_classes == 3
    assert_clean_error(tmp_path, lambda: load_dataset(str(path), "test"),
                       path, ValueError, "integer class indices")


def test_good_npz_still_loads(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(GOOD_NPZ)
    before = snapshot(tmp_path)
    data = load_dataset(str(path), "test")
    assert (data.num_examples, data.num_classes) == (3, 3)
    assert snapshot(tmp_path) == before


def test_a_file_of_another_kind_named(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text("0,1,2\n")
    assert_clean_error(tmp_path, lambda: load_dataset(str(path)), path,
                       ValueError, "neither a folder of images nor a .npz")


# ---- folders of images ------------------------------------------------


def _png_bytes(size=(4, 4), mode="L", fmt="PNG"):
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    return buf.getvalue()


GOOD_PNG = _png_bytes()


def _damaged_png():
    """A byte of the pixel data (IDAT) flipped: the header reads, the
    chunk's checksum does not match."""
    raw = bytearray(GOOD_PNG)
    raw[GOOD_PNG.index(b"IDAT") + 6] ^= 0xFF
    return bytes(raw)

# case -> (files {relative path: bytes; a trailing "/" is an empty folder},
#          split, the file to name (None: the folder itself), fix regex)
FOLDER_CASES = {
    "missing": (None, "train", None, None),
    "empty": ({}, "train", None, "one sub-folder per class"),
    "only non-images": ({"cat/readme.txt": b"notes"}, "train", None,
                        "one sub-folder per class"),
    "empty class folders": ({"cat/": b"", "dog/": b""}, "train", None,
                            "one sub-folder per class"),
    "empty png": ({"cat/a.png": GOOD_PNG, "dog/b.png": b""}, "train",
                  "dog/b.png", "empty file.*remove or replace"),
    "text as png": ({"cat/a.png": GOOD_PNG, "dog/b.png": b"hello"}, "train",
                    "dog/b.png", "not a readable image.*remove or replace"),
    "html as jpg": ({"cat/a.png": GOOD_PNG,
                     "dog/b.jpg": b"<html><body>403</body></html>"},
                    "train", "dog/b.jpg", "remove or replace"),
    "truncated png": ({"cat/a.png": GOOD_PNG,
                       "dog/b.png": GOOD_PNG[: len(GOOD_PNG) - 20]},
                      "train", "dog/b.png", "truncated"),
    "png with damaged pixel data": (
        {"cat/a.png": GOOD_PNG, "dog/b.png": _damaged_png()},
        "train", "dog/b.png", "remove or replace"),
    "tiff as png": ({"cat/a.png": GOOD_PNG,
                     "dog/b.png": _png_bytes(fmt="TIFF")}, "train",
                    "dog/b.png", "TIFF.*convert"),
    "no such split": ({"train/cat/a.png": GOOD_PNG}, "test", None,
                      "it has train"),
    "split folder empty": ({"train/cat/a.png": GOOD_PNG, "test/": b""},
                           "test", "test", "one sub-folder per class"),
    "annotations not text": (
        {"train/n01/a.png": GOOD_PNG, "val/images/v.png": GOOD_PNG,
         "val/val_annotations.txt": b"\xff\xfe\x00\x81garbage"},
        "val", "val/val_annotations.txt", "again"),
    "annotations missing images": (
        {"train/n01/a.png": GOOD_PNG, "val/images/v.png": GOOD_PNG,
         "val/images/w.png": GOOD_PNG,
         "val/val_annotations.txt": b"v.png\tn01\t0\t0\t4\t4\n"},
        "val", "val/val_annotations.txt", "w.png"),
    "annotations empty": (
        {"train/n01/a.png": GOOD_PNG, "val/images/v.png": GOOD_PNG,
         "val/val_annotations.txt": b""},
        "val", "val/val_annotations.txt", "no class"),
}


def _write_tree(root, files):
    for rel, data in files.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_bad_image_folder_named(tmp_path, case):
    files, split, named, fix = FOLDER_CASES[case]
    folder = tmp_path / "images"
    if files is not None:
        folder.mkdir()
        _write_tree(folder, files)
    expected = FileNotFoundError if files is None else ValueError
    named = folder / named if named else folder
    assert_clean_error(tmp_path, lambda: load_dataset(str(folder), split),
                       named, expected, fix)


@pytest.mark.parametrize("case", ["truncated png", "tiff as png"])
def test_bad_folder_dataset_by_name_named(tmp_path, case):
    """A folder dataset name (CINIC-10) reads <data_dir>/cinic10/: the same
    errors."""
    files, split, named, fix = FOLDER_CASES[case]
    folder = tmp_path / "cinic10"
    _write_tree(folder, {f"train/{k}": v for k, v in files.items()})
    assert_clean_error(
        tmp_path,
        lambda: load_dataset("cinic10", split, data_dir=str(tmp_path)),
        folder / "train" / named, ValueError, fix)


def test_good_folder_still_loads(tmp_path):
    folder = tmp_path / "images"
    _write_tree(folder, {"cat/a.png": GOOD_PNG, "dog/b.png": GOOD_PNG,
                         "dog/c.jpg": _png_bytes(mode="RGB", fmt="JPEG"),
                         "dog/d.bmp": _png_bytes(fmt="BMP"),
                         "dog/e.gif": _png_bytes(fmt="GIF")})
    before = snapshot(tmp_path)
    data = load_dataset(str(folder))
    assert (data.num_examples, data.num_classes) == (5, 2)
    assert snapshot(tmp_path) == before


# ---- folders of MNIST-format IDX files --------------------------------

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"
GOOD_IDX = {
    IMAGES: _idx_bytes(np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)),
    LABELS: _idx_bytes(np.array([0, 1, 2, 0, 1, 2], np.uint8)),
    "t10k-images-idx3-ubyte.gz": _idx_bytes(np.zeros((3, 4, 4), np.uint8)),
    "t10k-labels-idx1-ubyte.gz": _idx_bytes(np.array([0, 1, 2], np.uint8)),
}

# case -> ({file: content (None: removed); raw content not gzipped when
# given as ("raw", bytes)}, split, the file to name, fix regex)
IDX_CASES = {
    "no images file": ({IMAGES: None}, "train", "train-images-idx3-ubyte",
                       "put the images file"),
    "no labels file": ({LABELS: None}, "train", "train-labels-idx1-ubyte",
                       "put the labels file"),
    "no test split": ({"t10k-images-idx3-ubyte.gz": None,
                       "t10k-labels-idx1-ubyte.gz": None}, "test",
                      "", "no test split.*put both files"),
    "empty images file": ({IMAGES: ("raw", b"")}, "train", IMAGES,
                          "empty or truncated"),
    "empty labels file": ({LABELS: ("raw", b"")}, "train", LABELS,
                          "empty or truncated"),
    "truncated gzip": ({IMAGES: ("raw", gzip.compress(GOOD_IDX[IMAGES])[:30])},
                       "train", IMAGES, "download"),
    "truncated data": ({IMAGES: GOOD_IDX[IMAGES][:-7]}, "train", IMAGES,
                       "truncated"),
    "truncated header": ({IMAGES: GOOD_IDX[IMAGES][:9]}, "train", IMAGES,
                         "truncated"),
    "trailing bytes": ({LABELS: GOOD_IDX[LABELS] + b"\0\0"}, "train", LABELS,
                       "beyond"),
    "wrong magic": ({IMAGES: b"\x12\x34" + GOOD_IDX[IMAGES][2:]}, "train",
                    IMAGES, "not an IDX file"),
    "unknown type code": ({IMAGES: b"\0\0\x07" + GOOD_IDX[IMAGES][3:]},
                          "train", IMAGES, "not an IDX file"),
    "html error page": ({IMAGES: ("raw", b"<html><body>404</body></html>")},
                        "train", IMAGES, "HTML"),
    "text": ({LABELS: b"0 1 2 0 1 2\n"}, "train", LABELS, "not an IDX"),
    "images rank 1": ({IMAGES: _idx_bytes(np.zeros(6, np.uint8))}, "train",
                      IMAGES, r"\(n, H, W\)"),
    "images rank 2": ({IMAGES: _idx_bytes(np.zeros((6, 16), np.uint8))},
                      "train", IMAGES, r"\(n, H, W\)"),
    "images rank 4": ({IMAGES: _idx_bytes(np.zeros((6, 4, 4, 1),
                                                   np.uint8))}, "train",
                      IMAGES, r"\(n, H, W\)"),
    "images rank 5": ({IMAGES: _idx_bytes(np.zeros((6, 4, 4, 1, 1),
                                                   np.uint8))}, "train",
                      IMAGES, r"\(n, H, W\)"),
    "images float": ({IMAGES: _idx_bytes(np.zeros((6, 4, 4), np.float32))},
                     "train", IMAGES, "uint8"),
    "no images": ({IMAGES: _idx_bytes(np.zeros((0, 4, 4), np.uint8)),
                   LABELS: _idx_bytes(np.zeros(0, np.uint8))}, "train",
                  IMAGES, "no images"),
    "images of zero width": ({IMAGES: _idx_bytes(np.zeros((6, 4, 0),
                                                          np.uint8))},
                             "train", IMAGES, "no images"),
    "labels rank 2": ({LABELS: _idx_bytes(np.zeros((6, 1), np.uint8))},
                      "train", LABELS, r"shape \(n,\)"),
    "labels float": ({LABELS: _idx_bytes(np.zeros(6, np.float32))},
                     "train", LABELS, "integer labels"),
    "labels too short": ({LABELS: _idx_bytes(np.zeros(5, np.uint8))},
                         "train", LABELS, "do not belong together"),
    "labels negative": ({LABELS: _idx_bytes(np.array([0, 1, -2, 0, 1, 2],
                                                     np.int8))},
                        "train", LABELS, "0, 1, 2"),
    "images and labels swapped": (
        {IMAGES: GOOD_IDX[LABELS], LABELS: GOOD_IDX[IMAGES]}, "train",
        IMAGES, "labels file under an images name"),
}

_IDX_MISSING = ("no images file", "no labels file", "no test split")


def _idx_folder(folder, changes):
    folder.mkdir(parents=True)
    files = dict(GOOD_IDX)
    files.update(changes)
    for name, content in files.items():
        if content is None:
            continue
        if isinstance(content, tuple):  # raw, as is
            data = content[1]
        else:
            data = gzip.compress(content) if name.endswith(".gz") else content
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("case", sorted(IDX_CASES))
def test_bad_idx_folder_named(tmp_path, case):
    changes, split, named, fix = IDX_CASES[case]
    folder = tmp_path / "mnist"
    _idx_folder(folder, changes)
    expected = FileNotFoundError if case in _IDX_MISSING else ValueError
    assert_clean_error(tmp_path, lambda: load_dataset(str(folder), split),
                       folder / named, expected, fix)


def test_missing_idx_folder_named(tmp_path):
    folder = tmp_path / "mnist"
    assert_clean_error(tmp_path, lambda: load_dataset(str(folder)), folder,
                       FileNotFoundError)


@pytest.mark.parametrize("case", ["truncated data", "labels too short"])
def test_bad_emnist_set_by_prefix_named(tmp_path, case):
    """``<folder>/emnist-letters`` names one set of a folder of several."""
    changes, split, named, fix = IDX_CASES[case]
    folder = tmp_path / "gzip"
    folder.mkdir()
    for prefix in ("emnist-letters-", "emnist-digits-"):
        files = dict(GOOD_IDX)
        if prefix == "emnist-letters-":
            files.update(changes)
        for name, content in files.items():
            name = prefix + name.replace("t10k", "test")
            (folder / name).write_bytes(gzip.compress(content))
    assert_clean_error(
        tmp_path, lambda: load_dataset(str(folder / "emnist-letters"), split),
        folder / ("emnist-letters-" + named), ValueError, fix)


@pytest.mark.parametrize("case", ["truncated gzip", "wrong magic",
                                  "labels too short", "no labels file"])
def test_bad_system_fashion_mnist_named(tmp_path, monkeypatch, case):
    """"fashion_mnist" by name reads the system folder's IDX files when
    TensorFlow Datasets has not prepared it: the same errors."""
    changes, split, named, fix = IDX_CASES[case]
    root = tmp_path / "system"
    _idx_folder(root / "fashion-mnist", changes)
    monkeypatch.setenv(idx.SYSTEM_DATASETS_ENV, str(root))
    expected = FileNotFoundError if case == "no labels file" else ValueError
    tfds_dir = tmp_path.parent / f"{tmp_path.name}-tfds"  # nothing there
    assert_clean_error(
        tmp_path,
        lambda: load_dataset("fashion_mnist", split, data_dir=str(tfds_dir),
                             download=False),
        root / "fashion-mnist" / named, expected, fix)


def test_good_idx_folder_still_loads(tmp_path):
    folder = tmp_path / "mnist"
    _idx_folder(folder, {})
    before = snapshot(tmp_path)
    data = load_dataset(str(folder), "train")
    assert data.num_examples == 6 and data.num_classes == 10  # MNIST's
    assert snapshot(tmp_path) == before
