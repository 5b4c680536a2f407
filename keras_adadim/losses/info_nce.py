"""InfoNCE of a batch of queries against keys: MoCo v3's and NNCLR's loss."""

import keras
from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape
from keras_adadim.metrics.entropy import l2_normalize_rows


def info_nce(q, k, temperature=0.2):
    """Cross-entropy of each query against all keys, its own key positive::

        s_ij = <q_i / ||q_i||, k_j / ||k_j||> / temperature
        L = 1/b sum_i [ -s_ii + log sum_j exp(s_ij) ]

    Row i's positive is ``k_i``; the other rows of ``k`` are its negatives
    (the denominator includes the positive). This is ``cross_entropy(q k^T
    / tau, arange(b))`` of MoCo v3 (Chen et al., 2021, Algorithm 1) and of
    NNCLR (Dwibedi et al., 2021, Eq. 2). Unlike :func:`nt_xent` (SimCLR)
    the queries are not negatives of each other. Identical unit rows with
    orthogonal others give ``log(1 + (b - 1) exp(-1 / tau))``.

    Args:
        q: queries (b, F).
        k: keys (b, F), row i the positive of query i.
        temperature: softmax temperature tau > 0 (0.2: MoCo v3, NNCLR).

    Example:
    >>> e = np.eye(3, dtype="float32")
    >>> round(float(info_nce(e, e, 1.0)), 6) == round(math.log(1 + 2 / math.e), 6)
    True
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    q = as_matrix(q, "q")
    k = as_matrix(k, "k")
    check_same_shape(q, k, "q", "k")
    logits = ops.matmul(l2_normalize_rows(q), ops.transpose(l2_normalize_rows(k)))
    logits = logits / temperature
    positives = ops.diagonal(logits)
    return ops.mean(ops.logsumexp(logits, axis=1) - positives)


@keras.saving.register_keras_serializable(package="keras_adadim")
class InfoNCE(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`info_nce`; call as
    ``InfoNCE()(k, q)`` (``y_true`` the keys, ``y_pred`` the queries)."""

    def __init__(self, temperature=0.2, name="info_nce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return info_nce(y_pred, y_true, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


__all__ = ["info_nce", "InfoNCE"]
