"""What every data source shares: ``ImageDataset`` (one split), ``Access``
(how the pipelines read it), the conversions of images and labels, and
``in_memory`` (an ``ImageDataset`` over NumPy arrays)."""

import dataclasses
import hashlib

import numpy as np

# Streamed (TensorFlow Datasets) splits up to this many bytes of decoded
# images are read into memory once when a pipeline is built: exact full
# shuffles and no decoding per epoch (CIFAR-10/100: 150 MB, STL-10 train:
# 138 MB). Larger ones (ImageNet, STL-10 'unlabelled': 2.8 GB) are
# streamed.
MAX_IN_MEMORY_BYTES = 1024**3

SPLIT_FOLDERS = {
    "train": ("train",),
    "val": ("val", "valid", "validation"),
    "test": ("test",),
    "unlabelled": ("unlabelled", "unlabeled"),
}


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
        access: how the pipelines read it (an ``Access``; None for a split
            built by hand, which the pipelines refuse).
    """

    dataset: object
    num_examples: int
    num_classes: object
    class_names: object
    image_shape: tuple
    name: str
    source: str
    split: str = "train"
    access: object = dataclasses.field(default=None, repr=False,
                                       compare=False)

    @property
    def channels(self):
        return self.image_shape[-1]

    def label_counts(self):
        """Images per class (``numpy`` array indexed by label, unlabelled
        images not counted) when the source knows its labels without
        reading the images (arrays, ``.npz``, IDX, folders); None for
        streamed sources (TensorFlow Datasets) and unlabelled splits."""
        labels = None if self.access is None else self.access.labels
        if labels is None or not self.num_classes:
            return None
        labels = np.asarray(labels, np.int64).reshape(-1)
        return np.bincount(labels[labels >= 0],
                           minlength=int(self.num_classes))

    def __len__(self):
        return self.num_examples


class Access:
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
            self.reader = array_reader(images, labels, self.target)
        return self.reader


def array_reader(images, labels, target):
    import tensorflow as tf

    native = images.shape[-1]
    images_t = tf.constant(images)
    labels_t = tf.constant(np.asarray(labels, np.int64))

    def reader(i):
        image = tf.gather(images_t, i)
        if target != native:
            image = convert_channels(image, target)
        return image, tf.gather(labels_t, i)

    return reader


def to_uint8(images, name, where=None):
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


def clean_labels(labels, n, name, where=None):
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


def note_conversion(name, native, target, count=None):
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


def convert_channels(image, target):
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


def in_memory(images, labels, *, name, source, split, num_classes,
               class_names, channels):
    import tensorflow as tf

    _check_label_range(labels, num_classes, name, source)
    native = images.shape[-1]
    target = channels or native
    if target != native:
        note_conversion(name, native, target)
    reader = array_reader(images, labels, target)
    n = len(images)

    def fingerprint():
        return "arrays", sha256(
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
        access=Access(reader=reader, fingerprint=fingerprint,
                      labels=labels),
    )


def split_key(split):
    s = str(split).lower()
    for key, aliases in SPLIT_FOLDERS.items():
        if s in aliases:
            return key
    return s


def sha256(*parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(memoryview(part).cast("B") if isinstance(
            part, np.ndarray) else part)
    return digest.hexdigest()


def check_data(data):
    if not isinstance(data, ImageDataset):
        raise TypeError(
            "Expected an ImageDataset (from load_dataset(...) or "
            f"from_arrays(images, labels)); got {type(data).__name__}."
        )
    return data
