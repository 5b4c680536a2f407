"""DINO: self-distillation with no labels (Caron et al., 2021)."""

import keras
from keras import ops

from keras_adadim._validation import check_number
from keras_adadim.losses.dino import dino_loss
from keras_adadim.methods import base
from keras_adadim.methods.clustering import Prototypes
from keras_adadim.methods.clustering import before_epoch
from keras_adadim.methods.clustering import crop_rows
from keras_adadim.methods.clustering import local_crop_embeddings
from keras_adadim.methods.clustering import epoch_variable
from keras_adadim.methods.clustering import epochs_done
from keras_adadim.methods.components import EMATeacher


@keras.saving.register_keras_serializable(package="keras_adadim")
class DINO(base.Method):
    """A student (encoder -> projector -> head) predicts the softmax of an
    EMA teacher's output on the other view, centred and sharpened::

        s_v = head(z_v),  t_v = head_t(z_v^t)        (b, K) logits
        L = 1/2 [ CE(softmax((t_1 - c) / T_t), softmax(s_2 / T_s))
                  + CE(softmax((t_2 - c) / T_t), softmax(s_1 / T_s)) ]
        c <- m c + (1 - m) mean over the batch of [t_1; t_2]  (after the loss)

    (:func:`keras_adadim.losses.dino_loss`, written for any number of
    crops.) The head is DINO's last layer: K prototypes, L2-normalised
    like the embedding (``norm_last_layer``); the teacher's encoder,
    projector and head are EMAs of the student's (cosine momentum
    schedule, the shared teacher of ``keras_adadim.methods.base`` plus the
    head here). Sources: DINO (Caron et al., 2021, Algorithm 1, Sec. 3.1
    and Appendix: centre momentum 0.9, T_s 0.1, T_t warmed up linearly
    from 0.04 to 0.07, the last layer frozen during the first epoch,
    multi-crop) and solo-learn's ``dino.py`` with its CIFAR ``dino.yaml``:
    K = 4096, projector output 256, teacher momentum 0.9995 -> 1, the head
    normalised (``norm_last_layer``, solo-learn's default too), which keeps
    its logits bounded by 1 / T. The T_t warm-up lasts 30 epochs
    (``warmup_teacher_temperature_epochs``), the default of DINO's
    ``main_dino.py``: solo-learn's CIFAR config sets none (its default is
    0, i.e. T_t = 0.07 from the start). The centre is the mean over the GLOBAL batch (DINO
    all-reduces it; under ``tf.distribute`` the model gathers the teacher's
    rows first), so every replica holds the same centre. The epoch comes
    from ``fit`` (``Method.on_epoch_begin``); outside ``fit`` it counts as
    0. Logged: ``dino``, ``momentum``, ``teacher_temperature``.

    **Multi-crop** (``multi_crop``; ``keras_adadim.data.multi_crop``): with
    views ``(x1, x2, l1, ..., lk)`` the student sees every crop (logits
    ``s1 ... s(2+k)``), the teacher the two global ones only, and the loss
    averages over every (teacher crop, other student crop) pair (DINO,
    Algorithm 1 and Sec. 3.1; ``DINOLoss`` of facebookresearch/dino); the
    centre is the mean of the teacher's global-crop outputs.

    Args:
        num_prototypes: K, the head's outputs.
        student_temperature: T_s.
        teacher_temperature: T_t after the warm-up.
        warmup_teacher_temperature: T_t at epoch 0.
        warmup_teacher_temperature_epochs: epochs of the linear warm-up.
        center_momentum: m.
        freeze_last_layer_epochs: epochs in which no gradient reaches the
            head.
        base_momentum, final_momentum: the teacher's EMA schedule's ends.
        seed: seed of the head's initial prototypes (the teacher's head
            starts equal to the student's).
    """

    term_names = ("dino",)
    log_names = ("momentum", "teacher_temperature")
    needs_planned_steps = True
    has_targets = True
    multi_crop = True  # takes local crops beyond its two views

    def __init__(self, num_prototypes=4096, student_temperature=0.1,
                 teacher_temperature=0.07, warmup_teacher_temperature=0.04,
                 warmup_teacher_temperature_epochs=30, center_momentum=0.9,
                 freeze_last_layer_epochs=1, base_momentum=0.9995,
                 final_momentum=1.0, seed=0, **kwargs):
        kwargs.setdefault("name", "dino")
        super().__init__(**kwargs)
        for name, value in (("student_temperature", student_temperature),
                            ("teacher_temperature", teacher_temperature),
                            ("warmup_teacher_temperature",
                             warmup_teacher_temperature)):
            check_number(name, value, 0, low_open=True)
        check_number("center_momentum", center_momentum, 0, 1)
        for name, value in (("warmup_teacher_temperature_epochs",
                             warmup_teacher_temperature_epochs),
                            ("freeze_last_layer_epochs", freeze_last_layer_epochs)):
            check_number(name, value, 0, integer=True)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.warmup_teacher_temperature = float(warmup_teacher_temperature)
        self.warmup_teacher_temperature_epochs = int(warmup_teacher_temperature_epochs)
        self.center_momentum = float(center_momentum)
        self.freeze_last_layer_epochs = int(freeze_last_layer_epochs)
        self.seed = int(seed)
        self.teacher = EMATeacher(base_momentum, final_momentum, name="teacher")
        self.head = Prototypes(num_prototypes, seed=seed, name="head")
        # Set only by the EMA: not trainable, so never in the optimizer.
        self.teacher_head = Prototypes(num_prototypes, seed=seed,
                                       trainable=False, name="teacher_head")
        self.center = self.add_weight(
            name="center", shape=(int(num_prototypes),), dtype="float32",
            initializer="zeros", trainable=False)
        self.epoch = epoch_variable(self)
        self.built = True

    def on_epoch_begin(self, epoch):
        self.epoch.assign(int(epoch))

    def teacher_temperature_now(self):
        """T_t of the current epoch: linear from the warm-up value at epoch
        0 to ``teacher_temperature`` at epoch ``warmup - 1`` (solo-learn's
        ``np.linspace`` schedule), then constant."""
        w = self.warmup_teacher_temperature_epochs
        if w <= 1:
            return ops.convert_to_tensor(self.teacher_temperature, "float32")
        frac = ops.minimum(epochs_done(self.epoch) / float(w - 1), 1.0)
        return self.warmup_teacher_temperature + frac * (
            self.teacher_temperature - self.warmup_teacher_temperature)

    def forward(self, views, encoder, projector, training):
        rows = base.two_views_online(views, encoder, projector, None, training)
        gate = 1.0 - before_epoch(self.epoch, self.freeze_last_layer_epochs)
        for i in (1, 2):
            rows[f"s{i}"] = self.head(rows[f"z{i}"], gate=gate)
        # Multi-crop: the student's logits of the local crops.
        zs = local_crop_embeddings(views, encoder, projector, training)
        for i, z in enumerate(zs, start=3):
            rows[f"s{i}"] = self.head(z, gate=gate)
        return rows

    def ensure_built(self, rows, views):
        super().ensure_built(rows, views)
        if not self.teacher_head.built:
            self.teacher_head.build(rows["z1"].shape)
            self.teacher_head.kernel.assign(self.head.kernel)

    def targets(self, rows, views, encoder, projector, step):
        out = base.teacher_targets(self.teacher, views, encoder, projector, step)
        if step.training:  # the head moves with the teacher's networks
            tau = self.teacher.momentum(step.progress)
            kernel = self.teacher_head.kernel
            kernel.assign(ops.stop_gradient(
                tau * kernel + (1.0 - tau) * ops.convert_to_tensor(self.head.kernel)))
        for i in (1, 2):
            out[f"t{i}"] = ops.stop_gradient(self.teacher_head(out[f"z{i}t"]))
        return out

    def loss_terms(self, rows, step=None):
        return {"dino": dino_loss(
            crop_rows(rows, "s"), [rows["t1"], rows["t2"]], self.center,
            self.student_temperature, self.teacher_temperature_now())}

    def logs(self, step):
        return {**super().logs(step),
                "teacher_temperature": self.teacher_temperature_now()}

    def update_state(self, rows, step, valid):
        if step.training:
            t = ops.concatenate([rows["t1"], rows["t2"]], axis=0)
            m = self.center_momentum
            old = ops.convert_to_tensor(self.center)
            new = m * old + (1.0 - m) * ops.mean(ops.cast(t, "float32"), axis=0)
            self.center.assign(ops.where(valid, new, old))

    def get_config(self):
        return {**super().get_config(),
                "num_prototypes": self.head.num_prototypes,
                "student_temperature": self.student_temperature,
                "teacher_temperature": self.teacher_temperature,
                "warmup_teacher_temperature": self.warmup_teacher_temperature,
                "warmup_teacher_temperature_epochs":
                    self.warmup_teacher_temperature_epochs,
                "center_momentum": self.center_momentum,
                "freeze_last_layer_epochs": self.freeze_last_layer_epochs,
                "seed": self.seed, **base.parts_config(self)}
