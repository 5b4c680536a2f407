"""ReSSL: relational self-supervised learning with weak augmentation
(Zheng et al., 2021)."""

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.ressl import ressl_loss
from keras_adadim.methods import base
from keras_adadim.methods.components import EMATeacher
from keras_adadim.methods.components import FeatureQueue
from keras_adadim.metrics.entropy import l2_normalize_rows


@keras.saving.register_keras_serializable(package="keras_adadim")
class ReSSL(base.Method):
    """The EMA teacher embeds the WEAK view (view 1), the student the
    STRONG view (view 2); the student's similarities to a queue of past
    teacher embeddings match the teacher's, sharpened
    (:func:`keras_adadim.losses.ressl_loss`)::

        L = CE( softmax(<sg(z1t), queue> / 0.04), softmax(<z2, queue> / 0.1) )

    then the (global) batch's L2-normalised ``z1t`` enter the queue, newest
    first, in the same order on every replica. Sources: ReSSL (Zheng et
    al., 2021, Sec. 3, Algorithm 1: weak augmentation for the teacher,
    T_t 0.04, T_s 0.1, a queue of teacher embeddings) and solo-learn's
    ``ressl.py`` with its CIFAR ``ressl.yaml``: queue 65,536, momentum
    0.99 -> 1, projector output 256, no predictor. Train it on the
    ``ressl`` views (``--augmentation ressl``: view 1 crop + flip only, as
    the paper's Table 11). On small data use a queue of at most a few
    epochs' embeddings (the digits preset: 512). Logged: ``ressl``,
    ``momentum``. The teacher is the shared part of
    ``keras_adadim.methods.base``; it runs on view 1 only.

    Args:
        queue_size: rows of the queue.
        student_temperature: T_s.
        teacher_temperature: T_t.
        base_momentum, final_momentum: the EMA schedule's ends.
        seed: seed of the queue's initial (random unit) rows.
    """

    term_names = ("ressl",)
    log_names = ("momentum",)
    needs_planned_steps = True
    has_targets = True

    def __init__(self, queue_size=65536, student_temperature=0.1,
                 teacher_temperature=0.04, base_momentum=0.99,
                 final_momentum=1.0, seed=0, **kwargs):
        kwargs.setdefault("name", "ressl")
        super().__init__(**kwargs)
        for name, value in (("student_temperature", student_temperature),
                            ("teacher_temperature", teacher_temperature)):
            check_number(name, value, 0, low_open=True)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.teacher = EMATeacher(base_momentum, final_momentum, name="teacher")
        check_number("queue_size", queue_size, 1, integer=True)
        self.queue = FeatureQueue(queue_size, seed=seed, name="queue")
        self.built = True

    def ensure_built(self, rows, views):
        super().ensure_built(rows, views)
        if not self.queue.built:
            self.queue.build(rows["z1"].shape)

    def targets(self, rows, views, encoder, projector, step):
        # The teacher sees the weak view only.
        if step.training:
            self.teacher.update(encoder, projector, step.progress)
        r, z = self.teacher(views[0], training=step.training)
        return {"r1t": r, "z1t": z}

    def loss_terms(self, rows, step=None):
        return {"ressl": ressl_loss(rows["z2"], rows["z1t"], self.queue.queue,
                                    self.student_temperature,
                                    self.teacher_temperature)}

    def update_state(self, rows, step, valid):
        if step.training:
            keys = l2_normalize_rows(ops.cast(rows["z1t"], "float32"))
            self.queue.push(keys, keep=valid)

    def get_config(self):
        return {**super().get_config(),
                "queue_size": self.queue.size,
                "student_temperature": self.student_temperature,
                "teacher_temperature": self.teacher_temperature,
                "seed": self.queue.seed, **base.parts_config(self)}
