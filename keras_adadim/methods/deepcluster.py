"""DeepCluster v2 (Caron et al., 2020, with SwAV)."""

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.deepcluster import deepclusterv2_loss
from keras_adadim.methods import base
from keras_adadim.methods.clustering import Prototypes
from keras_adadim.methods.clustering import epoch_variable
from keras_adadim.methods.clustering import spherical_kmeans
from keras_adadim.methods.components import FeatureQueue
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class DeepClusterV2(base.Method):
    """Before each epoch, spherical k-means over a memory bank of past
    embeddings sets H sets of prototypes (the centroids); during the epoch
    each view's scores against them classify the image into its cluster
    (:func:`keras_adadim.losses.deepclusterv2_loss`)::

        s_hv = cos(z_v, C_h)                        (b, K_h)
        a_h  = argmax_k sg(s_h,j(h))[n]             j(h) = h mod 2 (a view)
        L = 1/H sum_h 1/2 [ CE(a_h, softmax(s_h1 / T)) + CE(a_h, softmax(s_h2 / T)) ]

    Sources: DeepCluster v2 (Caron et al., 2020, the SwAV paper's Appendix
    A.3; facebookresearch/swav ``main_deepclusterv2.py``) and solo-learn's
    ``deepclusterv2.py`` with its CIFAR ``deepclusterv2.yaml``: three heads
    of 3000 prototypes (also the paper's Table 10), T = 0.1, 10 k-means
    iterations, projector output 128; head h clusters the bank of view
    h mod 2; the prototypes are not trained (only k-means sets them).

    **The one deviation.** DeepCluster v2 stores each image's embedding
    under its dataset index and, before each epoch, labels every image with
    its cluster from k-means over that bank, then looks the labels up by
    index during the epoch. The two-view pipelines here carry no image
    index, so the memory bank is a FIFO of the last ``memory_size``
    embeddings of each view (solo-learn's bank is the whole dataset: pass
    the training set's size) and an image's label is the cluster of its
    current stop-gradient embedding: the centroid it is nearest to, which
    is what k-means' assignment step gives the bank's copy of it.

    Per-epoch work runs in ``on_epoch_begin`` (outside the compiled step,
    on the bank every replica holds: the global batches in the same
    order), once per epoch: a run resumed in the middle of an epoch keeps
    the prototypes saved with it. k-means starts from ``seed``, the epoch
    and the head. Logged term: ``deepclusterv2``.

    Args:
        num_prototypes: K_h of each head (a sequence), or one K for each
            of ``num_heads`` heads (``--num-prototypes``).
        num_heads: heads when ``num_prototypes`` is one K.
        temperature: T.
        kmeans_iterations: k-means iterations per epoch.
        memory_size: rows of each view's memory bank (>= every K_h).
        seed: seed of the initial prototypes and bank rows and of k-means.
    """

    term_names = ("deepclusterv2",)

    def __init__(self, num_prototypes=(3000, 3000, 3000), temperature=0.1,
                 kmeans_iterations=10, memory_size=65536, seed=0, num_heads=3,
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
        if int(memory_size) < max(num_prototypes):
            raise ValueError(
                f"The memory bank (`memory_size` {memory_size}, --queue-size) "
                f"must hold at least as many embeddings as the largest head "
                f"has prototypes ({max(num_prototypes)}) for k-means to run. "
                "Use a larger bank or fewer prototypes (--num-prototypes).")
        self.temperature = float(temperature)
        self.kmeans_iterations = int(kmeans_iterations)
        self.seed = int(seed)
        self.heads = [Prototypes(k, seed=self.seed + h, trainable=False,
                                 name=f"prototypes{h}")
                      for h, k in enumerate(num_prototypes)]
        self.banks = [FeatureQueue(memory_size, seed=self.seed + 100 + v,
                                   name=f"memory{v + 1}") for v in range(2)]
        self.epoch = epoch_variable(self)
        self.built = True

    def forward(self, views, encoder, projector, training):
        rows = base.two_views_online(views, encoder, projector, None, training)
        for h, head in enumerate(self.heads):
            for v in (1, 2):
                rows[f"s{v}_{h}"] = head(rows[f"z{v}"])
        return rows

    def ensure_built(self, rows, views):
        for bank in self.banks:
            if not bank.built:
                bank.build(rows["z1"].shape)

    def assignments(self, rows):
        """Each head's cluster of every image: the nearest centroid of its
        stop-gradient embedding of view ``h mod 2 + 1``."""
        return [ops.argmax(ops.stop_gradient(rows[f"s{h % 2 + 1}_{h}"]), axis=-1)
                for h in range(len(self.heads))]

    def loss_terms(self, rows, step=None):
        scores = [[rows[f"s1_{h}"], rows[f"s2_{h}"]] for h in range(len(self.heads))]
        return {"deepclusterv2": deepclusterv2_loss(
            scores, self.assignments(rows), self.temperature)}

    def update_state(self, rows, step, valid):
        if step.training:
            for bank, z in zip(self.banks, (rows["z1"], rows["z2"])):
                bank.push(l2_normalize_rows(ops.cast(z, "float32")), keep=valid)

    def on_epoch_begin(self, epoch):
        """k-means of each head over its view's memory bank; the centroids
        become the head's prototypes. Skipped for an epoch already
        clustered (a resumed run)."""
        if int(ops.convert_to_numpy(self.epoch)) == int(epoch) or not self.banks[0].built:
            return
        for h, head in enumerate(self.heads):
            centroids, _ = spherical_kmeans(
                self.banks[h % 2].queue, head.num_prototypes,
                self.kmeans_iterations, seed=[self.seed, int(epoch), h])
            head.kernel.assign(centroids)
        self.epoch.assign(int(epoch))

    def get_config(self):
        return {**super().get_config(),
                "num_prototypes": [head.num_prototypes for head in self.heads],
                "temperature": self.temperature,
                "kmeans_iterations": self.kmeans_iterations,
                "memory_size": self.banks[0].size, "seed": self.seed}
