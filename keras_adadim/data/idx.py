"""MNIST-format IDX files: a validating reader, and the folders that hold
them (MNIST, Fashion-MNIST, KMNIST, EMNIST).

``read_idx(path)`` parses one IDX file, plain or gzip-compressed, into a
NumPy array: the magic number ``0x00 0x00 <type> <ndim>``, ``ndim``
big-endian uint32 dimensions, then the values, big-endian, row-major
(http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"). Anything else
(wrong magic, a truncated or over-long file, a damaged gzip stream) raises
``IdxFormatError`` naming the file and saying what to do.

``find_idx_sets(folder)`` finds the image / label files of each split
(``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``, the
EMNIST names ``emnist-balanced-test-images-idx3-ubyte.gz``, ...), and
``load_idx_split(folder, split)`` returns one split as uint8
``[n, H, W, 1]`` images and int64 labels, checked against each other.

``keras_adadim.data.load_dataset`` reads such a folder given by path, and
Fashion-MNIST / MNIST given by name from the system folder
``system_dataset_dir(...)`` (``/usr/share/datasets/<name>`` where Debian's
``dataset-fashion-mnist`` package puts the original files) when
TensorFlow Datasets has not prepared them.
"""

import gzip
import os
import re
import zlib

import numpy as np

# Debian's dataset packages install under this folder (dataset-fashion-mnist:
# /usr/share/datasets/fashion-mnist/*.gz). Overridable, by assignment or
# with the environment variable, so that tests and unusual installs can
# point it elsewhere; read at each call, not at import.
SYSTEM_DATASETS_DIR = "/usr/share/datasets"
SYSTEM_DATASETS_ENV = "KERAS_ADADIM_SYSTEM_DATASETS"

# Third byte of the magic number -> big-endian NumPy dtype (the IDX spec).
IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

