"""Matrix-based Renyi entropy and mutual information (SPEC: Renyi matrix
entropy; paper Appendix A.6, Giraldo et al. 2014)."""

from keras import ops

from keras_adadim import _backend as hot
from keras_adadim._validation import as_matrix, check_same_rows

_TINY = 1e-24


def l2_normalize_rows(x):
    """Rows (along the last axis) divided by their L2 norm; all-zero rows
    stay zero."""
    return x * inverse_row_norms(x)


def inverse_row_norms(x):
    """``1 / ||x_i||`` of the rows (along the last axis, kept as size 1),
    the factor of :func:`l2_normalize_rows`; large but finite for all-zero
    rows."""
    return inverse_row_norms_of_squares(
        hot.hot_sum(x * x, axis=-1, keepdims=True))


def inverse_row_norms_of_squares(sq):
    """``1 / sqrt(sq)`` of squared row norms ``sq``, large but finite at 0
    (the factor of :func:`inverse_row_norms`)."""
    # A maximum, not sq + 1e-24: under jax.jit the latter's derivative at
    # an all-zero row came out NaN (tests/metrics, "all-zero both").
    return ops.rsqrt(ops.maximum(sq, _TINY))


def normalized_gram(x):
    """Gram matrix ``K = X^ X^T`` of the L2-normalised rows of ``x``.

    K has a unit diagonal (zero for all-zero rows) and trace n.
    """
    x = as_matrix(x, "x")
    xn = l2_normalize_rows(x)
    return ops.matmul(xn, ops.transpose(xn))


def gram_entropy(k, order=2):
    """Renyi entropy of order ``a`` of a PSD Gram matrix ``k``, normalised
    by its trace (SPEC: Renyi matrix entropy)::

        H_a(K) = 1 / (1 - a) * log tr((K / tr K)^a)
        H_2(K) = -log(||K||_F^2 / (tr K)^2)      (a = 2: no eigen-decomposition)

    The all-zero matrix has entropy 0. ``k`` may be a stack of matrices
    (..., n, n), giving one entropy each (a step computes both views' in one
    op chain). It is used as given (no checks): :func:`renyi_entropy` and
    :func:`matrix_mutual_information` check their inputs, and a training
    step passes Gram matrices it built itself.
    """
    trace = ops.trace(k, axis1=-2, axis2=-1)
    if order == 2:
        return _order2_entropy(ops.sum(k * k, axis=(-2, -1)), trace)
    has_mass = trace > 0
    safe_trace = ops.where(has_mass, trace, 1.0)
    lam = ops.eigh(k / safe_trace[..., None, None])[0]
    lam = ops.maximum(lam, 0.0)
    if order == 1:
        safe = ops.where(lam > 0, lam, 1.0)
        h = -ops.sum(ops.where(lam > 0, lam * ops.log(safe), 0.0), axis=-1)
    else:
        power_sum = ops.sum(ops.power(lam, order), axis=-1)
        h = ops.log(ops.where(has_mass, power_sum, 1.0)) / (1.0 - order)
    return ops.where(has_mass, h, 0.0)


def _order2_entropy(frobenius_sq, trace):
    """``H_2 = -log(||K||_F^2 / (tr K)^2)`` from the two sums (tr(K^2) =
    ||K||_F^2 for symmetric K: dividing the scalars instead of every entry
    of K saves a pass over K and its gradient); 0 where ``tr K = 0`` (then
    K = 0 for a PSD K, and both logs below are log 1)."""
    has_mass = trace > 0
    return (2.0 * ops.log(ops.where(has_mass, trace, 1.0))
            - ops.log(ops.where(has_mass, frobenius_sq, 1.0)))


