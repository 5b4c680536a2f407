"""``KillAfter(n)``: a Keras callback that raises ``KeyboardInterrupt``
after the n-th training batch, the stand-in for a killed run in the
resume tests; ``saved_weights(directory)``: a run directory's
``model.keras`` loaded, with its weights as NumPy arrays (shared by the
resume tests)."""

import os

import keras
import numpy as np


class KillAfter(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` at the end of batch number ``at``
    (counted from 1 over the whole ``fit`` call)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt("simulated kill")


def saved_weights(directory):
    """``(weights as arrays, model)`` of ``directory/model.keras``."""
    model = keras.saving.load_model(os.path.join(str(directory), "model.keras"))
    return [np.asarray(w) for w in model.get_weights()], model
