"""MoCo v2+ (Chen, Fan, Girshick & He, 2020; solo-learn's ``mocov2plus``)."""

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.moco import moco_info_nce
from keras_adadim.methods import base
from keras_adadim.methods.components import EMATeacher
from keras_adadim.methods.components import FeatureQueue
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class MoCoV2Plus(base.Method):
    """Online queries (encoder -> projector, no predictor) against the EMA
    key encoder's embedding of the other view, with queues of past keys as
    the negatives (:func:`keras_adadim.losses.moco_info_nce`)::

        L = 1/2 [ InfoNCE_Q(z1, sg(z2t); queue2) + InfoNCE_Q(z2, sg(z1t); queue1) ]

    Sources: MoCo (He et al., 2020, Algorithm 1: key encoder by momentum,
    FIFO queue of keys), MoCo v2 (Chen, Fan, Girshick & He, 2020,
    "Improved baselines with momentum contrastive learning": MLP projector,
    stronger augmentation, tau 0.2) and solo-learn's ``mocov2plus.py``
    (the symmetrised loss, the key branch's momentum on BYOL's cosine
    schedule, a projector with batch norm). As solo-learn, there is one
    queue per view: after the loss the (global, under ``tf.distribute``)
    batch's L2-normalised keys enter them, ``z1t`` into ``queue1`` and
    ``z2t`` into ``queue2``, newest first, in the same order on every
    replica (:class:`~keras_adadim.methods.components.FeatureQueue`); the
    query of view 1 has the keys of view 2 as its positive and ``queue2``'s
    rows as its negatives, and vice versa. Defaults from solo-learn's CIFAR
    ``mocov2plus.yaml``: temperature 0.2, queue 65,536 (the paper's K),
    momentum 0.99 -> 1.0, projector output 256 (the run's projector). On
    small data use a queue of at most a few epochs' keys (the digits
    preset: 512). Logged term: ``mocov2plus``; also ``momentum``. The
    teacher is the shared part of ``keras_adadim.methods.base``.

    Args:
        temperature: tau.
        queue_size: rows in each of the two queues (the negatives of a query).
        base_momentum, final_momentum: the EMA schedule's ends.
        seed: seed of the queues' initial (random unit) rows (``queue2``:
            ``seed + 1``).
    """

    term_names = ("mocov2plus",)
    log_names = ("momentum",)
    needs_planned_steps = True
    has_targets = True

    def __init__(self, temperature=0.2, queue_size=65536, base_momentum=0.99,
                 final_momentum=1.0, seed=0, **kwargs):
        kwargs.setdefault("name", "mocov2plus")
        super().__init__(**kwargs)
        self.temperature = check_number("temperature", temperature, 0,
                                        low_open=True)
        self.teacher = EMATeacher(base_momentum, final_momentum, name="teacher")
        check_number("queue_size", queue_size, 1, integer=True)
        self.queue1 = FeatureQueue(queue_size, seed=seed, name="queue1")
        self.queue2 = FeatureQueue(queue_size, seed=int(seed) + 1, name="queue2")
        self.built = True

    def ensure_built(self, rows, views):
        super().ensure_built(rows, views)
        for queue in (self.queue1, self.queue2):
            if not queue.built:
                queue.build(rows["z1"].shape)

    def loss_terms(self, rows, step=None):
        t = self.temperature
        loss = 0.5 * (
            moco_info_nce(rows["z1"], rows["z2t"], self.queue2.queue, t)
            + moco_info_nce(rows["z2"], rows["z1t"], self.queue1.queue, t))
        return {"mocov2plus": loss}

    def update_state(self, rows, step, valid):
        if step.training:
            for queue, keys in ((self.queue1, rows["z1t"]),
                                (self.queue2, rows["z2t"])):
                keys = l2_normalize_rows(ops.cast(keys, "float32"))
                queue.push(keys, keep=valid)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature,
                "queue_size": self.queue1.size, "seed": self.queue1.seed,
                **base.parts_config(self)}
