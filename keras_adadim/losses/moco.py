"""InfoNCE with a queue of negatives: MoCo v2+'s loss."""

from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape
from keras_adadim.metrics.entropy import l2_normalize_rows


def moco_info_nce(q, k, queue, temperature=0.2):
    """Cross-entropy of each query against its own key (the positive) and
    the rows of a queue of past keys (the negatives)::

        l+_i  = <q_i/||q_i||, k_i/||k_i||> / temperature
        l-_ij = <q_i/||q_i||, n_j/||n_j||> / temperature,  n_j row j of queue
        L = 1/b sum_i [ -l+_i + log( exp(l+_i) + sum_j exp(l-_ij) ) ]

    MoCo's contrastive loss (He et al., 2020, Eq. 1 and Algorithm 1;
    MoCo v2, Chen, Fan, Girshick & He, 2020, "Improved baselines with
    momentum contrastive learning"): the logits ``[l+_i, l-_i1, ..,
    l-_iK]`` with target class 0, as solo-learn's
    ``mocov2plus_loss_func(query, key, queue, temperature)``. Unlike
    :func:`info_nce` the other keys of the batch are not negatives: only
    the queue's rows are. Rows are L2-normalised here (the queue of
    :class:`~keras_adadim.methods.MoCoV2Plus` already holds unit rows).
    Unit ``q = k`` orthogonal to all K queue rows give
    ``log(1 + K exp(-1 / tau))``.

    Args:
        q: queries (b, F), the online network's embeddings.
        k: keys (b, F), row i the positive of query i (the momentum
            encoder's embeddings of the other view; no gradient flows
            through them in MoCo, the method stops it).
        queue: the negatives (K, F).
        temperature: softmax temperature tau > 0 (0.2: MoCo v2,
            solo-learn's CIFAR ``mocov2plus.yaml``).

    Example:
    >>> e = np.eye(4, dtype="float32")
    >>> got = float(moco_info_nce(e[:2], e[:2], e[2:], 1.0))
    >>> round(got, 6) == round(math.log(1 + 2 / math.e), 6)
    True
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    q = l2_normalize_rows(as_matrix(q, "q"))
    k = l2_normalize_rows(as_matrix(k, "k"))
    queue = l2_normalize_rows(as_matrix(queue, "queue"))
    check_same_shape(q, k, "q", "k")
    if q.shape[1] is not None and queue.shape[1] is not None \
            and q.shape[1] != queue.shape[1]:
        raise ValueError(
            f"`queue` rows must have the queries' {q.shape[1]} features; got "
            f"shape {tuple(queue.shape)}.")
    positives = ops.sum(q * k, axis=1, keepdims=True) / temperature
    negatives = ops.matmul(q, ops.transpose(queue)) / temperature
    logits = ops.concatenate([positives, negatives], axis=1)
    return ops.mean(ops.logsumexp(logits, axis=1) - positives[:, 0])


__all__ = ["moco_info_nce"]
