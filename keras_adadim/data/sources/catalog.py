"""The datasets of the paper by name: ``KNOWN_DATASETS``, their aliases and
the message for an unknown name."""

import difflib
import re

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


def _key(name):
    return re.sub(r"[-_ ]", "", name.lower())


_KEYS = {_key(k): k for k in KNOWN_DATASETS}
_KEYS.update(_ALIASES)


def unknown_message(name):
    candidates = list(KNOWN_DATASETS) + list(_ALIASES)
    try:
        import tensorflow_datasets as tfds

        candidates += list(tfds.list_builders())
    except Exception:  # pragma: no cover - no tensorflow-datasets
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


def known_name(source):
    """The ``KNOWN_DATASETS`` key a name or alias refers to (case, ``-``,
    ``_`` and spaces ignored), or None."""
    return _KEYS.get(_key(source))
