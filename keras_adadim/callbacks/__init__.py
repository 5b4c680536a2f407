from keras_adadim.callbacks.alpha_updater import AlphaUpdater
from keras_adadim.callbacks.representation_monitor import RepresentationMonitor
from keras_adadim.callbacks.representation_monitor import (
    representation_statistics,
)

__all__ = ["AlphaUpdater", "RepresentationMonitor", "representation_statistics"]
