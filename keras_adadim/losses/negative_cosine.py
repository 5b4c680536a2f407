"""Negative cosine similarity: the loss of SimSiam and BYOL."""

import keras
from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape
from keras_adadim.metrics.entropy import l2_normalize_rows


def negative_cosine_similarity(p, z):
    """Minus the mean cosine similarity of matching rows::

        L = -1/b sum_i <p_i / ||p_i||, z_i / ||z_i||>

    In [-1, 1]; identical (non-zero) inputs give -1. SimSiam (Chen & He,
    2021, Eq. 1) uses it with a stop-gradient on ``z``; BYOL's
    ``2 - 2 cos`` is ``2 + 2 L``. The function itself does not stop
    gradients: the methods do.

    Args:
        p: predictions (b, F).
        z: targets (b, F), row i matching row i of ``p``.

    Example:
    >>> x = np.array([[1.0, 2.0], [3.0, -1.0]], "float32")
    >>> float(negative_cosine_similarity(x, 2 * x))
    -1.0
    """
    p = as_matrix(p, "p")
    z = as_matrix(z, "z")
    check_same_shape(p, z, "p", "z")
    cos = ops.sum(l2_normalize_rows(p) * l2_normalize_rows(z), axis=1)
    return -ops.mean(cos)


@keras.saving.register_keras_serializable(package="keras_adadim")
class NegativeCosineSimilarity(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`negative_cosine_similarity`;
    call as ``NegativeCosineSimilarity()(z, p)`` (``y_true`` is the target
    ``z``, ``y_pred`` the prediction ``p``)."""

    def __init__(self, name="negative_cosine_similarity", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return negative_cosine_similarity(y_pred, y_true)


__all__ = ["negative_cosine_similarity", "NegativeCosineSimilarity"]
