"""Barlow Twins' redundancy-reduction loss."""

import keras
from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape


def barlow_twins(z1, z2, lambda_=0.0051, scale=1.0, epsilon=1e-5):
    """Cross-correlation of batch-standardised embeddings pushed to I::

        zhat = (z - mean_b z) / sqrt(var_b z + epsilon)   per view, per feature
        C = zhat1^T zhat2 / b                            (F, F)
        L = scale * [ sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 ]

    (Zbontar et al., 2021, Eq. 1.) ``var_b`` is the biased batch variance
    and ``epsilon`` 1e-5, as PyTorch's ``BatchNorm1d(affine=False)`` that
    solo-learn uses; ``lambda_`` = 0.0051 is the paper's and solo-learn's
    off-diagonal weight; solo-learn's CIFAR configuration scales the loss
    by 0.1 (``scale_loss``), the method's default. With ``z1 == z2`` the
    diagonal is ``var / (var + epsilon)`` (1 up to epsilon), so the loss is
    its off-diagonal term.

    Args:
        z1, z2: embeddings of the two views (b, F), b >= 2.
        lambda_: weight of the off-diagonal (redundancy) term.
        scale: overall factor.
        epsilon: added to the variance.

    Example:
    >>> z = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], "float32")
    >>> round(float(barlow_twins(z, z)), 4)   # C = diag(1, 1): no redundancy
    0.0
    """
    z1 = as_matrix(z1, "z1", min_rows=2)
    z2 = as_matrix(z2, "z2", min_rows=2)
    check_same_shape(z1, z2, "z1", "z2")
    b = ops.cast(ops.shape(z1)[0], "float32")

    def standardise(z):
        z = z - ops.mean(z, axis=0, keepdims=True)
        return z * ops.rsqrt(ops.mean(ops.square(z), axis=0, keepdims=True) + epsilon)

    c = ops.matmul(ops.transpose(standardise(z1)), standardise(z2)) / b
    diag = ops.diagonal(c)
    on = ops.sum(ops.square(1.0 - diag))
    off = ops.sum(ops.square(c)) - ops.sum(ops.square(diag))
    return scale * (on + lambda_ * off)


@keras.saving.register_keras_serializable(package="keras_adadim")
class BarlowTwinsLoss(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`barlow_twins`; call as
    ``BarlowTwinsLoss()(z1, z2)``."""

    def __init__(self, lambda_=0.0051, scale=1.0, epsilon=1e-5,
                 name="barlow_twins", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambda_ = lambda_
        self.scale = scale
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        return barlow_twins(y_true, y_pred, self.lambda_, self.scale, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_,
                "scale": self.scale, "epsilon": self.epsilon}


__all__ = ["barlow_twins", "BarlowTwinsLoss"]
