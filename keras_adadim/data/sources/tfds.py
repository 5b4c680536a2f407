"""TensorFlow Datasets splits: prepared under ``data_dir`` (downloaded on
first use when possible), small ones read into memory by the pipelines,
large ones streamed."""

import os
import re

import numpy as np

from keras_adadim.data.sources import catalog
from keras_adadim.data.sources import common

def tensorflow_datasets():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "Loading TensorFlow Datasets needs `pip install "
            "tensorflow-datasets`."
        ) from e
    return tfds


def is_tfds_name(name):
    base = name.split("/")[0].split(":")[0]
    if not re.fullmatch(r"[a-z0-9_]+", base):
        return False
    try:
        tensorflow_datasets().builder_cls(base)
    except Exception:
        return False
    return True


def tfds_root(builder, data_dir):
    root = getattr(builder, "_data_dir_root", None) or data_dir
    if root is None:
        root = os.environ.get(
            "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")
        )
    return str(root)


def _not_prepared_message(name, tfds_name, builder, data_dir, download,
                          error=None):
    root = tfds_root(builder, data_dir)
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


def load_tfds(tfds_name, split, data_dir, download, channels, name=None):
    import tensorflow as tf

    tfds = tensorflow_datasets()
    name = name or tfds_name
    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except Exception as e:
        if "not found" in str(e).lower() or isinstance(
            e, getattr(tfds.core, "DatasetNotFoundError", ())
        ):
            raise ValueError(catalog.unknown_message(tfds_name)) from e
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
        common.note_conversion(name, native, target)
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
            image = common.convert_channels(image, target)
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
            image = common.convert_channels(image, target)
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
    return common.ImageDataset(
        dataset=ds,
        num_examples=num_examples,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=(shape[0], shape[1], target),
        name=name,
        source=f"tfds:{tfds_name}",
        split=split,
        access=common.Access(encoded=encoded, decode=decode,
                             materialize=materialize, nbytes=nbytes,
                             target=target),
    )
