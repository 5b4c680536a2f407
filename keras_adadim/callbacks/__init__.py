from keras_adadim.callbacks.alpha_updater import AlphaUpdater
from keras_adadim.callbacks.representation_monitor import RepresentationMonitor
from keras_adadim.callbacks.representation_monitor import (
    representation_statistics,
)
from keras_adadim.callbacks.run_checkpoint import RunCheckpoint

__all__ = [
    "AlphaUpdater",
    "RepresentationMonitor",
    "RunCheckpoint",
    "representation_statistics",
]
