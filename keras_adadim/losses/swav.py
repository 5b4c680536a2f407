"""SwAV's swapped prediction."""

from keras import ops

from keras_adadim._validation import as_matrix


def as_crops(x, name):
    """A sequence of (b, K) matrices, one per crop, from a sequence or a
    single matrix; all the same shape."""
    crops = list(x) if isinstance(x, (list, tuple)) else [x]
    if not crops:
        raise ValueError(f"`{name}` must hold at least one crop.")
    crops = [as_matrix(c, f"{name}[{i}]") for i, c in enumerate(crops)]
    shape = tuple(crops[0].shape)
    for i, c in enumerate(crops[1:], start=1):
        if tuple(c.shape)[1:] != shape[1:]:
            raise ValueError(
                f"The crops of `{name}` must have the same number of columns; "
                f"got {shape} ({name}[0]) and {tuple(c.shape)} ({name}[{i}]).")
    return crops


def soft_cross_entropy(targets, logits):
    """Mean over rows of -sum_k targets_k log softmax(logits)_k."""
    return -ops.mean(ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1))


def swav_loss(scores, assignments, temperature=0.1):
    """Swapped prediction: each crop's prototype scores predict the
    (Sinkhorn-Knopp) codes of every OTHER crop that has codes::

        L = 1/N sum_{i < A} sum_{v != i}  -1/b sum_n sum_k
                q_i[n, k] log softmax(s_v[n] / temperature)_k

    with ``s_v`` the scores of crop v (V crops), ``q_i`` the codes of crop
    i (the first A crops: SwAV computes codes for the two large crops only)
    and N = A (V - 1) the number of (i, v) pairs. SwAV (Caron et al., 2020,
    Eq. 1-2, "multi-crop" in Sec. 3.2) as solo-learn's
    ``swav_loss_func(preds, assignments, temperature)``; temperature 0.1.
    Codes come from :func:`keras_adadim.losses.sinkhorn_knopp` of the
    stop-gradient scores; scores are cosine similarities of the
    L2-normalised embedding and prototypes.

    Args:
        scores: V crops' scores, a sequence of (b, K) matrices (or one).
        assignments: the codes of the first A <= V crops, (b, K) each.
        temperature: softmax temperature (0.1).

    Example:
    >>> s = [np.eye(2, dtype="float32"), np.eye(2, dtype="float32")]
    >>> got = float(swav_loss(s, s, 1.0))
    >>> round(got, 6) == round(math.log(1 + math.exp(-1)), 6)
    True
    """
    if not float(temperature) > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    scores = as_crops(scores, "scores")
    assignments = as_crops(assignments, "assignments")
    if len(scores) < 2 or len(assignments) > len(scores):
        raise ValueError(
            f"Swapped prediction needs at least 2 crops of scores and codes "
            f"for at most as many crops; got {len(scores)} crops of scores "
            f"and {len(assignments)} of codes.")
    losses = []
    for i, q in enumerate(assignments):
        q = ops.stop_gradient(ops.cast(q, "float32"))
        for v, s in enumerate(scores):
            if v != i:
                losses.append(soft_cross_entropy(
                    q, ops.cast(s, "float32") / float(temperature)))
    return sum(losses) / float(len(losses))


__all__ = ["swav_loss"]
