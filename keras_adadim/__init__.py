"""keras-adadim: self-supervised pre-training of image encoders with AdaDim,
for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_adadim import callbacks
from keras_adadim import losses
from keras_adadim import metrics
from keras_adadim import models
from keras_adadim.callbacks import AlphaUpdater
from keras_adadim.models import METHODS
from keras_adadim.models import AdaDimModel

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "AdaDimModel",
    "AlphaUpdater",
    "callbacks",
    "losses",
    "metrics",
    "models",
]
