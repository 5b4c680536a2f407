"""Image datasets for pre-training and evaluation, and the two-view
``tf.data`` pipelines built on them.

``load_dataset(source, split)`` returns an ``ImageDataset`` whose
``.dataset`` is an unbatched ``tf.data.Dataset`` of ``(image, label)``
(``image`` uint8 ``[H, W, C]``, ``label`` int64, -1 without labels), from

* ``"digits"``: scikit-learn's 1,797 8x8 digits (bundled, offline);
* a TensorFlow Datasets name, bare (``"cifar10"``) or prefixed
  (``"tfds:cifar10"``), prepared under ``data_dir`` (downloaded on first use
  when possible);
* a folder of images, one sub-folder per class (optionally inside
  ``train/``, ``val/``, ``test/``);
* a ``.npz`` file in the MedMNIST layout (``train_images``,
  ``train_labels``, ``val_*``, ``test_*``);
* a folder of MNIST-format IDX files (``train-images-idx3-ubyte[.gz]``,
  ...: MNIST, Fashion-MNIST, KMNIST, EMNIST; ``keras_adadim.data.idx``),
  and ``"fashion_mnist"`` / ``"mnist"`` by name: TensorFlow Datasets'
  prepared copy if there is one, else the system's IDX files (Debian's
  ``dataset-fashion-mnist`` package), else a download by TensorFlow
  Datasets;

and ``from_arrays(images, labels)`` wraps NumPy arrays.

``pretraining_dataset(data)`` turns one into the batched stream of
``((x1, x2), y)`` that ``AdaDimModel.fit`` consumes (float32 views in
[0, 1]), reproducible and resumable from ``(seed, epoch, step)``;
``evaluation_dataset`` and ``to_numpy`` give un-augmented images for probes
and monitors.
"""

import dataclasses
import difflib
import hashlib
import math
import os
import re
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Streamed (TensorFlow Datasets) splits up to this many bytes of decoded
# images are read into memory once when a pipeline is built: exact full
# shuffles and no decoding per epoch (CIFAR-10/100: 150 MB, STL-10 train:
# 138 MB). Larger ones (ImageNet, STL-10 'unlabelled': 2.8 GB) are
# streamed.
MAX_IN_MEMORY_BYTES = 1024**3
# Folders with more files than this are inspected (channels, size) on an
# evenly spaced sample of this many files.
MAX_INSPECTED_FILES = 5000

# The datasets of the paper (Tables 2-9) and where they come from.
KNOWN_DATASETS = {
    "digits": {
        "kind": "bundled",
        "about": "scikit-learn's 8x8 digits, 1,437 train / 360 test "
                 "(offline; the default)",
    },
    "cifar10": {"kind": "tfds", "tfds": "cifar10",
                "about": "CIFAR-10, 50k train / 10k test, 32x32"},
    "cifar100": {"kind": "tfds", "tfds": "cifar100",
                 "about": "CIFAR-100, 50k train / 10k test, 32x32"},
    "stl10": {"kind": "tfds", "tfds": "stl10",
              "about": "STL-10, 5k train / 8k test / 100k 'unlabelled', "
                       "96x96"},
    "imagenet2012": {"kind": "tfds", "tfds": "imagenet2012",
                     "about": "ImageNet-1k (manual download of the "
                              "ILSVRC2012 tar files)"},
    "imagenet_resized/32x32": {"kind": "tfds",
                               "tfds": "imagenet_resized/32x32",
                               "about": "ImageNet-1k downsampled to 32x32"},
    "imagenet_resized/64x64": {"kind": "tfds",
                               "tfds": "imagenet_resized/64x64",
                               "about": "ImageNet-1k downsampled to 64x64"},
    "tiny-imagenet-200": {
        "kind": "folder", "folders": ("tiny-imagenet-200",),
        "about": "Tiny ImageNet, 200 classes, 64x64 (folder)",
        "howto": "Download http://cs231n.stanford.edu/tiny-imagenet-200.zip "
                 "and unzip it into {data_dir}, giving "
                 "{data_dir}/tiny-imagenet-200/train/<wnid>/images/*.JPEG and "
                 "val/images/*.JPEG + val/val_annotations.txt (both layouts "
                 "are read as they are).",
    },
    "cinic10": {
        "kind": "folder", "folders": ("cinic10", "CINIC-10", "cinic-10"),
        "about": "CINIC-10, 10 classes, 32x32 (folder)",
        "howto": "Download CINIC-10 from "
                 "https://datashare.ed.ac.uk/handle/10283/3192 and extract "
                 "it to "
                 "{data_dir}/cinic10/{{train,valid,test}}/<class>/*.png.",
    },
    "imagenet100": {
        "kind": "folder", "folders": ("imagenet100", "imagenet-100"),
        "about": "ImageNet-100, a 100-class ImageNet subset (folder)",
        "howto": "Build it from ImageNet with the 100-class list of "
                 "solo-learn / CMC: {data_dir}/imagenet100/{{train,val}}/"
                 "<wnid>/*.JPEG.",
    },
}
# TensorFlow Datasets' prepared copy if there is one, else the original IDX
# files in system_dataset_dir(system) (Debian's dataset packages install
# there, which works offline), else a TensorFlow Datasets download.
KNOWN_DATASETS["fashion_mnist"] = {
    "kind": "idx", "tfds": "fashion_mnist", "system": "fashion-mnist",
    "apt": "dataset-fashion-mnist",
    "about": "Fashion-MNIST, 60k train / 10k test, 28x28x1, 10 classes",
}
KNOWN_DATASETS["mnist"] = {
    "kind": "idx", "tfds": "mnist", "system": "mnist", "apt": None,
    "about": "MNIST, 60k train / 10k test, 28x28x1, 10 classes",
}
_MEDMNIST = ("bloodmnist", "organsmnist", "organcmnist", "organamnist")
for _m in _MEDMNIST:
    KNOWN_DATASETS[_m] = {
        "kind": "npz", "file": _m,
        "about": f"MedMNIST {_m}, 28x28 (.npz; _64/_128/_224 for larger)",
        "howto": "Download {file}.npz from MedMNIST "
                 "(https://zenodo.org/records/10519652, or `pip install "
                 "medmnist` and `python -m medmnist download`) into "
                 "{data_dir} or ~/.medmnist.",
    }

_ALIASES = {
    "imagenet": "imagenet2012",
    "imagenet1k": "imagenet2012",
    "ilsvrc2012": "imagenet2012",
    "tinyimagenet": "tiny-imagenet-200",
    "tinyimagenet200": "tiny-imagenet-200",
    "imagenet32": "imagenet_resized/32x32",
    "imagenet64": "imagenet_resized/64x64",
    "fmnist": "fashion_mnist",
}
_SPLIT_FOLDERS = {
    "train": ("train",),
    "val": ("val", "valid", "validation"),
    "test": ("test",),
    "unlabelled": ("unlabelled", "unlabeled"),
}


def _key(name):
    return re.sub(r"[-_ ]", "", name.lower())


_KEYS = {_key(k): k for k in KNOWN_DATASETS}
_KEYS.update(_ALIASES)


@dataclasses.dataclass
class ImageDataset:
    """One split of an image dataset.

    Attributes:
        dataset: unbatched ``tf.data.Dataset`` of ``(image, label)``:
            ``image`` uint8 ``[H, W, C]``, ``label`` int64 (-1 when the
            source has no labels).
        num_examples: number of images in the split.
        num_classes: number of classes, or None without labels.
        class_names: class names (index = label), or None.
        image_shape: ``(H, W, C)``; ``H``, ``W`` are None when the images
            vary in size.
        name: short name (``"cifar10"``, a folder's name, ...).
        source: where it came from (``"tfds:cifar10"``,
            ``"folder:/abs/path"``, ``"npz:/abs/path"``, ``"digits"``,
            ``"arrays"``).
        split: the split loaded.
    """

    dataset: object
    num_examples: int
    num_classes: object
    class_names: object
    image_shape: tuple
    name: str
    source: str
    split: str = "train"
    # How the pipelines read it (see `_Access`).
    _access: object = dataclasses.field(default=None, repr=False,
                                        compare=False)

    @property
    def channels(self):
        return self.image_shape[-1]

    def label_counts(self):
        """Images per class (``numpy`` array indexed by label, unlabelled
        images not counted) when the source knows its labels without
        reading the images (arrays, ``.npz``, IDX, folders); None for
        streamed sources (TensorFlow Datasets) and unlabelled splits."""
        labels = None if self._access is None else self._access.labels
        if labels is None or not self.num_classes:
            return None
        labels = np.asarray(labels, np.int64).reshape(-1)
        return np.bincount(labels[labels >= 0],
                           minlength=int(self.num_classes))

    def __len__(self):
        return self.num_examples


