"""Barlow Twins: redundancy reduction (Zbontar et al., 2021)."""

import keras

from keras_adadim._validation import check_number
from keras_adadim.losses.barlow_twins import barlow_twins
from keras_adadim.methods import base


@keras.saving.register_keras_serializable(package="keras_adadim")
class BarlowTwins(base.Method):
    """The cross-correlation of the two views' batch-standardised embeddings
    is pushed to the identity (:func:`keras_adadim.losses.barlow_twins`)::

        L = scale [ sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2 ]

    No predictor, no teacher. Defaults: lambda 0.0051 (the paper's and
    solo-learn's), scale 0.1 and projector 2048 -> 2048 (solo-learn's CIFAR
    ``barlow.yaml``). Logged term: ``barlow_twins``.

    Args:
        lambda_: off-diagonal weight.
        scale: loss scale (``scale_loss``).
    """

    term_names = ("barlow_twins",)

    def __init__(self, lambda_=0.0051, scale=0.1, **kwargs):
        kwargs.setdefault("name", "barlow_twins")
        super().__init__(**kwargs)
        self.lambda_ = check_number("lambda_", lambda_, 0)
        self.scale = check_number("scale", scale, 0, low_open=True)
        self.built = True

    def loss_terms(self, rows, step=None):
        return {"barlow_twins": barlow_twins(
            rows["z1"], rows["z2"], self.lambda_, self.scale)}

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_, "scale": self.scale}
