"""DeepCluster v2 (Caron et al., 2020, with SwAV)."""

import keras
import numpy as np
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.deepcluster import deepclusterv2_loss
from keras_adadim.methods import base
from keras_adadim.methods.clustering import MemoryBank
from keras_adadim.methods.clustering import Prototypes
from keras_adadim.methods.clustering import epoch_variable
from keras_adadim.methods.clustering import spherical_kmeans
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class DeepClusterV2(base.Method):
    """Every image's latest embedding is kept in a memory bank under the
    image's index; before each epoch, spherical k-means over the bank gives
    H sets of prototypes (the centroids) and every image its cluster in
    each; during the epoch each view's scores against the prototypes
    classify the image into that fixed cluster
    (:func:`keras_adadim.losses.deepclusterv2_loss`)::

        s_hv = cos(z_v, C_h)                        (b, K_h)
        a_h[i] = k-means cluster of bank_{h mod 2}[i]  (fixed for the epoch)
        L = 1/H sum_h 1/2 [ CE(a_h[idx], softmax(s_h1 / T))
                            + CE(a_h[idx], softmax(s_h2 / T)) ]

    Sources: DeepCluster v2 (Caron et al., 2020, the SwAV paper's Appendix
    A.3; facebookresearch/swav ``main_deepclusterv2.py``) and solo-learn's
    ``deepclusterv2.py`` with its CIFAR ``deepclusterv2.yaml``: three heads
    of 3000 prototypes (also the paper's Table 10), T = 0.1, 10 k-means
    iterations, projector output 128; head h clusters the bank of view
    h mod 2; the prototypes are not trained (only k-means sets them). As
    in solo-learn, the first epoch has no clusters yet (every assignment
    -1, a zero loss): it fills the bank with the initial network's
    embeddings, the original's ``init_memory`` pass.

    **Image indices.** The method needs each image's index in the training
    set (``needs_index``): feed ``{"views": (x1, x2), "index": i}``
    batches (``keras_adadim.data.pretraining_dataset(...,
    with_index=True)``, which ``pretrain`` uses), with ``num_images`` the
    training set's size. A batch with an index outside
    ``[0, num_images)`` gives a NaN loss (the fit-time guard stops
    training) and writes nothing to the bank.

    Per-epoch work runs in ``on_epoch_begin`` (outside the compiled step,
    on the bank every replica holds: the global batches in the same
    order), once per epoch: a run resumed in the middle of an epoch keeps
    the prototypes and assignments saved with it. k-means runs over the
    bank rows written so far, starting from ``seed``, the epoch and the
    head. Logged term: ``deepclusterv2``.

    Args:
        num_images: N, the training set's size (one bank row per image);
            required before the first call (``pretrain`` passes it).
        num_prototypes: K_h of each head (a sequence), or one K for each
            of ``num_heads`` heads (``--num-prototypes``); each at most N.
        num_heads: heads when ``num_prototypes`` is one K.
        temperature: T.
        kmeans_iterations: k-means iterations per epoch.
        seed: seed of the initial prototypes and of k-means.
    """

    term_names = ("deepclusterv2",)
    needs_index = True

    def __init__(self, num_images=None, num_prototypes=(3000, 3000, 3000),
                 temperature=0.1, kmeans_iterations=10, seed=0, num_heads=3,
                 **kwargs):
        kwargs.setdefault("name", "deepclusterv2")
        super().__init__(**kwargs)
        if isinstance(num_prototypes, int):
            num_prototypes = (num_prototypes,) * check_number(
                "num_heads", num_heads, 1, integer=True)
        num_prototypes = tuple(int(k) for k in num_prototypes)
        if not num_prototypes or min(num_prototypes) < 1:
            raise ValueError(
                f"`num_prototypes` must be one or more positive sizes; got "
                f"{num_prototypes}.")
        check_number("temperature", temperature, 0, low_open=True)
        check_number("kmeans_iterations", kmeans_iterations, 1, integer=True)
        if num_images is not None:
            num_images = check_number("num_images", num_images, 1, integer=True)
            if num_images < max(num_prototypes):
                raise ValueError(
                    f"DeepCluster v2 clusters the {num_images} training "
                    f"images into {max(num_prototypes)} clusters (its "
                    "largest head), which needs at least as many images as "
                    "clusters. Use fewer prototypes (--num-prototypes, e.g. "
                    f"{max(1, num_images // 10)}) or more images.")
        self.num_images = num_images
        self.temperature = float(temperature)
        self.kmeans_iterations = int(kmeans_iterations)
        self.seed = int(seed)
        self.heads = [Prototypes(k, seed=self.seed + h, trainable=False,
                                 name=f"prototypes{h}")
                      for h, k in enumerate(num_prototypes)]
        self.banks = None
        self.assigned = None
        if num_images is not None:
            self.banks = [MemoryBank(num_images, name=f"memory{v + 1}")
                          for v in range(2)]
            # Each image's cluster in each head (-1: none yet).
            self.assigned = self.add_weight(
                name="assignments", shape=(len(self.heads), num_images),
                dtype="int32", trainable=False,
                initializer=keras.initializers.Constant(-1))
        self.epoch = epoch_variable(self)
        self.built = True

    def forward(self, views, encoder, projector, training):
        rows = base.two_views_online(views, encoder, projector, None, training)
        for h, head in enumerate(self.heads):
            for v in (1, 2):
                rows[f"s{v}_{h}"] = head(rows[f"z{v}"])
        return rows

    def ensure_built(self, rows, views):
        if self.banks is None:
            raise ValueError(
                "DeepClusterV2 keeps one memory-bank row per training image "
                "and needs the training set's size: pass "
                "`num_images=<number of training images>` (pretrain and "
                "`adadim pretrain` pass it).")
        for bank in self.banks:
            if not bank.built:
                bank.build(rows["z1"].shape)

    def assignments(self, rows):
        """Each head's cluster of the batch's images (-1: none yet), looked
        up by image index."""
        at = ops.clip(ops.cast(rows["index"], "int32"), 0, self.num_images - 1)
        return [ops.take(self.assigned[h], at) for h in range(len(self.heads))]

    def loss_terms(self, rows, step=None):
        scores = [[rows[f"s1_{h}"], rows[f"s2_{h}"]] for h in range(len(self.heads))]
        loss = deepclusterv2_loss(scores, self.assignments(rows), self.temperature)
        # An index outside the bank is a wrong input, not a cluster: NaN,
        # which the fit-time guard turns into an error.
        ok = self.banks[0].in_range(rows["index"])
        return {"deepclusterv2": ops.where(ok, loss, float("nan"))}

    def update_state(self, rows, step, valid):
        if step.training:
            for bank, z in zip(self.banks, (rows["z1"], rows["z2"])):
                bank.write(rows["index"], l2_normalize_rows(ops.cast(z, "float32")),
                           keep=valid)

    def on_epoch_begin(self, epoch):
        """k-means of each head over its view's memory bank: the centroids
        become the head's prototypes and each image's cluster its
        assignment for the epoch. Skipped for an epoch already clustered (a
        resumed run) and while the bank is empty (the first epoch)."""
        if self.banks is None or not self.banks[0].built:
            return
        if int(ops.convert_to_numpy(self.epoch)) == int(epoch):
            return
        assigned = np.full(tuple(self.assigned.shape), -1, np.int32)
        for h, head in enumerate(self.heads):
            index, rows = self.banks[h % 2].filled_rows()
            if len(index) == 0:
                continue
            if len(index) < head.num_prototypes:
                raise ValueError(
                    f"DeepCluster v2's head {h} has {head.num_prototypes} "
                    f"prototypes but only {len(index)} images have been "
                    "embedded so far (batches drop the remainder), too few "
                    "to cluster. Use fewer prototypes (--num-prototypes) or "
                    "a batch size that divides the training set.")
            centroids, labels = spherical_kmeans(
                rows, head.num_prototypes, self.kmeans_iterations,
                seed=[self.seed, int(epoch), h])
            head.kernel.assign(centroids)
            assigned[h, index] = ops.convert_to_numpy(labels)
        self.assigned.assign(assigned)
        self.epoch.assign(int(epoch))

    def get_config(self):
        return {**super().get_config(),
                "num_images": self.num_images,
                "num_prototypes": [head.num_prototypes for head in self.heads],
                "temperature": self.temperature,
                "kmeans_iterations": self.kmeans_iterations, "seed": self.seed}