class _Access:
    """How pipelines read a split: ``reader(index) -> (image, label)``
    (random access: in-memory and folder sources), or, for streamed
    sources, ``encoded()`` (a ``tf.data`` of ``(encoded image, label)`` in
    storage order), ``decode(encoded) -> image`` and ``materialize() ->
    (images, labels)`` with the decoded size ``nbytes`` (None: unknown)."""

    def __init__(self, reader=None, encoded=None, decode=None,
                 materialize=None, nbytes=None, target=None,
                 fingerprint=None, labels=None):
        self.fingerprint = fingerprint
        self.labels = labels  # all labels, when known without reading
        self.reader = reader
        self.encoded = encoded
        self.decode = decode
        self.materialize = materialize
        self.nbytes = nbytes
        self.target = target

    def random_access(self):
        """A reader, reading a small streamed split into memory once."""
        if self.reader is None and self.materialize is not None and (
            self.nbytes is not None and self.nbytes <= MAX_IN_MEMORY_BYTES
        ):
            images, labels = self.materialize()
            self.reader = _array_reader(images, labels, self.target)
        return self.reader


def _array_reader(images, labels, target):
    import tensorflow as tf

    native = images.shape[-1]
    images_t = tf.constant(images)
    labels_t = tf.constant(np.asarray(labels, np.int64))

    def reader(i):
        image = tf.gather(images_t, i)
        if target != native:
            image = _convert_channels(image, target)
        return image, tf.gather(labels_t, i)

    return reader


# --------------------------------------------------------------------------
# Loading


def load_dataset(source, split="train", *, data_dir=None, download=True,
                 channels=None):
    """Load one split of an image dataset as an ``ImageDataset``.

    Args:
        source: ``"digits"``; a TensorFlow Datasets name (``"cifar10"``,
            ``"stl10"``, ``"imagenet_resized/32x32"``, ``"tfds:mnist"``,
            ...; ``KNOWN_DATASETS`` lists the paper's); a path to a folder
            of images (one sub-folder per class, optionally under
            ``train/``, ``val/``, ``test/``) or to a MedMNIST-style
            ``.npz``; or the name of a folder / ``.npz`` dataset of the paper
            (``"tiny-imagenet-200"``, ``"cinic10"``, ``"imagenet100"``,
            ``"bloodmnist"``, ...) stored under ``data_dir``; a folder of
            MNIST-format IDX files (``train-images-idx3-ubyte[.gz]``, ...;
            for a folder holding several EMNIST sets, the path plus the
            set's prefix, e.g. ``"/data/gzip/emnist-balanced"``);
            ``"fashion_mnist"`` / ``"mnist"``: TensorFlow Datasets'
            prepared copy if present, else the IDX files in
            ``keras_adadim.data.idx.system_dataset_dir(...)``
            (``/usr/share/datasets/fashion-mnist`` from Debian's
            ``dataset-fashion-mnist``), else a TensorFlow Datasets
            download. A string that
            names an existing file or folder is read from disk, except the
            known names above (write ``"./cifar10"`` for a folder of that
            name).
        split: ``"train"``, ``"test"``, ``"val"`` (folders and ``.npz``;
            also ``"valid"``/``"validation"``), ``"unlabelled"`` (STL-10) or
            any TensorFlow Datasets split, including slices such as
            ``"train[:10%]"`` (IDX files take such slices too).
        data_dir: TensorFlow Datasets' data directory (default: theirs,
            ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``), or the folder
            holding a folder / ``.npz`` dataset given by name.
        download: prepare a TensorFlow Datasets dataset that is not there
            yet (download and convert it once); with False a missing
            dataset raises.
        channels: None keeps the images' own channels; 3 converts grayscale
            to RGB (the gray channel repeated), 1 converts RGB to grayscale
            (``tf.image.rgb_to_grayscale``). A conversion prints one line.

    Digits: the same stratified 80/20 split (seed 0) as
    ``keras_adadim.data.load_digits``; pixel values ``v`` in 0..16 are
    stored as ``round(v * 255 / 16)``, so ``image / 255`` equals
    ``load_digits``' ``v / 16`` to within 1/510.

    Raises:
        ValueError: unknown name (with the known ones and close matches),
            unknown split, an empty folder, bad ``channels``; a dataset
            file that is empty, truncated, damaged, of the wrong format or
            shape (a ``.npz`` that is not one or lacks the MedMNIST arrays,
            images of the wrong rank or channels, labels of the wrong
            length, rank or type, an image file that is not a PNG / JPEG /
            BMP / GIF TensorFlow can decode; ``idx.IdxFormatError`` for IDX
            files), always naming the file. A folder's images are checked
            when it is loaded (PNG: every chunk's checksum; other formats:
            the header), all of them up to ``MAX_INSPECTED_FILES``, else an
            evenly spaced sample of that many: in a larger folder a damaged
            image can still fail later, when it is decoded.
        FileNotFoundError: a missing file or folder; a dataset that is not
            prepared and cannot be downloaded here (the message says where
            to put the files and the command that prepares them).
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"`channels` must be None, 1 or 3; got {channels!r}.")
    if isinstance(source, os.PathLike):
        return _load_path(os.fspath(source), split, channels)
    if not isinstance(source, str):
        raise TypeError(
            "`source` must be a dataset name or a path; for arrays use "
            f"`from_arrays(images, labels)`. Got {type(source).__name__}."
        )
    if source.startswith("tfds:"):
        return _load_tfds(source[5:], split, data_dir, download, channels)
    known = _KEYS.get(_key(source))
    if known == "digits":
        return _load_digits(split, channels)
    if known is not None:
        entry = KNOWN_DATASETS[known]
        if entry["kind"] == "tfds":
            return _load_tfds(entry["tfds"], split, data_dir, download,
                              channels, name=known)
        if entry["kind"] == "idx":
            return _load_idx_known(known, split, data_dir, download,
                                   channels)
        return _load_known_files(known, split, data_dir, channels)
    path = os.path.expanduser(source)
    if os.path.exists(path):
        return _load_path(path, split, channels)
    from keras_adadim.data import idx

    in_folder = idx.idx_prefix_of(path)  # e.g. /data/gzip/emnist-balanced
    if in_folder is not None:
        return _load_idx(in_folder[0], split, channels, prefix=in_folder[1])
    if source.lower().endswith(".npz") or source.startswith(
        (".", "/", "~", "\\")
    ):
        raise FileNotFoundError(f"No such file or folder: {source!r}.")
    if _is_tfds_name(source):
        return _load_tfds(source, split, data_dir, download, channels)
    raise ValueError(_unknown_message(source))


def from_arrays(images, labels=None, name="arrays", *, class_names=None,
                channels=None):
    """An ``ImageDataset`` over in-memory NumPy arrays.

    Args:
        images: ``(n, H, W)`` or ``(n, H, W, C)`` with C in (1, 3): uint8
            (or integers in 0..255), or floats in [0, 1] (stored as
            ``round(x * 255)``).
        labels: ``(n,)`` or ``(n, 1)`` integer labels, or None (-1).
        name: the dataset's name.
        class_names: optional list of class names.
        channels: None, 1 or 3 (as in ``load_dataset``).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "`images` must have shape (n, H, W) or (n, H, W, C) with C = 1 "
            f"or 3; got {images.shape}."
        )
    images = _to_uint8(images, name)
    n = len(images)
    labels = _clean_labels(labels, n, name, where=f"from_arrays({name!r})")
    if class_names is not None:
        num_classes = len(class_names)
        class_names = [str(c) for c in class_names]
    elif labels is not None and n and labels.max() >= 0:
        num_classes = int(labels.max()) + 1
    else:
        num_classes = None
    if labels is None:
        labels = np.full(n, -1, np.int64)
    return _in_memory(images, labels, name=name, source="arrays",
                      split="train", num_classes=num_classes,
                      class_names=class_names, channels=channels)


