"""keras-adadim: self-supervised pre-training of image encoders with AdaDim,
for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_adadim import callbacks
from keras_adadim import hub
from keras_adadim import losses
from keras_adadim import metrics
from keras_adadim import models
from keras_adadim import optimizers  # registers LARS etc. for .keras loading
from keras_adadim import presets
from keras_adadim import zoo
from keras_adadim.callbacks import AlphaUpdater
from keras_adadim.callbacks import RepresentationMonitor
from keras_adadim.hub import from_pretrained
from keras_adadim.hub import push_to_hub
from keras_adadim.hub import save_pretrained
from keras_adadim.models import METHODS
from keras_adadim.models import AdaDimModel

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "AdaDimModel",
    "AlphaUpdater",
    "RepresentationMonitor",
    "callbacks",
    "from_pretrained",
    "hub",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "presets",
    "push_to_hub",
    "save_pretrained",
    "zoo",
]
