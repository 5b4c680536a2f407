"""MoCo v3 (Chen, Xie & He, 2021)."""

import keras

from keras_adadim._validation import check_number
from keras_adadim.losses.info_nce import info_nce
from keras_adadim.methods import base
from keras_adadim.methods.components import EMATeacher


@keras.saving.register_keras_serializable(package="keras_adadim")
class MoCoV3(base.Method):
    """Online queries (encoder -> projector -> predictor) against the EMA
    teacher's keys of the other view, the batch as negatives::

        L = 2 tau [ InfoNCE(p1, sg(z2t)) + InfoNCE(p2, sg(z1t)) ]

    (Chen et al., 2021, Algorithm 1: ``ctr(q1, k2) + ctr(q2, k1)`` with
    ``ctr`` scaled by 2 tau; :func:`keras_adadim.losses.info_nce`.)
    Defaults from solo-learn's CIFAR ``mocov3.yaml``: temperature 0.2,
    momentum 0.99 -> 1.0, projector output 256, predictor hidden 4096.
    Logged term: ``mocov3``; also ``momentum``. The teacher and predictor
    are the shared parts of ``keras_adadim.methods.base``.

    Args:
        temperature: tau.
        base_momentum, final_momentum: the EMA schedule's ends.
        predictor_hidden_dim: hidden width of the default predictor.
        predictor: a predictor head to use instead (F -> F).
    """

    term_names = ("mocov3",)
    log_names = ("momentum",)
    needs_planned_steps = True
    has_targets = True

    def __init__(self, temperature=0.2, base_momentum=0.99, final_momentum=1.0,
                 predictor_hidden_dim=4096, predictor=None, **kwargs):
        kwargs.setdefault("name", "mocov3")
        super().__init__(**kwargs)
        self.temperature = check_number("temperature", temperature, 0,
                                        low_open=True)
        self.teacher = EMATeacher(base_momentum, final_momentum, name="teacher")
        self.predictor_hidden_dim = int(predictor_hidden_dim)
        self.predictor = predictor
        self.built = True

    def loss_terms(self, rows, step=None):
        t = self.temperature
        loss = 2.0 * t * (info_nce(rows["p1"], rows["z2t"], t)
                          + info_nce(rows["p2"], rows["z1t"], t))
        return {"mocov3": loss}

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature,
                **base.parts_config(self)}