def _to_uint8(images, name, where=None):
    """uint8 images; ``where`` names the source in errors (e.g. the file
    and its array)."""
    where = where or repr(name)
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        if images.size and not np.all(np.isfinite(images)):
            raise ValueError(f"{where}: images contain NaN or Inf values.")
        if images.size and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
            raise ValueError(
                f"{where}: float images must lie in [0, 1]; got "
                f"[{images.min():.3g}, {images.max():.3g}]. Divide uint8 "
                "images by 255 or pass them as uint8."
            )
        return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    if images.dtype == bool:
        return images.astype(np.uint8) * 255
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(
                f"{where}: integer images must lie in 0..255; got "
                f"{images.min()}..{images.max()}."
            )
        return images.astype(np.uint8)
    raise ValueError(f"{where}: unsupported image dtype {images.dtype}.")


def _clean_labels(labels, n, name, where=None):
    """(n,) int64 labels; ``where`` names the source in errors (e.g. the
    file and its arrays)."""
    if labels is None:
        return None
    where = where or repr(name)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        count = (f"{len(labels)} labels for {n} images" if labels.ndim
                 else f"a scalar label for {n} images")
        raise ValueError(
            f"{where}: {count} (labels shape {labels.shape}); there must "
            f"be one label per image: labels must have shape ({n},) or "
            f"({n}, 1)."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        numeric = labels.dtype == bool or np.issubdtype(labels.dtype,
                                                        np.floating)
        if not numeric or not np.all(np.equal(np.mod(labels, 1), 0)):
            example = labels.reshape(-1)[
                0 if not numeric else int(np.argmax(
                    ~np.equal(np.mod(labels, 1), 0)))]
            raise ValueError(
                f"{where}: labels must be integer class indices 0..C-1; "
                f"got {labels.dtype} values such as {example!r}."
            )
    return labels.astype(np.int64)


def _note_conversion(name, native, target, count=None):
    how = (
        "repeating the gray channel" if target == 3
        else "tf.image.rgb_to_grayscale"
    )
    what = "grayscale" if native == 1 else "RGB"
    many = f"{count} " if count is not None else ""
    print(
        f"keras_adadim.data: converting {many}{what} images of {name!r} to "
        f"{target} channel{'s' if target > 1 else ''} ({how}); pass "
        "channels=None to keep them as they are."
    )


def _convert_channels(image, target):
    """uint8 ``[H, W, c]`` (c in 1..4, possibly only known at run time) to
    ``target`` channels."""
    import tensorflow as tf

    def gray_to(x):
        return tf.tile(x[..., :1], (1, 1, 3)) if target == 3 else x[..., :1]

    def rgb_to(x):
        x = x[..., :3]
        return x if target == 3 else tf.image.rgb_to_grayscale(x)

    c = image.shape[-1]
    if c is not None:
        return gray_to(image) if c in (1, 2) else rgb_to(image)
    c = tf.shape(image)[-1]
    return tf.cond(c <= 2, lambda: gray_to(image), lambda: rgb_to(image))


def _check_label_range(labels, num_classes, name, source):
    """Labels are all -1 (unlabelled) or all in 0..num_classes-1: another
    value would give the online probe an all-zero one-hot target (a loss of
    exactly 0) and fail only after training, in the evaluation."""
    labels = np.asarray(labels)
    if not labels.size:
        return
    if num_classes is None:
        bad, expected = labels != -1, "-1 (unlabelled)"
    else:
        bad = (labels < 0) | (labels >= num_classes)
        expected = f"in 0..{num_classes - 1} ({num_classes} classes)"
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name!r} ({source}): {int(bad.sum())} label(s) are not "
            f"{expected}, e.g. {labels[i]} at index {i}. Labels must be the "
            "class indices 0..C-1 of every image (for images without "
            "labels: no labels array, or labels=None; from_arrays: "
            "class_names lists every class)."
        )


def _in_memory(images, labels, *, name, source, split, num_classes,
               class_names, channels):
    import tensorflow as tf

    _check_label_range(labels, num_classes, name, source)
    native = images.shape[-1]
    target = channels or native
    if target != native:
        _note_conversion(name, native, target)
    reader = _array_reader(images, labels, target)
    n = len(images)

    def fingerprint():
        return "arrays", _sha256(
            repr((images.shape, str(images.dtype), target)).encode(),
            np.ascontiguousarray(images), np.ascontiguousarray(labels,
                                                               np.int64))

    return ImageDataset(
        dataset=tf.data.Dataset.range(n).map(reader),
        num_examples=n,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=(images.shape[1], images.shape[2], target),
        name=name,
        source=source,
        split=split,
        _access=_Access(reader=reader, fingerprint=fingerprint,
                        labels=labels),
    )


def _load_digits(split, channels):
    from keras_adadim.data.digits import load_digits

    if split not in ("train", "test"):
        raise ValueError(
            f"digits has the splits 'train' and 'test'; got {split!r}."
        )
    data = load_digits()
    images = np.round(data[f"{split}_images"] * 255).astype(np.uint8)
    return _in_memory(
        images, data[f"{split}_labels"].astype(np.int64), name="digits",
        source="digits", split=split, num_classes=10,
        class_names=[str(i) for i in range(10)], channels=channels,
    )


# ---- files on disk -------------------------------------------------------


def _load_path(path, split, channels, name=None):
    from keras_adadim.data import idx

    path = os.path.abspath(os.path.expanduser(path))
    if idx.has_idx_files(path):
        return _load_idx(path, split, channels, name=name)
    if os.path.isdir(path):
        return _load_folder(path, split, channels, name=name)
    if path.lower().endswith(".npz"):
        return _load_npz(path, split, channels, name=name)
    raise ValueError(
        f"{path!r} is neither a folder of images nor a .npz file."
    )


def _load_known_files(known, split, data_dir, channels):
    entry = KNOWN_DATASETS[known]
    roots = [os.path.expanduser(data_dir)] if data_dir else [os.getcwd()]
    if entry["kind"] == "npz":
        roots.append(os.path.expanduser("~/.medmnist"))
        for root in roots:
            candidate = os.path.join(root, entry["file"] + ".npz")
            if os.path.isfile(candidate):
                return _load_npz(candidate, split, channels, name=known)
        where = " or ".join(repr(r) for r in roots)
        how = entry["howto"].format(file=entry["file"],
                                    data_dir=data_dir or "<data_dir>")
        raise FileNotFoundError(
            f"{known!r} is not in TensorFlow Datasets and no "
            f"{entry['file']}.npz was found in {where}. {how} Then "
            f"load_dataset({known!r}, data_dir=...) or "
            f"load_dataset('/path/to/{entry['file']}.npz')."
        )
    for root in roots:
        for folder in entry["folders"]:
            candidate = os.path.join(root, folder)
            if os.path.isdir(candidate):
                return _load_folder(candidate, split, channels, name=known)
    how = entry["howto"].format(data_dir=data_dir or "<data_dir>")
    raise FileNotFoundError(
        f"{known!r} is not in TensorFlow Datasets and no folder "
        f"{entry['folders'][0]!r} was found in "
        f"{data_dir or os.getcwd()!r}. {how} Then load_dataset({known!r}, "
        "data_dir=...) or load_dataset('/path/to/folder') (one sub-folder "
        "per class, optionally inside train/ val/ test/)."
    )


