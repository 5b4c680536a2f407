"""scikit-learn's 8x8 digits (bundled, offline) as an ``ImageDataset``."""

import numpy as np

from keras_adadim.data.sources import common

def load_digits_split(split, channels):
    from keras_adadim.data.digits import load_digits

    if split not in ("train", "test"):
        raise ValueError(
            f"digits has the splits 'train' and 'test'; got {split!r}."
        )
    data = load_digits()
    images = np.round(data[f"{split}_images"] * 255).astype(np.uint8)
    return common.in_memory(
        images, data[f"{split}_labels"].astype(np.int64), name="digits",
        source="digits", split=split, num_classes=10,
        class_names=[str(i) for i in range(10)], channels=channels,
    )
