"""The data sources, one module each: ``digits`` (bundled), ``arrays``
(NumPy), ``npz`` (MedMNIST layout), ``folder`` (images in class folders),
``idx_files`` (MNIST-format IDX files), ``tfds`` (TensorFlow Datasets);
``catalog`` names the paper's datasets, ``load`` dispatches
``load_dataset`` to the right source and ``common`` holds what they share
(``ImageDataset``). The pipelines over them are in
``keras_adadim.data.pipeline``; ``keras_adadim.data.datasets`` re-exports
the public names."""
