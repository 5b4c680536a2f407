"""MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST; read by
``keras_adadim.data.idx``), and Fashion-MNIST / MNIST by name."""

import os

from keras_adadim.data.sources import catalog
from keras_adadim.data.sources import common
from keras_adadim.data.sources import tfds as tfds_source

def load_idx(folder, split, channels, name=None, prefix=None):
    from keras_adadim.data import idx

    got = idx.load_idx_split(folder, split, prefix=prefix, name=name)
    name = name or got["prefix"].rstrip("-_.") or os.path.basename(
        os.path.normpath(folder))
    return common.in_memory(
        got["images"], got["labels"], name=name,
        source="idx:" + (os.path.join(folder, got["prefix"])
                         if got["prefix"] else folder),
        split=str(split) if "[" in str(split) else got["split"],
        num_classes=got["num_classes"], class_names=got["class_names"],
        channels=channels,
    )


def load_idx_known(known, split, data_dir, download, channels):
    """Fashion-MNIST / MNIST by name: TensorFlow Datasets' prepared copy,
    else the system's IDX files, else a TensorFlow Datasets download."""
    from keras_adadim.data import idx

    entry = catalog.KNOWN_DATASETS[known]
    builder = None
    try:
        builder = tfds_source.tensorflow_datasets().builder(
            entry["tfds"], data_dir=data_dir)
        # is_prepared() logs a warning for a missing folder; the usual case
        # here (system files), so look first.
        prepared = builder.data_path.exists() and builder.is_prepared()
    except Exception:  # no tensorflow-datasets, unreadable data_dir: skip
        prepared = False
    if prepared:
        return tfds_source.load_tfds(entry["tfds"], split, data_dir, False, channels,
                          name=known)
    folder = idx.system_dataset_dir(entry["system"])
    if idx.has_idx_files(folder):
        return load_idx(folder, split, channels, name=known)
    error = None
    if download:
        try:
            return tfds_source.load_tfds(entry["tfds"], split, data_dir, True,
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

    root = tfds_source.tfds_root(builder, data_dir)
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
        cause = error.__cause__ or error  # load_tfds chains the real error
        lines.append(f"The download attempt failed with: "
                     f"{type(cause).__name__}: {str(cause).strip()[:500]}")
    return "\n".join(lines)
