"""SwAV: swapping assignments between views (Caron et al., 2020)."""

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.sinkhorn import sinkhorn_knopp
from keras_adadim.losses.swav import swav_loss
from keras_adadim.methods import base
from keras_adadim.methods.clustering import Prototypes
from keras_adadim.methods.clustering import before_epoch
from keras_adadim.methods.clustering import crop_rows
from keras_adadim.methods.clustering import local_crop_embeddings
from keras_adadim.methods.clustering import epoch_variable
from keras_adadim.methods.clustering import epochs_done
from keras_adadim.methods.components import FeatureQueue
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class SwAV(base.Method):
    """Each view's prototype scores predict the other view's codes, the
    codes being equipartitioned soft cluster assignments computed online by
    Sinkhorn-Knopp on the (global) batch::

        s_v = cos(z_v, C)                            (b, K), C the prototypes
        q_v = SinkhornKnopp(sg(s_v); eps 0.05, 3 its)
        L = 1/2 [ CE(q_1, softmax(s_2 / T)) + CE(q_2, softmax(s_1 / T)) ]

    (:func:`keras_adadim.losses.swav_loss`, which takes any number of crops,
    and :func:`keras_adadim.losses.sinkhorn_knopp`.) Sources: SwAV (Caron
    et al., 2020, Sec. 3.1, Eq. 1-3; Appendix A.1: prototypes on the unit
    sphere, frozen during the first epoch, a queue of past embeddings when
    the batch is small against K) and solo-learn's ``swav.py`` with its
    CIFAR ``swav.yaml``: K = 3000, T = 0.1, epsilon 0.05, 3 iterations,
    projector output 128, prototypes frozen for the first 2 epochs, queue
    3840 used from epoch 50. Under ``tf.distribute`` the model gathers the
    scores of every replica first, so Sinkhorn-Knopp's sums are over the
    global batch (SwAV all-reduces them); on JAX the step is global anyway.

    The queue (one per view, as solo-learn's) holds the last
    ``queue_size`` L2-normalised embeddings of the global batch; from epoch
    ``queue_start_epoch`` on, the codes of a batch are computed together
    with the queue's scores (the batch's rows of Sinkhorn-Knopp over
    [batch; queue]). ``queue_size=0``: no queue. The epoch comes from
    ``fit`` (``Method.on_epoch_begin``); outside ``fit`` it counts as 0.
    Logged term: ``swav``.

    **Multi-crop** (``multi_crop``; ``keras_adadim.data.multi_crop``): with
    views ``(x1, x2, l1, ..., lk)`` the local crops' scores ``s3 ...`` join
    the swapped prediction (each global crop's codes are predicted from
    every other crop, local ones included), while codes (and the queue)
    come from the two global crops only (SwAV, Sec. 3.2, "crops_for_assign"
    [0, 1]; solo-learn's ``swav_loss_func``).

    Args:
        num_prototypes: K.
        temperature: T of the predictions' softmax.
        sinkhorn_epsilon, sinkhorn_iterations: Sinkhorn-Knopp's settings.
        freeze_prototypes_epochs: epochs in which no gradient reaches the
            prototypes.
        queue_size: rows of each view's queue (0: none).
        queue_start_epoch: first epoch whose codes use the queue.
        seed: seed of the prototypes and the queues' initial rows.
    """

    term_names = ("swav",)
    multi_crop = True  # takes local crops beyond its two views

    def __init__(self, num_prototypes=3000, temperature=0.1,
                 sinkhorn_epsilon=0.05, sinkhorn_iterations=3,
                 freeze_prototypes_epochs=2, queue_size=3840,
                 queue_start_epoch=50, seed=0, **kwargs):
        kwargs.setdefault("name", "swav")
        super().__init__(**kwargs)
        check_number("temperature", temperature, 0, low_open=True)
        check_number("sinkhorn_epsilon", sinkhorn_epsilon, 0, low_open=True)
        check_number("sinkhorn_iterations", sinkhorn_iterations, 1,
                     integer=True)
        for name, value in (("freeze_prototypes_epochs", freeze_prototypes_epochs),
                            ("queue_size", queue_size),
                            ("queue_start_epoch", queue_start_epoch)):
            check_number(name, value, 0, integer=True)
        self.temperature = float(temperature)
        self.sinkhorn_epsilon = float(sinkhorn_epsilon)
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.freeze_prototypes_epochs = int(freeze_prototypes_epochs)
        self.queue_size = int(queue_size)
        self.queue_start_epoch = int(queue_start_epoch)
        self.seed = int(seed)
        self.prototypes = Prototypes(num_prototypes, seed=seed, name="prototypes")
        self.queues = [FeatureQueue(self.queue_size, seed=self.seed + i,
                                    name=f"queue{i + 1}")
                       for i in range(2)] if self.queue_size else []
        self.epoch = epoch_variable(self)
        self.built = True

    def on_epoch_begin(self, epoch):
        self.epoch.assign(int(epoch))

    def forward(self, views, encoder, projector, training):
        rows = base.two_views_online(views, encoder, projector, None, training)
        gate = 1.0 - before_epoch(self.epoch, self.freeze_prototypes_epochs)
        for i in (1, 2):
            rows[f"s{i}"] = self.prototypes(rows[f"z{i}"], gate=gate)
        # Multi-crop: the local crops' scores (they get no codes).
        zs = local_crop_embeddings(views, encoder, projector, training)
        for i, z in enumerate(zs, start=3):
            rows[f"s{i}"] = self.prototypes(z, gate=gate)
        return rows

    def ensure_built(self, rows, views):
        for queue in self.queues:
            if not queue.built:
                queue.build(rows["z1"].shape)

    def codes(self, scores, queue=None):
        """Sinkhorn-Knopp codes of one view's (b, K) scores; with a queue in
        use, computed over [scores; the queue's scores] (rows of the batch
        returned)."""
        sk = lambda s: sinkhorn_knopp(s, self.sinkhorn_epsilon,  # noqa: E731
                                      self.sinkhorn_iterations)
        if queue is None:
            return sk(scores)
        queued = ops.matmul(ops.convert_to_tensor(queue.queue),
                            ops.transpose(self.prototypes.normalized()))
        b = ops.shape(scores)[0]
        with_queue = sk(ops.concatenate([scores, queued], axis=0))[:b]
        use = epochs_done(self.epoch) >= float(self.queue_start_epoch)
        return ops.where(use, with_queue, sk(scores))

    def loss_terms(self, rows, step=None):
        scores = crop_rows(rows, "s")  # the global crops first
        queues = self.queues or [None, None]
        codes = [self.codes(s, q) for s, q in zip(scores[:2], queues)]
        return {"swav": swav_loss(scores, codes, self.temperature)}

    def update_state(self, rows, step, valid):
        if step.training:
            for queue, z in zip(self.queues, (rows["z1"], rows["z2"])):
                queue.push(l2_normalize_rows(ops.cast(z, "float32")), keep=valid)

    def get_config(self):
        return {**super().get_config(),
                "num_prototypes": self.prototypes.num_prototypes,
                "temperature": self.temperature,
                "sinkhorn_epsilon": self.sinkhorn_epsilon,
                "sinkhorn_iterations": self.sinkhorn_iterations,
                "freeze_prototypes_epochs": self.freeze_prototypes_epochs,
                "queue_size": self.queue_size,
                "queue_start_epoch": self.queue_start_epoch,
                "seed": self.seed}
