"""NT-Xent, the InfoNCE loss of SimCLR (L_NCE in the AdaDim paper)."""

import keras
from keras import ops

from keras_adadim import _backend as hot
from keras_adadim._validation import as_matrix, check_same_shape
from keras_adadim.metrics.entropy import l2_normalize_rows


def nt_xent(z1, z2, temperature=0.1):
    """Normalised-temperature cross-entropy over the 2b views of a batch::

        z = normalize(concat(z1, z2))              (2b, F), unit rows
        s_ij = z_i . z_j / temperature
        l_i = -s_{i,p(i)} + log sum_{j != i} exp(s_ij)
        L = mean_i l_i                             (over all 2b anchors)

    ``p(i)`` is the other view of the same image; the denominator holds every
    other row (the positive included, the anchor itself excluded). This is
    the value solo-learn and lightly report (Google's TF SimCLR reports 2L).
    Fully collapsed embeddings give ``log(2b - 1)``.

    Args:
        z1, z2: embeddings of the two views, (b, F), row i of each from the
            same image. Any float dtype; computed in float32.
        temperature: softmax temperature tau > 0.

    Example:
    >>> z = np.ones((4, 3), "float32")
    >>> round(float(nt_xent(z, z)), 6) == round(math.log(7), 6)
    True
    """
    _check_temperature(temperature)
    z1 = as_matrix(z1, "z1")
    z2 = as_matrix(z2, "z2")
    check_same_shape(z1, z2, "z1", "z2")
    return nt_xent_of_gram(pair_gram(z1, z2), temperature)


def pair_gram(z1, z2):
    """``G = z z^T`` of ``z = normalize(concat(z1, z2))``, (2b, 2b): the
    cosine similarities of all 2b views. Its diagonal blocks ``G[:b, :b]``
    and ``G[b:, b:]`` are the normalised Gram matrices of ``z1`` and ``z2``
    (``keras_adadim.metrics.normalized_gram``), which AdaDim's L_mut reuses.
    No checks (see :func:`nt_xent`); computed in float32."""
    z = ops.concatenate(
        [ops.cast(z1, "float32"), ops.cast(z2, "float32")], axis=0
    )
    z = l2_normalize_rows(z)
    return ops.matmul(z, ops.transpose(z))


def nt_xent_of_gram(gram, temperature=0.1, positives=None):
    """NT-Xent (:func:`nt_xent`) from the cosine-similarity matrix ``gram``
    of the 2b views (:func:`pair_gram`), for callers that share it::

        l_i = logsumexp_{j != i}(G_ij / tau) - G_{i,p(i)} / tau,   L = mean_i l_i

    The positives are read from one block, ``diag(G[:b, b:])``, for both
    views' anchors (G is symmetric), or given as ``positives`` (b,) by a
    caller that holds them. Each ``l_i`` is formed before the mean: both
    parts are ~1/tau while the loss may be ~1e-2.
    """
    _check_temperature(temperature)
    n = ops.shape(gram)[0]  # 2b; may be dynamic inside a traced step
    b = n // 2
    idx = ops.arange(n)
    scale = 1.0 / temperature
    logits = ops.where(idx[:, None] == idx[None, :], -1e9, gram * scale)
    if positives is None:
        positives = ops.diagonal(gram[:b, b:])
    positives = positives * scale
    positives = ops.concatenate([positives, positives], axis=0)
    return ops.mean(ops.logsumexp(logits, axis=1) - positives)


def nt_xent_of_blocks(within, cross, temperature=0.1, positives=None):
    """NT-Xent (:func:`nt_xent`) from the blocks of the similarity matrix
    of the 2b views::

        G = [[W_1, C], [C^T, W_2]]     W_v = z^_v z^_v^T,  C = z^_1 z^_2^T
        view-1 anchor i:  l_i = lse_j([W_1[i, j] (j != i) | C[i, j]] / tau)
                                - C_ii / tau
        view-2 anchor i:  the same with W_2 and the column C[:, i]
        L = mean of the 2b l_i

    ``within`` is ``stack([W_1, W_2])`` (2, b, b), ``cross`` is C (b, b)
    and ``positives`` its diagonal when the caller holds it. Equal to
    :func:`nt_xent_of_gram` of G to float32 round-off. For callers that
    build the blocks anyway (AdaDim's step): the anchors' rows are
    concatenated as (2, b, 2b), one logsumexp, and only the (2, b, b)
    within-view blocks are masked. (Three logsumexps, one per block, and a
    logaddexp instead, measured: slower on TensorFlow and PyTorch, more
    ops for the same passes.)
    """
    _check_temperature(temperature)
    scale = 1.0 / temperature
    b = cross.shape[0]
    if b is None:  # dynamic inside a traced step
        idx = ops.arange(ops.shape(cross)[0])
        others = ops.where(idx[:, None] == idx[None, :], -1e9, within * scale)
    else:
        # -1e9 on the diagonal: exp() of it is 0, as is its gradient; eye
        # and a subtraction are one Keras dispatch where arange, compare and
        # where are three (they dominate on eager PyTorch).
        others = within * scale - ops.eye(b, dtype=within.dtype) * 1e9
    scaled = cross * scale
    # Row i of view 1: [W_1[i] | C[i]]; of view 2: [W_2[i] | C[:, i]].
    rows = ops.concatenate(
        [others, hot.hot_stack([scaled, ops.transpose(scaled)])], axis=-1)
    if positives is None:
        positives = ops.diagonal(cross)
    terms = hot.hot_logsumexp(rows, axis=-1) - positives * scale  # (2, b)
    if b is None:
        return ops.mean(terms)
    return hot.hot_sum(terms) * (1.0 / (2 * b))


def _check_temperature(temperature):
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")


@keras.saving.register_keras_serializable(package="keras_adadim")
class NTXent(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`nt_xent`.

    Call it as ``NTXent()(z1, z2)``: the two arguments are the embeddings of
    the two views (``y_true`` and ``y_pred`` in Keras' signature).
    """

    def __init__(self, temperature=0.1, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return nt_xent(y_true, y_pred, temperature=self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


__all__ = ["nt_xent", "nt_xent_of_gram", "nt_xent_of_blocks", "pair_gram",
           "NTXent"]