_NPZ_FIX = (
    "Download or write it again: a .npz in the MedMNIST layout holds "
    "train_images, train_labels, val_images, val_labels, test_images, "
    "test_labels (np.savez(path, train_images=..., train_labels=..., ...))."
)


def _open_npz(path):
    """``np.load(path)`` as an open archive of named arrays, or a
    ``ValueError`` naming ``path`` (empty, truncated or damaged zip, text,
    a single ``.npy`` array, pickled objects) instead of NumPy's or
    zipfile's own error."""
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"No such file: {path!r}.") from e
    except Exception as e:
        size = os.path.getsize(path) if os.path.isfile(path) else None
        what = ("an empty file" if size == 0 else
                "not a readable .npz archive (truncated by an interrupted "
                "download, or not a .npz file at all)")
        raise ValueError(
            f"{path!r} is {what}: {type(e).__name__}: {e}. {_NPZ_FIX}"
        ) from e
    if not hasattr(f, "files"):  # a .npy array under a .npz name
        raise ValueError(
            f"{path!r} holds a single array of shape {np.shape(f)} (a .npy "
            f"file), not a .npz archive of named arrays. {_NPZ_FIX}"
        )
    return f


def _npz_array(f, path, key):
    try:
        return f[key]
    except Exception as e:
        raise ValueError(
            f"{path!r}: its array {key!r} cannot be read ({type(e).__name__}: "
            f"{e}); the file is damaged, or holds Python objects rather than "
            f"numbers. {_NPZ_FIX}"
        ) from e


def _top_label(labels):
    """The largest class label of a well-formed labels array (``(n,)`` or
    ``(n, 1)`` integers), else None (a malformed array of another split
    is reported when that split is loaded)."""
    if not labels.size or not (labels.ndim == 1 or (
            labels.ndim == 2 and labels.shape[1] == 1)):
        return None
    if not (np.issubdtype(labels.dtype, np.integer)
            or np.issubdtype(labels.dtype, np.floating)
            or labels.dtype == bool):
        return None
    top = np.max(labels)
    return int(top) if np.isfinite(top) else None


def _load_npz(path, split, channels, name=None):
    name = name or os.path.splitext(os.path.basename(path))[0]
    with _open_npz(path) as f:
        keys = set(f.files)
        available = sorted(
            k[: -len("_images")] for k in keys if k.endswith("_images")
        )
        chosen = None
        for alias in _SPLIT_FOLDERS.get(_split_key(split), (split,)):
            if f"{alias}_images" in keys:
                chosen = alias
                break
        if chosen is None:
            held = ", ".join(sorted(keys)) or "nothing"
            raise ValueError(
                f"{path!r} has no split {split!r}: it holds "
                f"{', '.join(available) or 'no *_images arrays'} (arrays: "
                f"{held}). Expected the MedMNIST layout: train_images, "
                "train_labels, val_images, val_labels, test_images, "
                "test_labels."
            )
        images = _npz_array(f, path, f"{chosen}_images")
        labels = (_npz_array(f, path, f"{chosen}_labels")
                  if f"{chosen}_labels" in keys else None)
        all_labels = [
            _npz_array(f, path, k) for k in sorted(keys)
            if k.endswith("_labels")
        ]
    where = f"{path!r} ({chosen}_images)"
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{path!r}: {chosen}_images must be (n, H, W) or (n, H, W, C) "
            f"with C in (1, 3); got {images.shape}."
        )
    if not len(images) or not images.shape[1] or not images.shape[2]:
        raise ValueError(
            f"{where} holds no images (shape {images.shape[:3]}): there is "
            f"nothing to load. {_NPZ_FIX}"
        )
    images = _to_uint8(images, name, where=where)
    n = len(images)
    num_classes = None
    if labels is not None and labels.ndim == 2 and labels.shape[1] > 1:
        print(
            f"keras_adadim.data: {name!r} has multi-label targets "
            f"{labels.shape}; they are ignored (labels = -1)."
        )
        labels = None
    if labels is not None:
        labels = _clean_labels(
            labels, n, name,
            where=f"{path!r} ({chosen}_labels for {chosen}_images)")
        tops = [t for t in map(_top_label, all_labels) if t is not None]
        num_classes = max(tops) + 1 if tops else None
    else:
        labels = np.full(n, -1, np.int64)
    return _in_memory(
        images, labels, name=name, source=f"npz:{path}", split=chosen,
        num_classes=num_classes, class_names=None, channels=channels,
    )


def _split_key(split):
    s = str(split).lower()
    for key, aliases in _SPLIT_FOLDERS.items():
        if s in aliases:
            return key
    return s


def _is_image(fname):
    return fname.lower().endswith(IMAGE_EXTENSIONS) and not fname.startswith(
        "."
    )


def _subdirs(path):
    return sorted(
        d for d in os.listdir(path)
        if not d.startswith(".") and os.path.isdir(os.path.join(path, d))
    )


def _images_under(path):
    out = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(os.path.join(root, f) for f in sorted(files)
                   if _is_image(f))
    return out


