"""Parts of the clustering methods (SwAV, DINO, DeepCluster v2): a layer of
prototype vectors scored by cosine similarity, the epoch counter that their
epoch-based schedules read inside the compiled step, a memory bank with one
row per training image and spherical k-means (DeepCluster v2's per-epoch
clustering of that bank)."""

import keras
import numpy as np
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class Prototypes(keras.layers.Layer):
    """``K`` prototype vectors; ``call(z)`` gives the (b, K) cosine
    similarities of the rows of ``z`` to them.

    The prototypes are used L2-normalised (a weight-normalised linear layer
    with unit gain: solo-learn's SwAV ``weight_norm`` prototypes with
    ``weight_g`` fixed at 1, DINO's ``norm_last_layer``), so gradients do not
    change their norm. ``call(z, gate)`` with ``gate`` 0 lets no gradient
    reach them (a frozen epoch) and leaves the value unchanged.

    Args:
        num_prototypes: K.
        seed: seed of the initial (standard normal) prototypes.
        trainable: False for prototypes set by hand (DINO's EMA teacher
            head, DeepCluster v2's k-means centroids).
    """

    def __init__(self, num_prototypes, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_prototypes = check_number("num_prototypes", num_prototypes,
                                           1, integer=True)
        self.seed = int(seed)
        self.kernel = None

    def build(self, feature_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(self.num_prototypes, int(feature_shape[-1])),
            initializer=keras.initializers.RandomNormal(seed=self.seed),
            dtype="float32", trainable=self.trainable)

    def normalized(self, gate=None):
        """The unit prototypes (K, F); ``gate`` (0 or 1) scales the gradient
        that reaches them."""
        w = l2_normalize_rows(ops.convert_to_tensor(self.kernel))
        if gate is not None:
            w = ops.stop_gradient(w) + ops.cast(gate, w.dtype) * (
                w - ops.stop_gradient(w))
        return w

    def call(self, z, gate=None):
        z = l2_normalize_rows(ops.cast(z, "float32"))
        return ops.matmul(z, ops.transpose(self.normalized(gate)))

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.num_prototypes)

    def get_config(self):
        return {**super().get_config(), "num_prototypes": self.num_prototypes,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_adadim")
class MemoryBank(keras.layers.Layer):
    """One feature row per image of the training set, written under the
    image's index (DeepCluster v2's memory bank: the latest embedding of
    every image), with a mask of the rows written so far.

    Under ``tf.distribute`` the model writes the global batch, so every
    replica holds the same bank. Indices outside ``[0, num_rows)`` write
    nothing (the method reports them; see ``in_range``).

    Args:
        num_rows: N, the number of images.
    """

    def __init__(self, num_rows, **kwargs):
        super().__init__(**kwargs)
        self.num_rows = check_number("num_rows", num_rows, 1, integer=True)
        self.rows = None
        self.filled = None

    def build(self, feature_shape):
        self.rows = self.add_weight(
            name="rows", shape=(self.num_rows, int(feature_shape[-1])),
            dtype="float32", initializer="zeros", trainable=False)
        self.filled = self.add_weight(
            name="filled", shape=(self.num_rows,), dtype="float32",
            initializer="zeros", trainable=False)

    def in_range(self, index):
        """Whether every entry of ``index`` is a row of the bank (a bool
        scalar tensor)."""
        index = ops.convert_to_tensor(index)
        return ops.all(ops.logical_and(index >= 0, index < self.num_rows))

    def write(self, index, values, keep=True):
        """Store ``values`` (b, F) at rows ``index`` (b,); ``keep`` False (a
        skipped batch) writes nothing."""
        index = ops.cast(index, "int32")
        keep = ops.logical_and(ops.convert_to_tensor(keep), self.in_range(index))
        # Clipped so no backend reads out of bounds; with `keep` False the
        # rows written are the ones already there.
        at = ops.clip(index, 0, self.num_rows - 1)
        old = ops.take(self.rows, at, axis=0)
        new = ops.where(keep, ops.stop_gradient(ops.cast(values, "float32")), old)
        self.rows.assign(ops.scatter_update(self.rows, at[:, None], new))
        mark = ops.where(keep, ops.ones_like(new[:, 0]), ops.take(self.filled, at))
        self.filled.assign(ops.scatter_update(self.filled, at[:, None], mark))

    def filled_rows(self):
        """``(indices, rows)`` of the rows written so far, as NumPy arrays
        (read on the host: for per-epoch work outside the step)."""
        filled = np.flatnonzero(ops.convert_to_numpy(self.filled) > 0)
        return filled, ops.convert_to_numpy(self.rows)[filled]

    def get_config(self):
        return {**super().get_config(), "num_rows": self.num_rows}


def crop_rows(rows, prefix):
    """The rows ``prefix1, prefix2, ...`` of every crop a step has, in
    order: two views, or 2 global + k local crops (multi-crop)."""
    out, i = [], 1
    while f"{prefix}{i}" in rows:
        out.append(rows[f"{prefix}{i}"])
        i += 1
    return out


def local_crop_embeddings(views, encoder, projector, training):
    """The embeddings z of multi-crop's local views (``views[2:]``), one
    (b, F) matrix per crop, each crop through the networks on its own
    (solo-learn's per-crop forward)."""
    return [projector(encoder(x, training=training), training=training)
            for x in views[2:]]


def epoch_variable(layer):
    """A saved int32 scalar on ``layer`` holding the epoch of the last
    ``on_epoch_begin`` (-1 before the first), read by epoch-based schedules
    inside the compiled step."""
    return layer.add_weight(
        name="epoch", shape=(), dtype="int32", trainable=False,
        initializer=keras.initializers.Constant(-1))


def epochs_done(epoch_variable_):
    """The current epoch as float32, 0 before ``fit`` set it."""
    return ops.maximum(ops.cast(epoch_variable_, "float32"), 0.0)


def before_epoch(epoch_variable_, epochs):
    """1.0 while the current epoch is below ``epochs`` (a freezing period),
    else 0.0, as float32."""
    return ops.cast(epochs_done(epoch_variable_) < float(epochs), "float32")


# Rows scored against the centroids at a time: the (rows, k) score matrix
# of a whole ImageNet bank (1.28 M x 3000) would take 15 GB.
KMEANS_CHUNK = 65536


def _nearest(x, centroids):
    """Index (int32) of each row's most similar centroid, in chunks of
    ``KMEANS_CHUNK`` rows."""
    ct = ops.transpose(centroids)
    n = int(x.shape[0])
    parts = [ops.argmax(ops.matmul(x[start:start + KMEANS_CHUNK], ct), axis=1)
             for start in range(0, n, KMEANS_CHUNK)]
    return ops.cast(parts[0] if len(parts) == 1 else ops.concatenate(parts),
                    "int32")


def spherical_kmeans(embeddings, k, iterations=10, seed=0):
    """Spherical k-means of the L2-normalised rows of ``embeddings`` (N, F):
    returns (centroids (k, F), unit rows; assignments (N,), int32).

    Centroids start at k distinct rows drawn with ``seed``; each iteration
    assigns every row to its most similar centroid (dot product) and moves
    each centroid to the normalised mean of its rows (a centroid that got
    none stays); the assignments returned are those of the final centroids.
    DeepCluster v2 (Caron et al., 2020, Appendix A.3; facebookresearch/swav
    ``main_deepclusterv2.py`` and solo-learn's ``deepclusterv2.py``
    ``kmeans``): 10 iterations, sums over the memory bank of every process.
    """
    x = l2_normalize_rows(ops.cast(ops.convert_to_tensor(embeddings), "float32"))
    n = int(x.shape[0])
    if not 1 <= int(k) <= n:
        raise ValueError(
            f"k-means needs at most as many clusters as rows: k = {k} "
            f"clusters for {n} rows. Cluster more rows, or use fewer "
            "clusters (DeepCluster v2: --num-prototypes).")
    rng = np.random.default_rng(seed)
    start = np.sort(rng.choice(n, size=int(k), replace=False))
    centroids = ops.take(x, ops.convert_to_tensor(start, "int32"), axis=0)
    for i in range(int(iterations) + 1):
        assignments = _nearest(x, centroids)
        if i == int(iterations):
            break
        sums = ops.segment_sum(x, assignments, num_segments=int(k))
        counts = ops.segment_sum(ops.ones((n,), "float32"), assignments,
                                 num_segments=int(k))
        centroids = ops.where(counts[:, None] > 0,
                              l2_normalize_rows(sums), centroids)
    return centroids, assignments
