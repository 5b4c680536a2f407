"""``.npz`` files in the MedMNIST layout (``train_images``, ``train_labels``,
``val_*``, ``test_*``)."""

import os

import numpy as np

from keras_adadim.data.sources import common

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


def load_npz(path, split, channels, name=None):
    name = name or os.path.splitext(os.path.basename(path))[0]
    with _open_npz(path) as f:
        keys = set(f.files)
        available = sorted(
            k[: -len("_images")] for k in keys if k.endswith("_images")
        )
        chosen = None
        for alias in common.SPLIT_FOLDERS.get(common.split_key(split), (split,)):
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
    images = common.to_uint8(images, name, where=where)
    n = len(images)
    num_classes = None
    if labels is not None and labels.ndim == 2 and labels.shape[1] > 1:
        print(
            f"keras_adadim.data: {name!r} has multi-label targets "
            f"{labels.shape}; they are ignored (labels = -1)."
        )
        labels = None
    if labels is not None:
        labels = common.clean_labels(
            labels, n, name,
            where=f"{path!r} ({chosen}_labels for {chosen}_images)")
        tops = [t for t in map(_top_label, all_labels) if t is not None]
        num_classes = max(tops) + 1 if tops else None
    else:
        labels = np.full(n, -1, np.int64)
    return common.in_memory(
        images, labels, name=name, source=f"npz:{path}", split=chosen,
        num_classes=num_classes, class_names=None, channels=channels,
    )