def _read_annotations(path):
    """``{file name: class}`` from a Tiny ImageNet ``val_annotations.txt``
    (``<file>\\t<class>\\t...`` per line); a ``ValueError`` naming it
    when it is not such a text file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path!r} cannot be read as text ({type(e).__name__}: {e}); it "
            "should list '<file name>\\t<class>' per line (Tiny ImageNet's "
            "val_annotations.txt). Download it again."
        ) from e
    by_file = {}
    for line in lines:
        parts = line.strip().split("\t")
        if len(parts) >= 2 and parts[0] and parts[1]:
            by_file[parts[0]] = parts[1]
    return by_file


def _scan_split(path):
    """Files and class names of one split folder: ``(files, classes)``
    with ``classes[i]`` the class name of ``files[i]`` (None: unlabelled).
    """
    annotations = os.path.join(path, "val_annotations.txt")
    if os.path.isfile(annotations):  # Tiny ImageNet's val/ layout
        by_file = _read_annotations(annotations)
        folder = os.path.join(path, "images")
        folder = folder if os.path.isdir(folder) else path
        files = _images_under(folder)
        unlisted = [p for p in files if os.path.basename(p) not in by_file]
        if unlisted:
            raise ValueError(
                f"{annotations!r} gives no class for {len(unlisted)} of the "
                f"{len(files)} images beside it, e.g. {unlisted[0]!r}. Each "
                "line must read '<file name>\\t<class>' (Tiny ImageNet's "
                "val_annotations.txt); download it again, or remove the "
                "images it does not list."
            )
        return files, [by_file.get(os.path.basename(p)) for p in files]
    classes = _subdirs(path)
    if classes == ["images"] or not classes:
        files = _images_under(path)
        return files, [None] * len(files)
    files, names = [], []
    for c in classes:
        found = _images_under(os.path.join(path, c))
        files.extend(found)
        names.extend([c] * len(found))
    return files, names


def _class_names_of(path):
    """Class names of a split folder without listing its files."""
    if os.path.isfile(os.path.join(path, "val_annotations.txt")):
        return set(_read_annotations(
            os.path.join(path, "val_annotations.txt")).values())
    classes = _subdirs(path)
    return set() if classes == ["images"] else set(classes)


# PIL's names of the formats tf.io.decode_image reads.
_DECODABLE = ("PNG", "JPEG", "MPO", "BMP", "GIF")


def _inspect(files):
    """(channels per inspected file, sizes, all inspected?) via PIL's
    lazy header reads; TensorFlow decoding if PIL is missing."""
    if len(files) > MAX_INSPECTED_FILES:
        idx = np.linspace(0, len(files) - 1, MAX_INSPECTED_FILES)
        sample = [files[int(i)] for i in idx]
    else:
        sample = files
    chans, sizes = [], []
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is nearly always there
        Image = None
    fix = ("Remove or replace it (download or export the dataset again); "
           "the folder's images must be PNG, JPEG, BMP or GIF files that "
           "TensorFlow decodes.")
    for p in sample:
        if Image is not None:
            try:
                with Image.open(p) as im:
                    mode, size, kind = im.mode, im.size, im.format
                    # PNG: every chunk and its checksum, so that a
                    # truncated file fails here, not mid-training (no
                    # pixels are decoded; other formats: the header only).
                    im.verify()
            except Exception as e:
                what = ("an empty file" if os.path.isfile(p)
                        and os.path.getsize(p) == 0 else
                        "not a readable image (truncated, damaged, or not "
                        "an image)")
                raise ValueError(
                    f"Cannot read image {p!r}: it is {what} "
                    f"({type(e).__name__}: {e}). {fix}"
                ) from e
            if kind not in _DECODABLE:
                raise ValueError(
                    f"Cannot read image {p!r}: it holds {kind} data, which "
                    f"TensorFlow cannot decode. Convert it, e.g. "
                    f"PIL.Image.open(path).save('image.png'). {fix}"
                )
            chans.append(1 if mode in ("1", "L", "LA", "I", "I;16", "F")
                         else 3)
            sizes.append((size[1], size[0]))
        else:
            import tensorflow as tf

            try:
                img = tf.io.decode_image(tf.io.read_file(p),
                                         expand_animations=False)
            except Exception as e:
                raise ValueError(
                    f"Cannot read image {p!r} ({type(e).__name__}). {fix}"
                ) from e
            chans.append(1 if img.shape[-1] <= 2 else 3)
            sizes.append(tuple(img.shape[:2]))
    return chans, sizes, len(sample) == len(files)


def _load_folder(path, split, channels, name=None):
    import tensorflow as tf

    name = name or os.path.basename(os.path.normpath(path))
    split_dirs = {}
    for key, aliases in _SPLIT_FOLDERS.items():
        for a in aliases:
            if os.path.isdir(os.path.join(path, a)):
                split_dirs[key] = os.path.join(path, a)
                break
    want = _split_key(split)
    if split_dirs:
        if want not in split_dirs:
            folders = ", ".join(
                os.path.basename(d) for d in split_dirs.values()
            )
            raise ValueError(
                f"Folder {path!r} has no split {split!r}; it has "
                f"{', '.join(sorted(split_dirs))} (sub-folders {folders})."
            )
        split_path = split_dirs[want]
        classes = sorted(set().union(
            *(_class_names_of(d) for d in split_dirs.values())
        ))
    else:
        if want != "train":
            raise ValueError(
                f"Folder {path!r} has no train/ val/ test/ sub-folders, so "
                f"it is one split, 'train'; got split={split!r}."
            )
        split_path = path
        classes = sorted(_class_names_of(path))
    files, names = _scan_split(split_path)
    if not files:
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in "
            f"{split_path!r}. Expected one sub-folder per class, e.g. "
            f"{split_path}/cat/001.png, {split_path}/dog/002.jpg (or the "
            "images directly in the folder, unlabelled)."
        )
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array(
        [index.get(c, -1) if c is not None else -1 for c in names], np.int64
    )
    chans, sizes, complete = _inspect(files)
    n_gray, n_rgb = chans.count(1), chans.count(3)
    native = 3 if n_rgb else 1
    target = channels or native
    if n_gray and n_rgb and channels is None:
        print(
            f"keras_adadim.data: {name!r} mixes grayscale ({n_gray}) and "
            f"colour ({n_rgb}) images{'' if complete else ' (inspected)'}; "
            "decoding all to 3 channels."
        )
    elif target == 3 and n_gray:
        _note_conversion(name, 1, 3, n_gray)
    elif target == 1 and n_rgb:
        _note_conversion(name, 3, 1, n_rgb)
    h = w = None
    if complete and len(set(sizes)) == 1:
        h, w = sizes[0]
    files_t = tf.constant(files)
    labels_t = tf.constant(labels)

    def reader(i):
        raw = tf.io.read_file(tf.gather(files_t, i))
        image = tf.io.decode_image(raw, channels=0, dtype=tf.uint8,
                                   expand_animations=False)
        image = _convert_channels(image, target)
        image = tf.ensure_shape(image, (h, w, target))
        return image, tf.gather(labels_t, i)

    labelled = bool(classes) and bool((labels >= 0).any())

    def fingerprint():
        # Paths (relative), sizes and modification times: cheap (no image
        # is read) and changed by any edit, addition or removal.
        rows = []
        for f, label in zip(files, labels):
            st = os.stat(f)
            rows.append(f"{os.path.relpath(f, path)}\t{st.st_size}\t"
                        f"{st.st_mtime_ns}\t{label}")
        return "files", _sha256(f"{target}\n".encode(),
                                "\n".join(rows).encode())

    ds = tf.data.Dataset.range(len(files)).map(
        reader, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return ImageDataset(
        dataset=ds,
        num_examples=len(files),
        num_classes=len(classes) if labelled else None,
        class_names=list(classes) if labelled else None,
        image_shape=(h, w, target),
        name=name,
        source=f"folder:{path}",
        split=os.path.basename(split_path) if split_dirs else "train",
        _access=_Access(reader=reader, fingerprint=fingerprint,
                        labels=labels),
    )


# ---- MNIST-format IDX files ----------------------------------------------


def _load_idx(folder, split, channels, name=None, prefix=None):
    from keras_adadim.data import idx

    got = idx.load_idx_split(folder, split, prefix=prefix, name=name)
    name = name or got["prefix"].rstrip("-_.") or os.path.basename(
        os.path.normpath(folder))
    return _in_memory(
        got["images"], got["labels"], name=name,
        source="idx:" + (os.path.join(folder, got["prefix"])
                         if got["prefix"] else folder),
        split=str(split) if "[" in str(split) else got["split"],
        num_classes=got["num_classes"], class_names=got["class_names"],
        channels=channels,
    )


def _load_idx_known(known, split, data_dir, download, channels):
    """Fashion-MNIST / MNIST by name: TensorFlow Datasets' prepared copy,
    else the system's IDX files, else a TensorFlow Datasets download."""
    from keras_adadim.data import idx

    entry = KNOWN_DATASETS[known]
    builder = None
    try:
        builder = _tfds().builder(entry["tfds"], data_dir=data_dir)
        # is_prepared() logs a warning for a missing folder; the usual case
        # here (system files), so look first.
        prepared = builder.data_path.exists() and builder.is_prepared()
    except Exception:  # no tensorflow-datasets, unreadable data_dir: skip
        prepared = False
    if prepared:
        return _load_tfds(entry["tfds"], split, data_dir, False, channels,
                          name=known)
    folder = idx.system_dataset_dir(entry["system"])
    if idx.has_idx_files(folder):
        return _load_idx(folder, split, channels, name=known)
    error = None
    if download:
        try:
            return _load_tfds(entry["tfds"], split, data_dir, True,
                              channels, name=known)
        except FileNotFoundError as e:  # no network, most likely
            error = e
    raise FileNotFoundError(
        _idx_missing_message(known, entry, folder, builder, data_dir,
                             download, error)
    ) from error


