"""Uniformity and alignment on the unit hypersphere (Wang & Isola 2020)."""

from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape
from keras_adadim.metrics.entropy import l2_normalize_rows


def uniformity(x, t=2.0):
    """Log of the mean Gaussian potential over distinct pairs::

        x_i <- x_i / ||x_i||
        U(x) = log( 2 / (n (n - 1)) * sum_{i<j} exp(-t ||x_i - x_j||^2) )

    Lower is more uniform; orthonormal rows give ``-2 t``. Needs n >= 2.
    """
    x = l2_normalize_rows(as_matrix(x, "x", min_rows=2))
    n = ops.shape(x)[0]
    sq = ops.sum(ops.square(x), axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * ops.matmul(x, ops.transpose(x))
    d2 = ops.maximum(d2, 0.0)
    idx = ops.arange(n)
    upper = idx[:, None] < idx[None, :]
    logits = ops.where(upper, -t * d2, -1e30)
    n = ops.cast(n, "float32")
    return ops.logsumexp(logits) - ops.log(n * (n - 1.0) / 2.0)


def alignment(x, y, alpha=2.0):
    """Mean distance between positive pairs on the hypersphere::

        A(x, y) = mean_i ||x_i / ||x_i|| - y_i / ||y_i|| ||^alpha

    ``alpha = 2`` by default. Lower is better aligned.
    """
    x = as_matrix(x, "x")
    y = as_matrix(y, "y")
    check_same_shape(x, y, "x", "y")
    diff = l2_normalize_rows(x) - l2_normalize_rows(y)
    sq = ops.sum(ops.square(diff), axis=1)
    if alpha == 2:
        return ops.mean(sq)
    return ops.mean(ops.power(ops.maximum(sq, 0.0), alpha / 2.0))
