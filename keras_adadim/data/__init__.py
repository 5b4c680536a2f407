"""Input pipelines: ``tf.data`` datasets of two views (or N: multi-crop)
that ``fit`` consumes on every backend, dataset loaders (digits, TensorFlow Datasets, folders,
MedMNIST ``.npz``, arrays) and the paper's augmentation schemes."""

from keras_adadim.data.augment import SCHEMES
from keras_adadim.data.augment import ViewSpec
from keras_adadim.data.augment import make_augmentation
from keras_adadim.data.augment import make_views
from keras_adadim.data.augment import multi_crop
from keras_adadim.data.augment import save_sample_views
from keras_adadim.data.datasets import KNOWN_DATASETS
from keras_adadim.data.datasets import ImageDataset
from keras_adadim.data.datasets import evaluation_dataset
from keras_adadim.data.datasets import fingerprint
from keras_adadim.data.datasets import from_arrays
from keras_adadim.data.datasets import load_dataset
from keras_adadim.data.datasets import pretraining_dataset
from keras_adadim.data.datasets import resolve_scheme
from keras_adadim.data.datasets import steps_per_epoch
from keras_adadim.data.datasets import to_numpy
from keras_adadim.data.digits import digits_views
from keras_adadim.data.digits import load_digits
from keras_adadim.data.pipeline import two_view_dataset

__all__ = [
    "KNOWN_DATASETS",
    "SCHEMES",
    "ImageDataset",
    "ViewSpec",
    "digits_views",
    "evaluation_dataset",
    "fingerprint",
    "from_arrays",
    "load_dataset",
    "load_digits",
    "make_augmentation",
    "make_views",
    "multi_crop",
    "pretraining_dataset",
    "resolve_scheme",
    "save_sample_views",
    "steps_per_epoch",
    "to_numpy",
    "two_view_dataset",
]
