"""NNCLR: nearest neighbours from a support set as positives."""

from keras import ops

from keras_adadim._validation import as_matrix
from keras_adadim.losses.info_nce import info_nce
from keras_adadim.metrics.entropy import l2_normalize_rows


def nearest_neighbours(z, support):
    """For each row of ``z`` the row of ``support`` with the highest cosine
    similarity (returned L2-normalised, stop-gradient)::

        NN(z_i) = s_j / ||s_j||,  j = argmax_j <z_i/||z_i||, s_j/||s_j||>

    Args:
        z: embeddings (b, F).
        support: the support set Q (q, F), e.g. a queue of past embeddings.
    """
    z = as_matrix(z, "z")
    support = l2_normalize_rows(as_matrix(support, "support"))
    sims = ops.matmul(l2_normalize_rows(z), ops.transpose(support))
    idx = ops.argmax(sims, axis=1)
    return ops.stop_gradient(ops.take(support, idx, axis=0))


def nnclr(z1, z2, p1, p2, support, temperature=0.2):
    """The symmetrised NNCLR loss (Dwibedi et al., 2021, Eq. 2; solo-learn's
    ``nnclr.py``)::

        L = 1/2 [ InfoNCE(NN(z1), p2) + InfoNCE(NN(z2), p1) ]

    ``NN`` is :func:`nearest_neighbours` in the support set, and
    ``InfoNCE(q, k)`` is :func:`info_nce` (row i's positive is ``k_i``, the
    other rows of ``k`` its negatives).

    Args:
        z1, z2: projector outputs of the two views (b, F).
        p1, p2: predictor outputs of the two views (b, F).
        support: the support set (q, F).
        temperature: tau (0.2, solo-learn's CIFAR configuration).
    """
    nn1 = nearest_neighbours(z1, support)
    nn2 = nearest_neighbours(z2, support)
    return 0.5 * (info_nce(nn1, p2, temperature) + info_nce(nn2, p1, temperature))


__all__ = ["nearest_neighbours", "nnclr"]
