"""``RepresentationMonitor``: watch H(R), I(R; Z) and friends during training."""

import time

import keras
import numpy as np

from keras_adadim import _backend
from keras_adadim import metrics as M

# Logged quantities: (key suffix, function of one matrix). Applied to the
# representations R (prefix "r_") and the embeddings Z (prefix "z_").
_PER_SPACE = (
    ("effective_rank", M.effective_rank),
    ("entropy", M.renyi_entropy),
    ("uniformity", M.uniformity),
    ("eigenvalue_count", M.eigenvalue_count),
    ("top30_variance", M.explained_variance_ratio),
)


def representation_statistics(encoder, projector, images, batch_size=256):
    """Diagnostics of R = encoder(images) and Z = projector(R) (inference
    mode), as a dict of floats (SPEC: Diagnostics):

    ``r_/z_effective_rank`` (H(R) as effective rank), ``r_/z_entropy``
    (Renyi H_2), ``mutual_information`` (matrix I(R; Z), order 2),
    ``r_/z_uniformity`` (t = 2), ``r_/z_eigenvalue_count`` (tau = 0.01),
    ``r_/z_top30_variance`` (share of the top 30% eigenvalues).
    """
    r = encoder.predict(images, batch_size=batch_size, verbose=0)
    z = projector.predict(r, batch_size=batch_size, verbose=0)
    r = np.asarray(r, "float32").reshape(len(images), -1)
    z = np.asarray(z, "float32").reshape(len(images), -1)
    stats = {"mutual_information": M.matrix_mutual_information(r, z)}
    for prefix, x in (("r_", r), ("z_", z)):
        for name, fn in _PER_SPACE:
            stats[prefix + name] = fn(x)
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in stats.items()}


class RepresentationMonitor(keras.callbacks.Callback):
    """Logs representation diagnostics of held-out data every ``every`` epochs.

    At the end of each monitored epoch the held-out ``data`` runs through
    ``model.encoder`` (R) and ``model.projector`` (Z) in inference mode and
    :func:`representation_statistics` are added to the epoch's logs, so they
    land in the ``History``, in ``TensorBoard`` (put the monitor before it in
    the callback list) and in ``CSVLogger``. ``monitor_seconds`` records the
    cost. Epochs that are not monitored log nothing for these keys.

    The matrix statistics need an n x n Gram matrix and an F x F covariance,
    so at most ``max_samples`` held-out images are used (a fixed random
    subset, the same every epoch); everything is computed in float32.

    Args:
        data: held-out images (array of shape (n, ...)), or a tuple
            ``(images, labels)`` whose labels are ignored.
        every: monitor when ``(epoch + 1) % every == 0`` and at epoch 0.
        max_samples: size of the fixed subset (>= 2).
        seed: seed of the subset.
    """

    def __init__(self, data, every=1, max_samples=1024, seed=0):
        super().__init__()
        images = data[0] if isinstance(data, (tuple, list)) else data
        images = np.asarray(images)
        if images.ndim < 2 or len(images) < 2:
            raise ValueError(
                "RepresentationMonitor needs at least 2 held-out images "
                f"(uniformity and covariance are pairwise); got shape "
                f"{images.shape}."
            )
        if int(every) < 1:
            raise ValueError(f"`every` must be >= 1; got {every}.")
        if int(max_samples) < 2:
            raise ValueError(f"`max_samples` must be >= 2; got {max_samples}.")
        if len(images) > max_samples:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(len(images), max_samples, replace=False))
            images = images[pick]
        self.images = images
        self.every = int(every)
        self.records = []

    def get_state(self):
        """The records so far (JSON-serialisable), for checkpoints."""
        return {
            "records": [
                {k: float(v) if k != "epoch" else int(v) for k, v in r.items()}
                for r in self.records
            ]
        }

    def set_state(self, state, resumed_epoch=None):
        """Restore ``get_state()`` output (``resumed_epoch`` is unused: the
        monitor measures at epoch ends, which a resumed run still reaches)."""
        self.records = [dict(r) for r in state.get("records", [])]

    def on_train_begin(self, logs=None):
        for name in ("encoder", "projector"):
            if not hasattr(self.model, name):
                raise ValueError(
                    "RepresentationMonitor needs a model with `encoder` and "
                    f"`projector` (an AdaDimModel); this one has no `{name}`."
                )

    def on_epoch_end(self, epoch, logs=None):
        if epoch != 0 and (epoch + 1) % self.every != 0:
            return
        start = time.perf_counter()
        with _backend.no_grad():  # a measurement: no autograd graph
            stats = representation_statistics(
                self.model.encoder, self.model.projector, self.images
            )
        stats["monitor_seconds"] = time.perf_counter() - start
        self.records.append({"epoch": epoch, **stats})
        if logs is not None:
            logs.update(stats)
