"""Spectral diagnostics: effective rank, RankMe, eigenvalue counts and the
cumulative explained-variance ratio (SPEC: Diagnostics; paper Section 3.2,
Appendix A.6 and A.9)."""

import math

from keras import ops

from keras_adadim._validation import as_matrix


def singular_values(x):
    """Singular values of ``x`` (n, k), computed in float32."""
    x = as_matrix(x, "x")
    return ops.svd(x, full_matrices=False, compute_uv=False)


def _entropy_of_distribution(p):
    """-sum p log p with 0 log 0 = 0 (safe for gradients and zeros)."""
    safe = ops.where(p > 0, p, ops.ones_like(p))
    return -ops.sum(ops.where(p > 0, p * ops.log(safe), ops.zeros_like(p)))


def effective_rank(x):
    """Effective rank of Roy & Vetterli (2007).

    ``sigma`` are the singular values of the raw (uncentred) matrix ``x``::

        p_k = sigma_k / sum_j sigma_j
        ER(x) = exp(-sum_k p_k log p_k),   with 0 log 0 = 0

    ``ER(I_n) = n`` and ``ER`` of a rank-1 matrix is 1. The all-zero matrix
    has no spectrum; its effective rank is defined as 0 (no dimensions).

    Args:
        x: matrix of shape (n, k); any float dtype (computed in float32).

    Returns:
        Scalar float32 tensor.

    Example:
    >>> float(effective_rank(np.eye(4, dtype="float32")))
    4.0
    """
    s = singular_values(x)
    total = ops.sum(s)
    p = s / ops.where(total > 0, total, 1.0)
    er = ops.exp(_entropy_of_distribution(p))
    return ops.where(total > 0, er, 0.0)


RANK_DEFINITIONS = ("singular", "squared", "centered", "normalized")


def effective_rank_of(x, definition="singular", epsilon=1e-12):
    """Effective rank of ``x`` (n, k) under one of ``RANK_DEFINITIONS``
    (the choices for AdaDim's alpha, ``AdaDim(rank_definition=...)``)::

        "singular"   (default, SPEC; Roy & Vetterli 2007 on the raw matrix)
            s = svd(x);                      p = s / sum(s)
        "squared"    (eigenvalues of the Gram x x^T = covariance-style spectra
                      of the matrix-entropy works)
            s = svd(x) ** 2;                 p = s / sum(s)
        "centered"   (columns centred over the rows: spectrum of the covariance)
            s = svd(x - mean_rows(x));       p = s / sum(s)
        "normalized" (rows L2-normalised, as the NT-Xent / L_mut inputs)
            s = svd(x_i / max(|x_i|, eps));  p = s / sum(s)

        ER = exp(-sum_k p_k log p_k),   with 0 log 0 = 0

    Every definition gives 1 for a rank-1 matrix (with non-constant rows
    for "centered") and n for n orthonormal rows (n - 1 for "centered":
    removing the mean leaves n - 1 unit singular values). A matrix with an
    all-zero spectrum gives 0. ``"singular"`` equals ``effective_rank``.

    Args:
        x: matrix (n, k); any float dtype (computed in float32).
        definition: one of ``RANK_DEFINITIONS``.
        epsilon: floor of the row norms for ``"normalized"``.

    Returns:
        Scalar float32 tensor.
    """
    definition = check_rank_definition(definition)
    x = ops.cast(as_matrix(x, "x"), "float32")
    if definition == "centered":
        x = x - ops.mean(x, axis=0, keepdims=True)
    elif definition == "normalized":
        norms = ops.sqrt(ops.sum(ops.square(x), axis=1, keepdims=True))
        x = x / ops.maximum(norms, epsilon)
    s = ops.svd(x, full_matrices=False, compute_uv=False)
    if definition == "squared":
        s = ops.square(s)
    total = ops.sum(s)
    p = s / ops.where(total > 0, total, 1.0)
    er = ops.exp(_entropy_of_distribution(p))
    return ops.where(total > 0, er, 0.0)


def check_rank_definition(definition):
    """``definition`` if it is one of ``RANK_DEFINITIONS``, else a
    ``ValueError`` naming them."""
    if definition not in RANK_DEFINITIONS:
        raise ValueError(
            f"`rank_definition` must be one of {RANK_DEFINITIONS}; got "
            f"{definition!r}."
        )
    return definition


def rankme(x, epsilon=1e-7):
    """RankMe (Garrido et al. 2023): effective rank with smoothed weights::

        p_k = sigma_k / sum_j sigma_j + epsilon
        RankMe(x) = exp(-sum_k p_k log p_k)

    Finite for every input, including the all-zero matrix.
    """
    s = singular_values(x)
    total = ops.sum(s)
    p = s / ops.where(total > 0, total, 1.0) + epsilon
    return ops.exp(-ops.sum(p * ops.log(p)))


def covariance(x):
    """Unbiased covariance ``(x - mean)^T (x - mean) / (n - 1)`` in float32."""
    x = as_matrix(x, "x", min_rows=2)
    n = x.shape[0] if x.shape[0] is not None else ops.shape(x)[0]
    xc = x - ops.mean(x, axis=0, keepdims=True)
    return ops.matmul(ops.transpose(xc), xc) / ops.cast(n - 1, x.dtype)


def normalized_eigenvalues(x):
    """Eigenvalues of the covariance of ``x``, descending, divided by their
    sum (L1). All zeros when ``x`` has no variance."""
    eig = ops.eigh(covariance(x))[0]
    eig = ops.flip(ops.maximum(eig, 0.0), axis=0)  # clip round-off negatives
    total = ops.sum(eig)
    return eig / ops.where(total > 0, total, 1.0)


def eigenvalue_count(x, tau=0.01):
    """Number of covariance eigenvalues above ``tau`` after L1 normalisation::

        lambda = eig(Cov(x)) / sum(eig(Cov(x)))
        count  = #{k : lambda_k > tau}

    Paper Figure 3b uses tau = 0.01. Returns a float32 scalar (0 for a
    matrix with no variance).
    """
    lam = normalized_eigenvalues(x)
    return ops.sum(ops.cast(lam > tau, "float32"))


def explained_variance_ratio(x, top=0.3):
    """Share of the variance held by the largest ``top`` fraction of the
    covariance eigenvalues (paper Appendix A.9)::

        k = max(1, floor(top * N))
        ratio = sum_{i <= k} lambda_i / sum_{i <= N} lambda_i   (descending)

    Returns 0 when ``x`` has no variance.
    """
    if not 0 < top <= 1:
        raise ValueError(f"`top` must be in (0, 1]; got {top}.")
    lam = normalized_eigenvalues(x)
    n = lam.shape[0]
    k = max(1, int(math.floor(top * n + 1e-9)))
    return ops.sum(lam[:k])