# Class names, the same as TensorFlow Datasets' (so a run reads the same
# names whichever source the data came from).
CLASS_NAMES = {
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
        "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "mnist": [str(i) for i in range(10)],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}

# <prefix><split>-<images|labels>-idx<k>-ubyte[.gz]; Kaggle copies use a
# dot before "idx" (train-images.idx3-ubyte). MNIST names its test split
# t10k, EMNIST names it test.
_FILE_RE = re.compile(
    r"^(?P<prefix>.*?)(?P<split>train|t10k|test)-(?P<kind>images|labels)"
    r"[-.]idx(?P<ndim>\d)-ubyte(?P<gz>\.gz)?$",
    re.IGNORECASE,
)
_SPLIT_NAMES = {"train": "train", "t10k": "test", "test": "test"}
_SPLIT_ALIASES = {"train": "train", "test": "test", "t10k": "test"}
_EXPECTED = ("train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
             "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
_REDOWNLOAD = ("Download the original file again (or reinstall the package "
               "that provides it).")


class IdxFormatError(ValueError):
    """An IDX file that cannot be read: the message names the file."""


def _key(name):
    return re.sub(r"[-_ ]", "", str(name).lower())


def _read_bytes(path):
    """The file's bytes, gunzipped when it starts with gzip's magic bytes
    (by content, not by name: browsers sometimes store a decompressed file
    under its .gz name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise IdxFormatError(
            f"{path}: damaged gzip data ({type(e).__name__}: {e}); the file "
            f"is probably truncated by an interrupted download. "
            f"{_REDOWNLOAD}"
        ) from e


def read_idx(path):
    """One IDX file (plain or gzip-compressed) as a NumPy array in native
    byte order, with the shape its header gives.

    Raises:
        FileNotFoundError: no such file.
        IdxFormatError: not an IDX file, or one whose size does not match
            its header (truncated or with trailing bytes).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such IDX file: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IdxFormatError(
            f"{path}: {len(raw)} bytes, too short for an IDX header (4-byte "
            f"magic number, then the dimensions): the file is empty or "
            f"truncated. {_REDOWNLOAD}"
        )
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_code not in IDX_DTYPES or ndim < 1:
        hint = ""
        if raw[:1] in (b"<", b"{"):  # a server's error page saved as data
            hint = " It looks like text (an HTML error page?)."
        raise IdxFormatError(
            f"{path}: not an IDX file: magic number 0x{raw[:4].hex()}, "
            f"expected 0x000008<ndim> (0x00000803 for images, 0x00000801 "
            f"for labels; unsigned bytes).{hint} {_REDOWNLOAD}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(
            f"{path}: truncated in its header ({len(raw)} bytes, the header "
            f"of a {ndim}-d IDX file has {header}). {_REDOWNLOAD}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise IdxFormatError(
            f"{path}: truncated: its header promises shape {dims} "
            f"({expected} bytes of data) but only {found} bytes follow; an "
            f"interrupted download? {_REDOWNLOAD}"
        )
    if found > expected:
        raise IdxFormatError(
            f"{path}: {found - expected} bytes beyond the {expected} that "
            f"its header (shape {dims}) describes: not a well-formed IDX "
            f"file (two files concatenated?). {_REDOWNLOAD}"
        )
    array = np.frombuffer(raw, dtype, expected // dtype.itemsize, header)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def find_idx_sets(folder):
    """The IDX files of a folder: ``{prefix: {split: {"images": path,
    "labels": path}}}`` with ``split`` ``"train"`` or ``"test"`` (MNIST's
    ``t10k``) and ``prefix`` what precedes the split in the name (``""``
    for MNIST, ``"emnist-balanced-"`` for EMNIST Balanced). An
    uncompressed file is preferred to its ``.gz`` twin."""
    found = {}
    for fname in sorted(os.listdir(folder)):
        m = _FILE_RE.match(fname)
        path = os.path.join(folder, fname)
        if not m or not os.path.isfile(path):
            continue
        split = _SPLIT_NAMES[m["split"].lower()]
        kind = m["kind"].lower()
        slot = found.setdefault(m["prefix"], {}).setdefault(split, {})
        if kind not in slot or not m["gz"]:
            slot[kind] = path
    return found


def has_idx_files(folder):
    """Whether ``folder`` holds at least one MNIST-format IDX file."""
    return os.path.isdir(folder) and bool(find_idx_sets(folder))


def system_dataset_dir(folder):
    """``<system datasets dir>/<folder>``: ``$KERAS_ADADIM_SYSTEM_DATASETS``
    if set, else ``SYSTEM_DATASETS_DIR`` (``/usr/share/datasets``)."""
    root = os.environ.get(SYSTEM_DATASETS_ENV) or SYSTEM_DATASETS_DIR
    return os.path.join(root, folder)


def parse_split(split):
    """``"train"``, ``"test[:10%]"``, ``"train[1000:-1000]"`` ->
    ``(name, start, stop)``; slices as in TensorFlow Datasets' split
    strings (integers, possibly negative, or percentages of the split,
    rounded to the closest example)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(?:\[(.*?):(.*?)\])?\s*",
                     str(split))
    if not m:
        raise ValueError(
            f"Cannot read split {split!r}: expected a name ('train', "
            "'test') optionally with a slice, e.g. 'train[:5000]', "
            "'train[10%:]'."
        )
    bounds = []
    for b in (m[2], m[3]):
        b = (b or "").strip()
        if not b:
            bounds.append(None)
        elif re.fullmatch(r"-?\d+%", b):
            bounds.append(("%", int(b[:-1])))
        elif re.fullmatch(r"-?\d+", b):
            bounds.append(int(b))
        else:
            raise ValueError(
                f"Cannot read the slice of split {split!r}: bounds must be "
                "integers or percentages, e.g. 'train[:5000]', "
                "'train[:10%]'."
            )
    return m[1].lower(), bounds[0], bounds[1]


def _slice_of(n, start, stop):
    def to_index(b):
        if isinstance(b, tuple):  # percentage, rounded like tfds' default
            return int(round(n * b[1] / 100))
        return b

    return slice(to_index(start), to_index(stop))


def _expected_name(prefix, split_on_disk, kind):
    ndim = 3 if kind == "images" else 1
    return f"{prefix}{split_on_disk}-{kind}-idx{ndim}-ubyte[.gz]"


def _choose_prefix(folder, sets, prefix):
    if prefix is not None:
        if prefix not in sets:
            have = ", ".join(repr(p) for p in sets)
            raise FileNotFoundError(
                f"No IDX files named {prefix}train-images-idx3-ubyte[.gz] "
                f"(or t10k / test) in {folder}; it holds the sets "
                f"{have}."
            )
        return prefix
    if len(sets) == 1:
        return next(iter(sets))
    names = ", ".join(repr(p.rstrip("-_.") or "(no prefix)") for p in sets)
    example = os.path.join(folder, next(p for p in sets if p).rstrip("-_."))
    raise ValueError(
        f"{folder} holds IDX files of several datasets ({names}). Load one "
        f"by its prefix, e.g. load_dataset({example!r}), or move each set "
        "into a folder of its own."
    )


def load_idx_split(folder, split="train", prefix=None, name=None):
    """One split of the IDX files in ``folder``.

    Args:
        folder: a folder holding ``train-images-idx3-ubyte[.gz]``,
            ``train-labels-idx1-ubyte[.gz]``, ``t10k-...`` (or EMNIST's
            ``emnist-<set>-train-...``, ``-test-...``).
        split: ``"train"`` or ``"test"`` (``"t10k"``), optionally sliced
            (``"train[:5000]"``, ``"test[:10%]"``).
        prefix: which set when the folder holds several (e.g.
            ``"emnist-balanced-"``); None: the only one.
        name: the dataset's name, for its class names (``"fashion_mnist"``,
            ``"mnist"``, ``"kmnist"``); None: the prefix, else the folder's
            name (``/usr/share/datasets/fashion-mnist`` -> Fashion-MNIST).

    Returns:
        dict with ``images`` (uint8 ``[n, H, W, 1]``), ``labels`` (int64
        ``[n]``), ``num_classes`` (1 + the largest label of all the
        folder's label files of this set, so train and test agree),
        ``class_names`` (None, or TensorFlow Datasets' names for
        Fashion-MNIST, MNIST, KMNIST when ``name`` is one of them),
        ``split`` (``"train"`` / ``"test"``), ``prefix``, ``files``.
        EMNIST images (prefix ``emnist-``) are stored transposed; they are
        transposed back here so that letters stand upright as in MNIST
        (TensorFlow Datasets' ``emnist`` keeps them as stored).

    Raises:
        FileNotFoundError: no folder, no IDX files, a missing images or
            labels file (the message names the file it expected).
        IdxFormatError: a damaged file (see ``read_idx``), or images and
            labels that do not match.
        ValueError: an unknown split, or several sets and no ``prefix``.
    """
    folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No such folder: {folder}")
    sets = find_idx_sets(folder)
    if not sets:
        raise FileNotFoundError(
            f"No MNIST-format IDX files in {folder}: expected {_EXPECTED} "
            "(or EMNIST's emnist-<set>-train-images-idx3-ubyte.gz, ...)."
        )
    prefix = _choose_prefix(folder, sets, prefix)
    splits = sets[prefix]
    split_name, start, stop = parse_split(split)
    want = _SPLIT_ALIASES.get(split_name)
    if want is None:
        raise ValueError(
            f"IDX data has the splits 'train' and 'test' (files t10k-* or "
            f"test-*); got split {split!r}. Folder: {folder}."
        )
    if want not in splits:
        on_disk = "t10k" if want == "test" and not prefix else want
        raise FileNotFoundError(
            f"{folder} has no {want} split: no "
            f"{_expected_name(prefix, on_disk, 'images')} or "
            f"{_expected_name(prefix, on_disk, 'labels')}. Put both files "
            f"there (they hold {sorted(splits)})."
        )
    files = splits[want]
    for kind in ("images", "labels"):
        if kind not in files:
            other = files["labels" if kind == "images" else "images"]
            on_disk = _FILE_RE.match(os.path.basename(other))["split"]
            missing = os.path.join(folder,
                                   _expected_name(prefix, on_disk, kind))
            raise FileNotFoundError(
                f"{missing} is missing: {other} has no {kind} file beside "
                f"it. Put "
                f"the {kind} file of the same set into {folder} (the "
                "original name, plain or .gz)."
            )
    images = read_idx(files["images"])
    labels = read_idx(files["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxFormatError(
            f"{files['images']}: expected uint8 images of shape (n, H, W) "
            f"(an idx3-ubyte file); it holds {images.dtype} of shape "
            f"{images.shape}. Is it a labels file under an images name?"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise IdxFormatError(
            f"{files['labels']}: expected integer labels of shape (n,) (an "
            f"idx1-ubyte file); it holds {labels.dtype} of shape "
            f"{labels.shape}. Is it an images file under a labels name?"
        )
    if not len(images) or not images.shape[1] or not images.shape[2]:
        raise IdxFormatError(
            f"{files['images']}: holds no images (shape {images.shape}): "
            f"there is nothing to load. {_REDOWNLOAD}"
        )
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{files['images']} holds {len(images)} images but "
            f"{files['labels']} holds {len(labels)} labels: the two files do "
            "not belong together (or one is damaged). Download both files "
            "of the split again."
        )
    if labels.size and labels.min() < 0:
        raise IdxFormatError(
            f"{files['labels']}: negative label {int(labels.min())}; class "
            "labels must be 0, 1, 2, ..."
        )
    if prefix.lower().startswith("emnist"):
        images = images.transpose(0, 2, 1)
    top = int(labels.max()) if labels.size else -1
    for other, fs in splits.items():
        if other != want and "labels" in fs:
            try:
                top = max(top, int(read_idx(fs["labels"]).max()))
            except (IdxFormatError, ValueError):
                pass  # reported when that split is loaded
    sl = _slice_of(len(images), start, stop)
    images = np.ascontiguousarray(images[sl])[..., None]
    labels = labels[sl].astype(np.int64)
    known = _key(name or prefix or os.path.basename(folder))
    known = {"fashion": "fashionmnist"}.get(known, known)  # zalando's repo
    class_names = next(
        (names for k, names in CLASS_NAMES.items() if _key(k) == known),
        None,
    )
    num_classes = top + 1 if top >= 0 else None
    if class_names is not None and num_classes is not None and \
            num_classes > len(class_names):
        class_names = None
    elif class_names is not None:
        num_classes = len(class_names)
    return {
        "images": images,
        "labels": labels,
        "num_classes": num_classes,
        "class_names": class_names,
        "split": want,
        "prefix": prefix,
        "files": dict(files),
    }


def idx_prefix_of(path):
    """``(folder, prefix)`` when ``path`` is ``<folder>/<prefix>`` naming
    one set of IDX files (``/data/gzip/emnist-balanced`` for
    ``/data/gzip/emnist-balanced-train-images-idx3-ubyte.gz``), else
    None."""
    folder, base = os.path.split(os.path.abspath(os.path.expanduser(path)))
    if not base or not os.path.isdir(folder):
        return None
    sets = find_idx_sets(folder)
    for prefix in (base, base + "-", base + "_", base + "."):
        if prefix in sets:
            return folder, prefix
    return None


__all__ = [
    "CLASS_NAMES",
    "IdxFormatError",
    "SYSTEM_DATASETS_DIR",
    "SYSTEM_DATASETS_ENV",
    "find_idx_sets",
    "has_idx_files",
    "idx_prefix_of",
    "load_idx_split",
    "parse_split",
    "read_idx",
    "system_dataset_dir",
]
