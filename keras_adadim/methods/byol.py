"""BYOL: bootstrap your own latent (Grill et al., 2020)."""

import keras

from keras_adadim.losses.negative_cosine import negative_cosine_similarity
from keras_adadim.methods import base
from keras_adadim.methods.components import EMATeacher


@keras.saving.register_keras_serializable(package="keras_adadim")
class BYOL(base.Method):
    """An online encoder -> projector -> predictor regresses the EMA
    teacher's embedding of the other view::

        L = [2 - 2 cos(p1, sg(z2t))] + [2 - 2 cos(p2, sg(z1t))]

    (Grill et al., 2020, Eq. 2 symmetrised, summed over both directions as
    solo-learn's ``byol.py``.) The teacher's momentum follows
    tau = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2 from ``base_momentum``
    to ``final_momentum`` (0.99 -> 1.0: solo-learn's CIFAR
    ``byol.yaml``, also its ``proj_output_dim`` 256 and predictor hidden
    size 4096). Logged term: ``byol``; also ``momentum`` (tau). The teacher
    and predictor are the shared parts of ``keras_adadim.methods.base``.

    Args:
        base_momentum, final_momentum: the EMA schedule's ends.
        predictor_hidden_dim: hidden width of the default predictor.
        predictor: a predictor head to use instead (F -> F).
    """

    term_names = ("byol",)
    log_names = ("momentum",)
    needs_planned_steps = True
    has_targets = True

    def __init__(self, base_momentum=0.99, final_momentum=1.0,
                 predictor_hidden_dim=4096, predictor=None, **kwargs):
        kwargs.setdefault("name", "byol")
        super().__init__(**kwargs)
        self.teacher = EMATeacher(base_momentum, final_momentum, name="teacher")
        self.predictor_hidden_dim = int(predictor_hidden_dim)
        self.predictor = predictor
        self.built = True

    def loss_terms(self, rows, step=None):
        loss = (2.0 + 2.0 * negative_cosine_similarity(rows["p1"], rows["z2t"])) + (
            2.0 + 2.0 * negative_cosine_similarity(rows["p2"], rows["z1t"]))
        return {"byol": loss}

    def get_config(self):
        return {**super().get_config(), **base.parts_config(self)}
