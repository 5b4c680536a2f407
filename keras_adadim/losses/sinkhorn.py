"""Sinkhorn-Knopp: SwAV's equipartitioned soft cluster assignments."""

from keras import ops

from keras_adadim._validation import as_matrix


def sinkhorn_knopp(scores, epsilon=0.05, iterations=3):
    """Soft assignments of ``b`` samples to ``K`` prototypes, each prototype
    given an equal share of the batch (an entropy-regularised optimal
    transport, solved by Sinkhorn-Knopp's alternating normalisations)::

        Q <- exp(S / epsilon)^T              (K, b),  S = scores (b, K)
        Q <- Q / sum(Q)
        repeat `iterations` times:
            Q <- Q / (K * row sums of Q)     each prototype: mass 1/K
            Q <- Q / (b * column sums of Q)  each sample:    mass 1/b
        return (b Q)^T                       (b, K)

    Rows of the result sum to 1 exactly (a distribution over prototypes per
    sample); its columns sum to b / K in the limit of many iterations
    (equipartition), approximately after the few iterations SwAV uses.
    SwAV (Caron et al., 2020, Sec. 3.1 and Appendix A.1,
    ``distributed_sinkhorn`` of facebookresearch/swav; solo-learn's
    ``SinkhornKnopp``): epsilon 0.05, 3 iterations. Every sum is over the
    whole ``scores`` matrix: pass the global batch (SwAV all-reduces these
    sums over GPUs; ``AdaDimModel`` gathers the rows first). The scores'
    maximum is subtracted before the exponential, which the first
    normalisation cancels exactly, so a small epsilon cannot overflow
    float32. No gradient flows through the result.

    Args:
        scores: (b, K) similarities of samples to prototypes (SwAV: cosine).
        epsilon: entropy regularisation (0.05).
        iterations: Sinkhorn-Knopp iterations (3).

    Example:
    >>> q = sinkhorn_knopp(np.zeros((4, 2), "float32"))
    >>> np.allclose(ops.convert_to_numpy(q), 0.5)
    True
    """
    if not float(epsilon) > 0:
        raise ValueError(f"`epsilon` must be > 0; got {epsilon}.")
    if int(iterations) < 1:
        raise ValueError(f"`iterations` must be >= 1; got {iterations}.")
    scores = ops.stop_gradient(ops.cast(as_matrix(scores, "scores"), "float32"))
    b = ops.cast(ops.shape(scores)[0], "float32")
    k = float(scores.shape[1])
    q = ops.transpose(ops.exp((scores - ops.max(scores)) / float(epsilon)))
    q = q / ops.sum(q)
    for _ in range(int(iterations)):
        q = q / (k * ops.sum(q, axis=1, keepdims=True))
        q = q / (b * ops.sum(q, axis=0, keepdims=True))
    return ops.stop_gradient(ops.transpose(q * b))


__all__ = ["sinkhorn_knopp"]