def _idx_missing_message(known, entry, folder, builder, data_dir, download,
                         error):
    from keras_adadim.data import idx

    root = _tfds_root(builder, data_dir)
    tfds_name = entry["tfds"]
    if entry["apt"]:
        installed = os.path.join(idx.SYSTEM_DATASETS_DIR, entry["system"])
        system = (
            f"  1. Offline, on Debian / Ubuntu: sudo apt-get install "
            f"{entry['apt']}\n     (it puts the original IDX files into "
            f"{installed}/, which is read from there)."
        )
        if os.path.normpath(folder) != os.path.normpath(installed):
            system += (
                f"\n     ${idx.SYSTEM_DATASETS_ENV} is set, so {folder}/ "
                "is read instead: unset it, or copy the files there."
            )
    else:
        system = (
            f"  1. Offline: put the four original IDX files "
            f"(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into "
            f"{folder}/."
        )
    lines = [
        f"{known!r} was not found: TensorFlow Datasets has not prepared it "
        f"in data_dir {root!r}, there are no IDX files in {folder!r}, and "
        + ("download=False." if not download else
           "TensorFlow Datasets could not download it here."),
        "Get it either way:",
        system,
        f"  2. With network access, TensorFlow Datasets (prepared once "
        f"under data_dir):\n     python -c \"import tensorflow_datasets as "
        f"tfds; tfds.builder('{tfds_name}', data_dir='{root}')"
        f".download_and_prepare()\"\n     or load_dataset({known!r}, "
        f"data_dir=..., download=True).",
        f"Another folder of IDX files: load_dataset('/path/to/folder'), or "
        f"set ${idx.SYSTEM_DATASETS_ENV} to the folder holding "
        f"{entry['system']}/.",
    ]
    if error is not None:
        cause = error.__cause__ or error  # _load_tfds chains the real error
        lines.append(f"The download attempt failed with: "
                     f"{type(cause).__name__}: {str(cause).strip()[:500]}")
    return "\n".join(lines)


# ---- TensorFlow Datasets -------------------------------------------------


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "Loading TensorFlow Datasets needs `pip install "
            "tensorflow-datasets`."
        ) from e
    return tfds


def _is_tfds_name(name):
    base = name.split("/")[0].split(":")[0]
    if not re.fullmatch(r"[a-z0-9_]+", base):
        return False
    try:
        _tfds().builder_cls(base)
    except Exception:
        return False
    return True


def _tfds_root(builder, data_dir):
    root = getattr(builder, "_data_dir_root", None) or data_dir
    if root is None:
        root = os.environ.get(
            "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")
        )
    return str(root)


def _not_prepared_message(name, tfds_name, builder, data_dir, download,
                          error=None):
    root = _tfds_root(builder, data_dir)
    manual_dir = os.path.join(root, "downloads", "manual")
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    command = (
        "python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{tfds_name}', data_dir='{root}')"
        ".download_and_prepare()\""
    )
    lines = [
        f"Dataset {name!r} (TensorFlow Datasets {tfds_name!r}) is not "
        f"prepared in data_dir {root!r}"
        + (" and download=False." if not download else
           " and could not be downloaded and prepared here.")
    ]
    if manual:
        lines.append(
            "It needs a manual download: put its files into the manual_dir "
            f"{manual_dir!r} (<data_dir>/downloads/manual). TensorFlow "
            "Datasets says:\n  " + " ".join(manual.split())
        )
        lines.append(f"Then prepare it once (no network needed):\n  "
                     f"{command}")
    else:
        lines.append(
            "Prepare it once on a machine with internet access (it is "
            f"downloaded into {os.path.join(root, 'downloads')!r} and "
            f"converted under {root!r}):\n  {command}\n"
            f"or call load_dataset({name!r}, data_dir={root!r}, "
            "download=True). To use files you already have, copy a "
            f"prepared {tfds_name.split('/')[0]}/ folder into {root!r}, or "
            f"put the original archives into {manual_dir!r} "
            "(<data_dir>/downloads/manual)."
        )
    if error is not None:
        lines.append(f"The attempt failed with: {type(error).__name__}: "
                     f"{str(error).strip()[:500]}")
    lines.append(
        "Other data: a folder (load_dataset('/path/to/folder')), a "
        ".npz (load_dataset('/path/to/file.npz')) or arrays "
        "(from_arrays); 'digits' works offline."
    )
    return "\n".join(lines)


