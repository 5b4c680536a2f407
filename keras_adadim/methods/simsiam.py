"""SimSiam: simple Siamese networks (Chen & He, 2021)."""

import keras
from keras import ops

from keras_adadim.losses.negative_cosine import negative_cosine_similarity
from keras_adadim.methods import base


@keras.saving.register_keras_serializable(package="keras_adadim")
class SimSiam(base.Method):
    """A predictor on one branch, a stop-gradient on the other, no teacher::

        L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)),   D = negative cosine

    (Chen & He, 2021, Eqs. 1-4; solo-learn's ``simsiam.py``.) The CIFAR
    settings of solo-learn's ``simsiam.yaml``: projector 2048 -> 2048,
    predictor hidden size 512. Logged term: ``simsiam`` (-1 at best). The
    predictor is the shared part of ``keras_adadim.methods.base``.

    Args:
        predictor_hidden_dim: hidden width of the default predictor (512).
        predictor: a predictor head to use instead (F -> F).
    """

    term_names = ("simsiam",)

    def __init__(self, predictor_hidden_dim=512, predictor=None, **kwargs):
        kwargs.setdefault("name", "simsiam")
        super().__init__(**kwargs)
        self.predictor_hidden_dim = int(predictor_hidden_dim)
        self.predictor = predictor
        self.built = True

    def loss_terms(self, rows, step=None):
        sg = ops.stop_gradient
        loss = 0.5 * negative_cosine_similarity(rows["p1"], sg(rows["z2"])) + (
            0.5 * negative_cosine_similarity(rows["p2"], sg(rows["z1"])))
        return {"simsiam": loss}

    def get_config(self):
        return {**super().get_config(), **base.parts_config(self)}
