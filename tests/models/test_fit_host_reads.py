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


def _model(steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4),
                           mlp_projector(32, 16), method="simclr")
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  steps_per_execution=steps_per_execution)
    return model


def _count_reads(monkeypatch):
    """``{"main": n, "worker": m}``: Keras' conversions of a batch's logs to
    Python floats (a host read), by thread, from now on."""
    reads = {"main": 0, "worker": 0}
    original = callback_list.python_utils.pythonify_logs

    def counting(logs):
        if any(not isinstance(v, (int, float, str)) for v in (logs or {}).values()):
            main = threading.current_thread() is threading.main_thread()
            reads["main" if main else "worker"] += 1
        return original(logs)

    monkeypatch.setattr(callback_list.python_utils, "pythonify_logs", counting)
    return reads


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
    reads = _count_reads(monkeypatch)
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


needs_multi_step = pytest.mark.skipif(
    BACKEND == "torch", reason="Keras' PyTorch trainer refuses "
    "steps_per_execution > 1 (there the guard's reads run in worker threads, "
    "tested above)")


@needs_multi_step
def test_steps_per_execution_reads_once_per_execution(monkeypatch):
    """On TensorFlow and JAX Keras reads the logs once per execution of
    `steps_per_execution` steps: 10 batches in executions of 4 are 3 reads
    an epoch instead of 10."""
    model = _model(steps_per_execution=4)
    model.fit(_dataset(), epochs=1, verbose=0)  # trace / build first
    reads = _count_reads(monkeypatch)
    model.fit(_dataset(), epochs=2, verbose=0, check_every=5)
    assert reads["main"] <= 2 * (3 + 2) + 1, reads  # executions, epoch ends


@needs_multi_step
def test_steps_per_execution_trains_the_same_steps():
    """Executions of 3 steps (10 batches: the last execution is short) give
    the per-step run's losses and weights."""
    runs = []
    for k in (1, 3):
        model = _model(steps_per_execution=k)
        history = model.fit(_dataset(), epochs=2, verbose=0).history
        runs.append((history["loss"], [keras.ops.convert_to_numpy(w)
                                       for w in model.weights]))
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 20
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@needs_multi_step
def test_bad_batch_found_across_executions():
    """Executions of 4 steps end after batches 3, 7, 9; a check every 5
    batches falls inside the second execution and is made at its end."""
    model = _model(steps_per_execution=4)
    with pytest.raises(ValueError, match="A training batch of batches 0-7 "
                       "gave a non-finite loss"):
        model.fit(_dataset(bad_batch=6), epochs=1, verbose=0, check_every=5)
    for w in model.trainable_weights:
        assert np.isfinite(keras.ops.convert_to_numpy(w)).all()
