"""In-memory NumPy arrays as an ``ImageDataset``."""

import numpy as np

from keras_adadim.data.sources import common

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
    images = common.to_uint8(images, name)
    n = len(images)
    labels = common.clean_labels(labels, n, name, where=f"from_arrays({name!r})")
    if class_names is not None:
        num_classes = len(class_names)
        class_names = [str(c) for c in class_names]
    elif labels is not None and n and labels.max() >= 0:
        num_classes = int(labels.max()) + 1
    else:
        num_classes = None
    if labels is None:
        labels = np.full(n, -1, np.int64)
    return common.in_memory(images, labels, name=name, source="arrays",
                      split="train", num_classes=num_classes,
                      class_names=class_names, channels=channels)
