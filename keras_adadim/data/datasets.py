"""Image datasets for pre-training and evaluation, and the ``tf.data``
pipelines built on them: the public names of ``keras_adadim.data.sources``
(one module per source) and ``keras_adadim.data.pipeline`` (the pipeline
core), in one place.

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
[0, 1]; N views ``(x1, ..., xN)`` with multi-crop, ``local_crops``),
reproducible and resumable from ``(seed, epoch, step)``;
``evaluation_dataset`` and ``to_numpy`` give un-augmented images for probes
and monitors.
"""

from keras_adadim.data.pipeline import evaluation_dataset
from keras_adadim.data.pipeline import fingerprint
from keras_adadim.data.pipeline import pretraining_dataset
from keras_adadim.data.pipeline import resolve_image_size
from keras_adadim.data.pipeline import resolve_scheme
from keras_adadim.data.pipeline import steps_per_epoch
from keras_adadim.data.pipeline import to_numpy
from keras_adadim.data.sources.arrays import from_arrays
from keras_adadim.data.sources.catalog import KNOWN_DATASETS
from keras_adadim.data.sources.common import MAX_IN_MEMORY_BYTES
from keras_adadim.data.sources.common import ImageDataset
from keras_adadim.data.sources.folder import IMAGE_EXTENSIONS
from keras_adadim.data.sources.folder import MAX_INSPECTED_FILES
from keras_adadim.data.sources.load import load_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "KNOWN_DATASETS",
    "MAX_IN_MEMORY_BYTES",
    "MAX_INSPECTED_FILES",
    "ImageDataset",
    "evaluation_dataset",
    "fingerprint",
    "from_arrays",
    "load_dataset",
    "pretraining_dataset",
    "resolve_image_size",
    "resolve_scheme",
    "steps_per_epoch",
    "to_numpy",
]
