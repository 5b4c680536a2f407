"""``AlphaUpdater``: the adaptive alpha of AdaDim, recomputed every e_alpha
epochs from the effective rank of the embeddings."""

import numpy as np

import keras

from keras_adadim import _backend
from keras_adadim import distribute


class AlphaUpdater(keras.callbacks.Callback):
    """Sets alpha = mean_batches ER(concat(z1, z2)) / min(2b, F), beta = gamma alpha.

    At the start of epoch 0 and then whenever ``epoch % every == 0``
    (SPEC: e_alpha = 20), ``batches`` training batches are drawn, both views
    run through the model in training mode (without changing any state), and
    alpha becomes the mean of ``ER(concat(z1, z2)) / min(2b, F)``
    (``concat(z1, z2m)`` with a momentum encoder). Between updates alpha is
    constant. Each update is printed (``verbose``), kept in ``self.updates``
    and appears in the history as ``alpha`` / ``beta``.

    Args:
        every: epochs between updates (e_alpha).
        batches: training batches averaged per update.
        data: where to draw batches from. ``None`` (default) uses the data
            passed to ``fit``: a ``tf.data.Dataset`` (its next ``batches``
            batches; shuffle it so they are random), NumPy arrays (random
            rows) or a ``keras.utils.PyDataset`` (random indices). Pass a
            dataset here for other inputs, or a callable ``data(epoch)``
            returning one, so that each update sees that epoch's batches
            (the pre-training runner uses this to make resumed runs draw
            exactly the batches an uninterrupted run draws).
        batch_size: batch size when drawing rows from arrays (default: the
            ``fit`` batch size, else 256).
        seed: seed of the random draws from arrays / PyDatasets.
        verbose: print each update.
    """

    def __init__(
        self, every=20, batches=10, data=None, batch_size=None, seed=None,
        verbose=1,
    ):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be >= 1; got {every}.")
        if int(batches) < 1:
            raise ValueError(f"`batches` must be >= 1; got {batches}.")
        self.every = int(every)
        self.batches = int(batches)
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self.updates = []
        self._rng = np.random.default_rng(seed)
        self._skip_epoch = None
        self._fit_data = self._fit_batch_size = None

    def set_training_data(self, data, batch_size=None):
        """The data (and batch size) ``fit`` trains on: ``AdaDimModel.fit``
        calls this, so updates can draw batches from it when ``data`` was not
        given. Call it yourself when fitting another model class."""
        self._fit_data = data
        self._fit_batch_size = batch_size

    def get_state(self):
        """The updates so far (JSON-serialisable), for checkpoints."""
        return {"updates": [dict(u) for u in self.updates]}

    def set_state(self, state, resumed_epoch=None):
        """Restore ``get_state()`` output. ``resumed_epoch``: a run that
        resumes in the middle of this epoch already updated alpha at its
        start (alpha itself is restored with the model's weights), so the
        update at its (repeated) ``on_epoch_begin`` is skipped."""
        self.updates = [dict(u) for u in state.get("updates", [])]
        self._skip_epoch = resumed_epoch

    def on_train_begin(self, logs=None):
        mode = getattr(self.model, "alpha_mode", None)
        if mode != "adaptive":
            raise ValueError(
                "AlphaUpdater sets alpha from the effective rank, but this "
                f"model's alpha is {mode!r}"
                + (" (its method has no alpha)" if mode is None else "")
                + ". Build an AdaDim model with `alpha='adaptive'`, or drop "
                "the callback for fixed and scheduled alpha and for other "
                "methods."
            )

    def on_epoch_begin(self, epoch, logs=None):
        if epoch % self.every != 0:
            return
        if epoch == self._skip_epoch:
            self._skip_epoch = None
            return
        with _backend.no_grad():  # a measurement: no autograd graph
            ratios = [
                self.model.embedding_rank_ratio(x)
                for x in self._draw_batches(epoch)
            ]
        if not ratios:
            raise ValueError(
                "AlphaUpdater could not draw any batch from the training "
                "data; pass `data=` explicitly."
            )
        # Workers of a multi-worker TF strategy may have drawn different
        # batches: average, so that every replica trains with the same alpha.
        mean = distribute.mean_over_replicas(float(np.mean(ratios)), self.model)
        alpha = float(np.clip(mean, 0.0, 1.0))
        self.model.set_alpha(alpha)
        beta = float(keras.ops.convert_to_numpy(self.model.beta))
        self.updates.append({"epoch": epoch, "alpha": alpha, "beta": beta})
        if self.verbose:
            print(
                f"AlphaUpdater: epoch {epoch}: alpha = {alpha:.4f}, "
                f"beta = {beta:.3g} (mean of {len(ratios)} batches)"
            )

    # ------------------------------------------------------------ sampling
    def _draw_batches(self, epoch=0):
        data = self.data if self.data is not None else self._fit_data
        if callable(data) and not isinstance(data, keras.utils.PyDataset):
            data = data(epoch)
        if data is None:
            raise ValueError(
                "AlphaUpdater has no data: use it inside `AdaDimModel.fit`, "
                "pass `data=`, or call `set_training_data`."
            )
        if _is_tf_dataset(data):
            iterator = data.take(self.batches).as_numpy_iterator()
            return [_inputs_of(batch) for batch in iterator]
        if isinstance(data, keras.utils.PyDataset):
            n = len(data)
            picks = self._rng.choice(n, size=min(self.batches, n), replace=False)
            return [_inputs_of(data[int(i)]) for i in picks]
        arrays = data if isinstance(data, (list, tuple)) else [data]
        if all(isinstance(a, np.ndarray) for a in arrays):
            n = len(arrays[0])
            b = self.batch_size or self._fit_batch_size or 256
            b = min(b, n)
            out = []
            for _ in range(self.batches):
                idx = np.sort(self._rng.choice(n, size=b, replace=False))
                picked = [a[idx] for a in arrays]
                out.append(picked[0] if len(picked) == 1 else tuple(picked))
            return out
        # Any other iterable: its first batches.
        out = []
        for batch in data:
            out.append(_inputs_of(batch))
            if len(out) == self.batches:
                break
        return out

    def get_config(self):
        return {
            "every": self.every,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "verbose": self.verbose,
        }


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def _inputs_of(batch):
    x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
    if isinstance(x, list):
        x = tuple(x)
    return x