def gram_mutual_information(kx, ky, order=2, unit_diagonal=False):
    """``I = H_a(K_X) + H_a(K_Y) - H_a(K_X o K_Y)`` of two Gram matrices of
    the same samples (:func:`gram_entropy`; ``o`` the Hadamard product),
    or of two stacks of them (one I per pair). For callers that already
    hold the normalised Gram matrices, e.g. AdaDim's step, whose NT-Xent
    similarity matrix contains K_z1 and K_z2. The three entropies are
    taken in one call on the stack ``[K_X, K_Y, K_X o K_Y]``.

    ``unit_diagonal=True`` says both are normalised Gram matrices of rows
    (diagonal 1, or 0 for an all-zero row, whatever the rows' values): at
    order 2, I is then a sum of logarithms of norms and traces
    (:func:`_unit_diagonal_mutual_information`), with no stack and no
    gradient through the traces.
    """
    if order == 2 and unit_diagonal:
        return _unit_diagonal_mutual_information(kx, ky)
    h = gram_entropy(ops.stack([kx, ky, kx * ky]), order)
    return h[0] + h[1] - h[2]


# Added to every factor below: no float32 change for factors >= 1, and
# 0 / 0 -> 1 for an all-zero matrix.
_EPS = 1e-12


def _unit_diagonal_mutual_information(kx, ky):
    """Order-2 ``I`` of Gram matrices whose diagonals are 1 or 0 (those of
    L2-normalised rows), K_h = K_X o K_Y::

        H_2(K) = log(tr(K)^2 / ||K||_F^2)
        I = log[(tr(K_X)^2 tr(K_Y)^2 ||K_h||_F^2)
                / (tr(K_h)^2 ||K_X||_F^2 ||K_Y||_F^2)]

    A trace counts the non-zero rows, so it is 0 or at least 1, and
    ``||K||_F^2 >= tr K`` (the diagonal alone): adding 1e-12 to every factor
    changes none that is non-zero, and makes an all-zero K's factors cancel
    (H = 0, as :func:`gram_entropy` defines it). The traces do not depend
    on the rows' values, so no gradient flows through them. Four logs of
    (...,) scalars in place of three entropies: what is left of L_mut's
    cost is the three Frobenius sums.
    """
    kh = kx * ky

    def factors(k):
        t = hot.hot_trace(ops.stop_gradient(k))
        return t * t + _EPS, hot.hot_sum(k * k, axis=(-2, -1)) + _EPS

    (tx, px), (ty, py), (th, ph) = factors(kx), factors(ky), factors(kh)
    # A log per norm, not one log of their quotient: the backward pass of
    # a / b squares b, and XLA rewrites (a / b) / c as a / (b c), whose
    # square falls below float32's range when both matrices are all-zero
    # (NaN gradients under jax.jit). The traces' part is a constant.
    return ops.log((tx / th) * ty) + ops.log(ph) - ops.log(px) - ops.log(py)


def _check_order(order):
    if not order > 0:
        raise ValueError(f"The Renyi order must be positive; got {order}.")


def renyi_entropy(x, order=2):
    """Matrix-based Renyi entropy of order ``a`` of the samples in ``x``::

        K = X^ X^T      (rows of X^ L2-normalised, so tr K = n)
        H_a(K) = 1 / (1 - a) * log tr((K / n)^a)
        H_2(K) = -log(||K||_F^2 / n^2)          (a = 2, the default)

    Order 1 is the von Neumann (Shannon) limit ``-sum lambda log lambda``.
    ``H_2(I_n) = log n`` and ``H_2`` of an all-ones K is 0. K is normalised
    by its trace, which equals n unless ``x`` has all-zero rows; the all-zero
    matrix has entropy 0. Computed in float32, differentiable.

    Example:
    >>> float(renyi_entropy(np.eye(4, dtype="float32")))  # log 4
    1.3862943649291992
    """
    _check_order(order)
    return gram_entropy(normalized_gram(x), order)


def matrix_mutual_information(x, y, order=2):
    """Matrix-based mutual information between two sets of paired samples::

        I(X; Y) = H_a(K_X) + H_a(K_Y) - H_a(K_X o K_Y)

    where ``o`` is the Hadamard product and ``K`` the normalised Gram matrices
    of ``renyi_entropy``. ``x`` (n, d) and ``y`` (n, k) must have one row per
    sample; their widths may differ. ``I(X; X) = H(X)`` when ``K_X = I``.
    """
    _check_order(order)
    x = as_matrix(x, "x")
    y = as_matrix(y, "y")
    check_same_rows(x, y, "x", "y")
    return gram_mutual_information(
        normalized_gram(x), normalized_gram(y), order, unit_diagonal=True)
