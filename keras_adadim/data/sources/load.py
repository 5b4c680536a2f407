"""``load_dataset``: one split of a dataset by name or path, from the source
module that reads it."""

import os

from keras_adadim.data.sources import catalog
from keras_adadim.data.sources import digits as digits_source
from keras_adadim.data.sources import folder
from keras_adadim.data.sources import idx_files
from keras_adadim.data.sources import npz
from keras_adadim.data.sources import tfds as tfds_source

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
        return load_path(os.fspath(source), split, channels)
    if not isinstance(source, str):
        raise TypeError(
            "`source` must be a dataset name or a path; for arrays use "
            f"`from_arrays(images, labels)`. Got {type(source).__name__}."
        )
    if source.startswith("tfds:"):
        return tfds_source.load_tfds(source[5:], split, data_dir, download, channels)
    known = catalog.known_name(source)
    if known == "digits":
        return digits_source.load_digits_split(split, channels)
    if known is not None:
        entry = catalog.KNOWN_DATASETS[known]
        if entry["kind"] == "tfds":
            return tfds_source.load_tfds(entry["tfds"], split, data_dir, download,
                              channels, name=known)
        if entry["kind"] == "idx":
            return idx_files.load_idx_known(known, split, data_dir, download,
                                   channels)
        return load_known_files(known, split, data_dir, channels)
    path = os.path.expanduser(source)
    if os.path.exists(path):
        return load_path(path, split, channels)
    from keras_adadim.data import idx

    in_folder = idx.idx_prefix_of(path)  # e.g. /data/gzip/emnist-balanced
    if in_folder is not None:
        return idx_files.load_idx(in_folder[0], split, channels, prefix=in_folder[1])
    if source.lower().endswith(".npz") or source.startswith(
        (".", "/", "~", "\\")
    ):
        raise FileNotFoundError(f"No such file or folder: {source!r}.")
    if tfds_source.is_tfds_name(source):
        return tfds_source.load_tfds(source, split, data_dir, download, channels)
    raise ValueError(catalog.unknown_message(source))


def load_path(path, split, channels, name=None):
    from keras_adadim.data import idx

    path = os.path.abspath(os.path.expanduser(path))
    if idx.has_idx_files(path):
        return idx_files.load_idx(path, split, channels, name=name)
    if os.path.isdir(path):
        return folder.load_folder(path, split, channels, name=name)
    if path.lower().endswith(".npz"):
        return npz.load_npz(path, split, channels, name=name)
    raise ValueError(
        f"{path!r} is neither a folder of images nor a .npz file."
    )


def load_known_files(known, split, data_dir, channels):
    entry = catalog.KNOWN_DATASETS[known]
    roots = [os.path.expanduser(data_dir)] if data_dir else [os.getcwd()]
    if entry["kind"] == "npz":
        roots.append(os.path.expanduser("~/.medmnist"))
        for root in roots:
            candidate = os.path.join(root, entry["file"] + ".npz")
            if os.path.isfile(candidate):
                return npz.load_npz(candidate, split, channels, name=known)
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
        for name in entry["folders"]:
            candidate = os.path.join(root, name)
            if os.path.isdir(candidate):
                return folder.load_folder(candidate, split, channels, name=known)
    how = entry["howto"].format(data_dir=data_dir or "<data_dir>")
    raise FileNotFoundError(
        f"{known!r} is not in TensorFlow Datasets and no folder "
        f"{entry['folders'][0]!r} was found in "
        f"{data_dir or os.getcwd()!r}. {how} Then load_dataset({known!r}, "
        "data_dir=...) or load_dataset('/path/to/folder') (one sub-folder "
        "per class, optionally inside train/ val/ test/)."
    )