def _load_tfds(tfds_name, split, data_dir, download, channels, name=None):
    import tensorflow as tf

    tfds = _tfds()
    name = name or tfds_name
    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except Exception as e:
        if "not found" in str(e).lower() or isinstance(
            e, getattr(tfds.core, "DatasetNotFoundError", ())
        ):
            raise ValueError(_unknown_message(tfds_name)) from e
        raise
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(_not_prepared_message(
                name, tfds_name, builder, data_dir, download))
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise FileNotFoundError(_not_prepared_message(
                name, tfds_name, builder, data_dir, download, error=e)) from e
    info = builder.info
    try:
        num_examples = int(info.splits[split].num_examples)
    except Exception as e:
        raise ValueError(
            f"{name!r} has no split {split!r}; it has "
            f"{', '.join(sorted(info.splits.keys()))}."
        ) from e
    image_key, label_key = None, None
    for key, feature in info.features.items():
        if image_key is None and isinstance(feature, tfds.features.Image):
            image_key = key
        if isinstance(feature, tfds.features.ClassLabel) and (
            label_key is None or key == "label"
        ):
            label_key = key
    if image_key is None:
        raise ValueError(f"{name!r} has no image feature; features: "
                         f"{list(info.features.keys())}.")
    shape = tuple(info.features[image_key].shape)
    native = shape[-1]
    target = channels or native
    if target != native:
        _note_conversion(name, native, target)
    num_classes = class_names = None
    if label_key is not None:
        label_feature = info.features[label_key]
        num_classes = int(label_feature.num_classes)
        class_names = list(label_feature.names)

    image_feature = info.features[image_key]

    def label_of(example):
        if label_key is None:
            return tf.constant(-1, tf.int64)
        return tf.cast(example[label_key], tf.int64)

    def convert(example):
        image = example[image_key]
        if target != native:
            image = _convert_channels(image, target)
        return image, label_of(example)

    ds = builder.as_dataset(split=split, shuffle_files=False).map(
        convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )

    def encoded():
        # Storage order, images still encoded (PNG / JPEG bytes): cheap to
        # shuffle in blocks; decoded after shuffling, in parallel.
        raw = builder.as_dataset(
            split=split, shuffle_files=False,
            decoders={image_key: tfds.decode.SkipDecoding()},
        )
        return raw.map(lambda ex: (ex[image_key], label_of(ex)))

    def decode(data):
        image = image_feature.decode_example(data)
        if target != native:
            image = _convert_channels(image, target)
        return tf.ensure_shape(image, (shape[0], shape[1], target))

    def materialize():
        xs, ys = [], []
        plain = builder.as_dataset(split=split, shuffle_files=False).map(
            lambda ex: (ex[image_key], label_of(ex)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
        for x, y in plain.batch(1024).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    nbytes = (
        num_examples * int(np.prod(shape))
        if all(d is not None for d in shape) else None
    )
    return ImageDataset(
        dataset=ds,
        num_examples=num_examples,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=(shape[0], shape[1], target),
        name=name,
        source=f"tfds:{tfds_name}",
        split=split,
        _access=_Access(encoded=encoded, decode=decode,
                        materialize=materialize, nbytes=nbytes,
                        target=target),
    )


def _unknown_message(name):
    candidates = list(KNOWN_DATASETS) + list(_ALIASES)
    try:
        candidates += list(_tfds().list_builders())
    except Exception:  # pragma: no cover
        pass
    # Our names and tfds' overlap (cifar100 is both): suggest each once.
    candidates = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(str(name).lower(), candidates, n=3,
                                      cutoff=0.6)
    by_kind = {}
    for k, v in KNOWN_DATASETS.items():
        by_kind.setdefault(v["kind"], []).append(k)
    return (
        f"Unknown dataset {name!r}."
        + (f" Did you mean: {', '.join(close)}?" if close else "")
        + "\nKnown datasets: "
        + f"{', '.join(by_kind['bundled'])} (bundled, offline); "
        + f"{', '.join(by_kind['tfds'])} (TensorFlow Datasets); "
        + f"{', '.join(by_kind['idx'])} (TensorFlow Datasets, else the "
        "system's IDX files); "
        + f"{', '.join(by_kind['folder'])} (folders under data_dir); "
        + f"{', '.join(by_kind['npz'])} (MedMNIST .npz under data_dir)."
        + "\nAny other TensorFlow Datasets name works too (e.g. 'kmnist', "
        "'tfds:svhn_cropped')."
        + "\nYour own images: load_dataset('/path/to/folder') (one "
        "sub-folder per class, optionally inside train/ val/ test/, or "
        "MNIST-format IDX files), "
        "load_dataset('/path/to/file.npz') (MedMNIST layout: train_images, "
        "train_labels, val_*, test_*) or from_arrays(images, labels)."
    )


# --------------------------------------------------------------------------
# Pipelines


def _sha256(*parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(memoryview(part).cast("B") if isinstance(
            part, np.ndarray) else part)
    return digest.hexdigest()


def fingerprint(data):
    """A fingerprint of a split's content, recorded when a run starts and
    compared when it resumes: ``{"kind", "sha256", "num_examples"}``.

    In-memory sources (arrays, ``.npz``, IDX, digits): the sha256 of the
    image and label arrays. Folders: of each file's relative path, size,
    modification time and label (no image is decoded). Streamed TensorFlow
    Datasets splits: of their name, split, size and shape only (their
    files are versioned by TensorFlow Datasets)."""
    data = _check_data(data)
    access = data._access
    if access is not None and access.fingerprint is not None:
        kind, digest = access.fingerprint()
    else:
        kind = "summary"
        digest = _sha256(repr((data.source, data.split, data.num_examples,
                               tuple(data.image_shape),
                               data.num_classes)).encode())
    return {"kind": kind, "sha256": digest,
            "num_examples": int(data.num_examples)}


def steps_per_epoch(data, batch_size, drop_remainder=True):
    """Batches per epoch of ``pretraining_dataset(data, batch_size=...)``:
    ``num_examples // batch_size`` (``ceil`` without ``drop_remainder``)."""
    n = _check_data(data).num_examples
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def _check_data(data):
    if not isinstance(data, ImageDataset):
        raise TypeError(
            "Expected an ImageDataset (from load_dataset(...) or "
            f"from_arrays(images, labels)); got {type(data).__name__}."
        )
    return data


def _resolve_image_size(data, image_size):
    if image_size is not None:
        image_size = int(image_size)
        if image_size < 1:
            raise ValueError(f"`image_size` must be >= 1; got {image_size}.")
        return image_size
    h, w = data.image_shape[:2]
    if h is None or w is None or h != w:
        raise ValueError(
            f"{data.name!r} has images of shape {data.image_shape[:2]} (None: "
            "varying), so there is no single native size: pass image_size, "
            "e.g. image_size=224 (ImageNet), 96 (STL-10), 64, 32."
        )
    return int(h)


def _resolve_scheme(data, augmentation):
    if isinstance(augmentation, str) and augmentation == "auto":
        return "digits" if data.source == "digits" else "asymmetric"
    return augmentation


def resolve_scheme(data, augmentation):
    """The scheme ``pretraining_dataset(data, augmentation)`` uses:
    ``"auto"`` is ``"digits"`` for digits, else ``"asymmetric"``; anything
    else as given."""
    return _resolve_scheme(_check_data(data), augmentation)


def _resize_to(image, size):
    """float ``[H, W, C]`` to ``[size, size, C]``: the shorter side resized
    to ``size`` (bilinear, antialiased), then a centred crop."""
    import tensorflow as tf

    if image.shape[0] == size and image.shape[1] == size:
        return image
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = size / tf.minimum(h, w)
    nh = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
    nw = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
    image = tf.image.resize(image, tf.stack([nh, nw]), antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    image = tf.slice(image, tf.stack([top, left, 0]),
                     tf.stack([size, size, -1]))
    return tf.clip_by_value(tf.ensure_shape(image, (size, size, None)),
                            0.0, 1.0)


def pretraining_dataset(
    data,
    augmentation="auto",
    image_size=None,
    batch_size=256,
    seed=0,
    shuffle_buffer=10000,
    with_labels=True,
    drop_remainder=True,
    epoch=0,
    *,
    step=0,
    epochs=None,
    augment_on="host",
):
    """The batched two-view stream for pre-training: ``((x1, x2), y)``, or
    ``((x1, x2),)`` with ``with_labels=False`` (a plain pair would be read
    by Keras as ``(x, y)``); views float32 ``[b, S, S, C]`` in [0, 1],
    labels int64 (-1 without labels), prefetched.

    One stream over all epochs. Epoch ``e`` is a fresh shuffle of the
    split with fresh augmentations, both a deterministic function of
    ``(seed, e)`` alone: the shuffle order, and for the image at position
    ``k`` of epoch ``e`` the seeds of its two views. The stream starts at
    epoch ``epoch`` (step ``step`` of it) and goes on with ``epoch + 1``,
    ``epoch + 2``, ... forever (or for ``epochs`` epochs). Each epoch is
    exactly ``steps_per_epoch(data, batch_size)`` batches, so

        model.fit(pretraining_dataset(data, batch_size=b),
                  steps_per_epoch=steps_per_epoch(data, b), epochs=E)

    sees data epoch ``e`` in Keras epoch ``e``, and a run killed at
    (epoch ``e``, step ``s``) resumes bit-identically with
    ``pretraining_dataset(..., epoch=e, step=s)`` (the same batches as
    ``pretraining_dataset(..., epoch=e).skip(s)``, without computing the
    skipped views) and ``fit(..., initial_epoch=e)``.

    Shuffling, all with stateless random ops (TensorFlow's global seed
    plays no part): arrays, ``.npz``, folders and TensorFlow Datasets
    splits up to ``MAX_IN_MEMORY_BYTES`` of decoded images (read into
    memory once) get a full random permutation per epoch. Larger
    TensorFlow Datasets splits (ImageNet) are streamed: the stored order
    (already shuffled by TensorFlow Datasets when it was prepared) is
    rotated by a random offset, each block of ``shuffle_buffer`` encoded
    images is permuted, then the images are decoded in parallel.

    Args:
        data: an ``ImageDataset`` (``load_dataset``, ``from_arrays``).
        augmentation: ``"auto"`` (``"digits"`` for digits, else
            ``"asymmetric"``), a scheme name (``"asymmetric"``,
            ``"ressl"``, ``"symmetric"``, ``"digits"``), a callable
            ``fn(image, seed)`` or a pair of them (see
            ``keras_adadim.data.augment.make_augmentation``), or None (both
            views = the resized image).
        image_size: side of the views; None: the images' own (square) size.
            Images smaller than ``image_size`` are upsampled, with a
            warning.
        batch_size: images per batch (>= 2: the loss needs batch
            statistics).
        seed: seeds the shuffle and the augmentations.
        shuffle_buffer: block size of the shuffle of streamed sources.
        with_labels: yield ``((x1, x2), y)`` (else ``((x1, x2),)``).
        drop_remainder: drop each epoch's last partial batch (default;
            then every batch has ``batch_size`` images).
        epoch: first epoch of the stream.
        step: first step within ``epoch`` (for resuming mid-epoch).
        epochs: number of epochs in the stream (None: forever; pass
            ``steps_per_epoch`` to ``fit``).
        augment_on: ``"host"`` (the views are made here, in ``tf.data``)
            or ``"device"``: the stream yields the un-augmented images,
            ``(x, y)`` or ``(x,)``, at their stored size (resized to
            ``image_size`` where the sizes vary), shuffled and resumable as
            above, for a model that makes the views in its step
            (``keras_adadim.data.device_augment.device_augmentations``);
            ``augmentation`` must then be a scheme the device path has.

    Raises:
        ValueError: an empty dataset, ``batch_size`` < 2 or larger than the
            dataset, ``step`` beyond the epoch, no native size.
    """
    import tensorflow as tf

    from keras_adadim.data.augment import make_augmentation

    data = _check_data(data)
    n = int(data.num_examples)
    if n == 0:
        raise ValueError(
            f"{data.name!r} ({data.source}, split {data.split!r}) is empty: "
            "there is nothing to pre-train on."
        )
    batch_size = int(batch_size)
    if batch_size < 2:
        raise ValueError(
            f"`batch_size` must be >= 2 (the loss needs batch variance and "
            f"covariance); got {batch_size}."
        )
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than {data.name!r}, which "
            f"has {n} images, so no full batch can be formed. Use "
            f"batch_size <= {n} (e.g. {max(2, min(256, n // 4))})."
        )
    epoch, step = int(epoch), int(step)
    if epoch < 0 or step < 0:
        raise ValueError(f"`epoch` and `step` must be >= 0; got {epoch}, "
                         f"{step}.")
    spe = steps_per_epoch(data, batch_size, drop_remainder)
    if step >= spe:
        raise ValueError(
            f"`step`={step} is past the end of an epoch ({spe} steps); "
            f"resume with epoch={epoch + 1}, step=0."
        )
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f"`epochs` must be >= 1 or None; got {epochs}.")
    image_size = _resolve_image_size(data, image_size)
    scheme = _resolve_scheme(data, augmentation)
    channels = data.image_shape[-1]
    if augment_on not in ("host", "device"):
        raise ValueError(
            f"`augment_on` must be 'host' or 'device'; got {augment_on!r}.")
    on_device = augment_on == "device"
    if on_device:
        from keras_adadim.data.device_augment import view_specs

        view_specs(scheme)  # refuses host-only schemes, naming the fix
        h, w = data.image_shape[:2]
        fixed = h is not None and w is not None

        def undo(x, s):  # the image itself, one size for batching
            return x if fixed else _resize_to(x, image_size)

        view1 = view2 = undo
    elif scheme is None:
        view1 = view2 = lambda x, s: _resize_to(x, image_size)  # noqa: E731
    else:
        view1, view2 = make_augmentation(scheme, image_size, channels)
    h, w = data.image_shape[:2]
    if h is not None and w is not None and min(h, w) < image_size:
        warnings.warn(
            f"{data.name!r} images are {h}x{w}, smaller than image_size="
            f"{image_size}: every view is upsampled (bilinear) from at most "
            f"{h}x{w} pixels, which adds no detail but multiplies the cost "
            f"of each step. Pass image_size=None to train at {max(h, w)} px "
            "(a CIFAR ResNet stem handles small images).",
            UserWarning,
            stacklevel=2,
        )

    per_epoch = spe * batch_size if drop_remainder else n
    seed_t = tf.constant(int(seed), tf.int64)
    first_epoch = tf.constant(epoch, tf.int64)
    first_offset = tf.constant(step * batch_size, tf.int64)

    def keys(e):
        base = tf.stack([seed_t, tf.cast(e, tf.int64)])
        k = tf.random.experimental.stateless_split(base, 2)
        return k[0], k[1]  # order key, augmentation key

    def offset(e):
        return tf.where(tf.equal(e, first_epoch), first_offset,
                        tf.constant(0, tf.int64))

    access = data._access
    reader = access.random_access() if access is not None else None
    if reader is not None:
        load = reader

        def elements(e):
            order_key, _ = keys(e)
            perm = tf.argsort(tf.random.stateless_uniform(
                (n,), order_key, minval=None, maxval=None, dtype=tf.int64
            ))
            start = offset(e)
            k = tf.range(start, per_epoch, dtype=tf.int64)
            i = tf.gather(tf.cast(perm, tf.int64), k)
            return tf.data.Dataset.from_tensor_slices(
                (i, tf.fill(tf.shape(k), tf.cast(e, tf.int64)), k)
            )
    else:
        if access is None or access.encoded is None:
            raise ValueError(
                f"{data.name!r} ({data.source}) cannot be shuffled: it has "
                "neither random access nor an encoded stream. Build it with "
                "load_dataset or from_arrays."
            )
        block = max(1, min(int(shuffle_buffer), n))

        def load(element):
            encoded, label = element
            return access.decode(encoded), label

        def elements(e):
            order_key, _ = keys(e)
            # A rotation of the storage order by a random offset, then a
            # random permutation within each block of `shuffle_buffer`
            # encoded images: stateless, so a function of (seed, e) alone.
            rot_key, block_key = tf.unstack(
                tf.random.experimental.stateless_split(order_key, 2)
            )
            start = tf.random.stateless_uniform(
                (), rot_key, minval=0, maxval=n, dtype=tf.int64
            )
            source = access.encoded()
            stream = source.skip(start).concatenate(source.take(start))

            def permute(b, chunk):
                size = tf.shape(chunk[1], out_type=tf.int64)[0]
                perm = tf.argsort(tf.random.stateless_uniform(
                    (size,), tf.random.experimental.stateless_fold_in(
                        block_key, b),
                    minval=None, maxval=None, dtype=tf.int64,
                ))
                return tf.nest.map_structure(
                    lambda t: tf.gather(t, perm), chunk
                )

            stream = stream.batch(block).enumerate().map(permute).unbatch()
            ds = tf.data.Dataset.zip(
                stream.take(per_epoch),
                tf.data.Dataset.range(per_epoch).map(
                    lambda k: (tf.cast(e, tf.int64), k)
                ),
            ).map(lambda el, ek: (el, ek[0], ek[1]))
            return ds.skip(offset(e))

    @tf.autograph.experimental.do_not_convert
    def make(payload, e, k):
        image, label = load(payload)
        x = tf.cast(image, tf.float32) / 255.0
        _, aug_key = keys(e)
        s = tf.random.experimental.stateless_fold_in(aug_key, k)
        s = tf.cast(tf.random.experimental.stateless_split(s, 2), tf.int32)
        views = (view1(x, s[0]), view2(x, s[1]))
        if on_device:
            views = views[0]
        if with_labels:
            return views, tf.cast(label, tf.int64)
        return (views,)

    last = epoch + int(epochs) if epochs is not None else 2**62
    ds = tf.data.Dataset.range(epoch, last)
    autotune = tf.data.AUTOTUNE
    if drop_remainder:
        # Every epoch holds whole batches, so batches never straddle epochs.
        ds = ds.flat_map(elements).map(
            make, num_parallel_calls=autotune, deterministic=True
        ).batch(batch_size, drop_remainder=True)
    else:
        ds = ds.flat_map(
            lambda e: elements(e).map(
                make, num_parallel_calls=autotune, deterministic=True
            ).batch(batch_size)
        )
    total = (
        tf.data.INFINITE_CARDINALITY if epochs is None
        else int(epochs) * spe - step
    )
    ds = ds.apply(tf.data.experimental.assert_cardinality(total))
    return ds.prefetch(autotune)


def evaluation_dataset(data, image_size=None, batch_size=256):
    """Batched ``(x, y)`` without augmentation, in the split's order:
    ``x`` float32 ``[b, S, S, C]`` in [0, 1] (images whose size differs
    from ``image_size`` are resized on their shorter side and centre
    cropped), ``y`` int64 (-1 without labels). The last batch may be
    smaller."""
    data = _check_data(data)
    return _evaluation(data, data.dataset, image_size, batch_size)


def _evaluation(data, ds, image_size, batch_size):
    import tensorflow as tf

    size = _resolve_image_size(data, image_size)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")

    def prepare(image, label):
        x = tf.cast(image, tf.float32) / 255.0
        return _resize_to(x, size), label

    return ds.map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def to_numpy(data, image_size=None, max_examples=None):
    """``(images, labels)`` as NumPy arrays (float32 ``[n, S, S, C]`` in
    [0, 1], int64), in the split's order, at most ``max_examples`` of them:
    for small sets (linear probes, ``RepresentationMonitor``)."""
    data = _check_data(data)
    ds = data.dataset
    if max_examples is not None:
        ds = ds.take(int(max_examples))
    size = _resolve_image_size(data, image_size)
    xs, ys = [], []
    for x, y in _evaluation(data, ds, size, 512).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        return (np.zeros((0, size, size, data.channels), np.float32),
                np.zeros((0,), np.int64))
    return np.concatenate(xs), np.concatenate(ys)


__all__ = [
    "KNOWN_DATASETS",
    "ImageDataset",
    "evaluation_dataset",
    "fingerprint",
    "from_arrays",
    "load_dataset",
    "pretraining_dataset",
    "resolve_scheme",
    "steps_per_epoch",
    "to_numpy",
]
