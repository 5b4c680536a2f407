"""`AdaDimModel.fit` reads the step's logs on the host only at epoch
boundaries in its main loop on PyTorch, and a bad batch still stops training
with the guard's message when the reads happen in Keras' callback threads."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adadim as ka
from keras.src.callbacks import callback_list
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder

BACKEND = keras.backend.backend()


def _model():
    keras.utils.set_random_seed(0)
    model = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4),
                           mlp_projector(32, 16), method="simclr")
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    return model


def _dataset(bad_batch=None, batches=10, b=8):
    x = np.random.default_rng(0).random((batches * b, 8, 8, 1)).astype("float32")
    if bad_batch is not None:
        x[bad_batch * b] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, np.roll(x, 1, 2))).batch(b)


def test_fit_reads_logs_on_the_main_thread_only_at_epoch_ends(monkeypatch):
    """Keras converts each batch's logs to Python floats (a host sync) on
    the main thread unless every callback is async-safe; the guard is on
    PyTorch, so there those reads run in worker threads and the main loop
    only reads at epoch and training boundaries. JAX and TensorFlow read
    every batch on the main thread (see _TrainingGuard.async_safe)."""
    model = _model()
    model.fit(_dataset(), epochs=1, verbose=0)  # trace / build first
    reads = {"main": 0, "worker": 0}
    original = callback_list.python_utils.pythonify_logs

    def counting(logs):
        if any(not isinstance(v, (int, float, str)) for v in (logs or {}).values()):
            main = threading.current_thread() is threading.main_thread()
            reads["main" if main else "worker"] += 1
        return original(logs)

    monkeypatch.setattr(callback_list.python_utils, "pythonify_logs", counting)
    model.fit(_dataset(), epochs=2, verbose=0, check_every=5)
    if BACKEND == "torch":
        assert reads["main"] <= 2 * 2 + 1, reads  # epoch ends, train end
        assert reads["worker"] == 20, reads
    else:  # one per batch on the main thread (see _TrainingGuard.async_safe)
        assert reads["main"] >= 20, reads


@pytest.mark.parametrize("check_every,bad_batch,message", [
    (5, 7, "A training batch of batches 5-9 gave a non-finite loss"),
    (3, 1, "A training batch of batches 0-2 gave a non-finite loss"),
])
def test_bad_batch_stops_fit_with_the_guard_message(check_every, bad_batch, message):
    """The deferred checks (every `check_every` batches, read in a callback
    thread on PyTorch) still stop training with the clear error and
    leave finite weights."""
    model = _model()
    with pytest.raises(ValueError, match=message):
        model.fit(_dataset(bad_batch), epochs=1, verbose=0,
                  check_every=check_every)
    for w in model.trainable_weights:
        assert np.isfinite(keras.ops.convert_to_numpy(w)).all()
