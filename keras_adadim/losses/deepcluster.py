"""DeepCluster v2's loss: cross-entropy against k-means cluster assignments."""

from keras import ops

from keras_adadim.losses.swav import as_crops


def deepclusterv2_loss(scores, assignments, temperature=0.1):
    """Each crop's prototype scores classify the sample into its k-means
    cluster, for each of H sets of prototypes (heads)::

        L = 1/H sum_h  1/(V |A_h|) sum_v sum_{n in A_h}
                -log softmax(s_hv[n] / T)_{a_h[n]}

    with ``s_hv`` the (b, K_h) scores of crop v against head h's
    prototypes (the centroids of h's last k-means, cosine similarities),
    ``a_h[n]`` sample n's cluster in head h, the same for all V crops, and
    ``A_h`` the samples with a cluster: ``a_h[n] = -1`` marks a sample
    without one (not yet clustered: the first epoch), which is ignored; a
    head with none contributes 0. DeepCluster v2 (Caron et al., 2020, SwAV
    paper Appendix A.3; facebookresearch/swav ``main_deepclusterv2.py``) as
    solo-learn's ``deepclusterv2_loss_func(outputs, assignments,
    temperature)`` (cross-entropy with ``ignore_index=-1``); T = 0.1, three
    heads of 3000 prototypes (the paper's Table 10).

    Args:
        scores: per head, a sequence of V crops' (b, K_h) scores (a single
            head may be given as the sequence of crops itself).
        assignments: per head, (b,) integer cluster indices in [0, K_h),
            or -1 (no cluster: ignored).
        temperature: T.

    Example:
    >>> e = np.eye(2, dtype="float32")
    >>> got = float(deepclusterv2_loss([[e, e]], [np.arange(2)], 1.0))
    >>> round(got, 6) == round(math.log(1 + math.exp(-1)), 6)
    True
    """
    if not float(temperature) > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    heads = list(scores)
    if heads and not isinstance(heads[0], (list, tuple)):
        heads = [heads]
    assignments = list(assignments) if isinstance(assignments, (list, tuple)) \
        else [assignments]
    if not heads or len(heads) != len(assignments):
        raise ValueError(
            f"Give one sequence of crop scores per head and one assignment "
            f"vector per head; got {len(heads)} heads of scores and "
            f"{len(assignments)} of assignments.")
    losses = []
    for h, (crops, labels) in enumerate(zip(heads, assignments)):
        crops = as_crops(crops, f"scores[{h}]")
        labels = ops.convert_to_tensor(labels)
        if len(labels.shape) != 1 or "int" not in str(labels.dtype):
            raise ValueError(
                f"`assignments[{h}]` must be a vector of integer cluster "
                f"indices; got shape {tuple(labels.shape)} and dtype "
                f"{labels.dtype}.")
        k = int(crops[0].shape[1])
        labels = ops.cast(labels, "int32")
        known = ops.cast(labels >= 0, "float32")
        target = ops.one_hot(ops.maximum(labels, 0), k, dtype="float32")
        target = target * known[:, None]
        count = ops.maximum(ops.sum(known), 1.0)
        per_crop = [-ops.sum(
            target * ops.log_softmax(s / float(temperature), axis=-1)) / count
            for s in crops]
        losses.append(sum(per_crop) / float(len(per_crop)))
    return sum(losses) / float(len(losses))


__all__ = ["deepclusterv2_loss"]
