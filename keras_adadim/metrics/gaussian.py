"""Closed-form mutual information of jointly Gaussian variables (paper
Section 3.1 and Appendix B.2)."""

from keras import ops

from keras_adadim._validation import as_matrix, check_same_rows


_EPS32 = 1.1920929e-07


def _logdet_or_inf(block, rcond):
    """log|block| from its eigenvalues; +inf marks a singular block (the
    smallest eigenvalue below ``rcond`` times the largest: a relative test,
    so float32 round-off cannot pass a singular matrix as invertible)."""
    lam = ops.eigh(block)[0]
    singular = (lam[-1] <= 0) | (lam[0] <= rcond * lam[-1])
    logdet = ops.sum(ops.log(ops.maximum(lam, 1e-38)))
    return logdet, singular


def gaussian_mutual_information_from_covariance(
    sigma, r_dim, ridge=0.0, rcond=None
):
    """Mutual information of a joint Gaussian from its block covariance::

        Sigma = [[Sigma_R, Sigma_RZ], [Sigma_ZR, Sigma_Z]]
        I(R; Z) = 1/2 [ln|Sigma_R| + ln|Sigma_Z| - ln|Sigma|]

    ``r_dim`` is the size of the R block (the first ``r_dim`` rows/columns).
    Returns +inf when a block is singular (Z a deterministic function of R);
    ``ridge``, added to the diagonal, gives a finite value in that case.
    ``rcond`` is the relative eigenvalue threshold of singularity (default
    ``10 * k * eps_float32`` for a k x k Sigma, 0 when ``ridge`` is set).
    """
    sigma = as_matrix(sigma, "sigma")
    k = sigma.shape[0]
    if sigma.shape[1] != k:
        raise ValueError(f"`sigma` must be square; got {tuple(sigma.shape)}.")
    if not 0 < r_dim < k:
        raise ValueError(f"`r_dim` must be in (0, {k}); got {r_dim}.")
    if rcond is None:
        # With a ridge the caller has regularised on purpose: only a
        # non-positive eigenvalue counts as singular then.
        rcond = 0.0 if ridge else 10 * k * _EPS32
    if ridge:
        sigma = sigma + ridge * ops.eye(k, dtype=sigma.dtype)
    ld_r, sing_r = _logdet_or_inf(sigma[:r_dim, :r_dim], rcond)
    ld_z, sing_z = _logdet_or_inf(sigma[r_dim:, r_dim:], rcond)
    ld, sing = _logdet_or_inf(sigma, rcond)
    mi = 0.5 * (ld_r + ld_z - ld)
    return ops.where(sing_r | sing_z | sing, float("inf"), mi)


def gaussian_mutual_information(r, z, ridge=0.0):
    """Closed-form I(R; Z) treating samples ``r`` (n, m) and ``z`` (n, k) as
    draws of a joint Gaussian; covariances are unbiased sample estimates.
    See ``gaussian_mutual_information_from_covariance`` for the formula."""
    r = as_matrix(r, "r", min_rows=2)
    z = as_matrix(z, "z", min_rows=2)
    check_same_rows(r, z, "r", "z")
    joint = ops.concatenate([r, z], axis=1)
    n = joint.shape[0]
    centred = joint - ops.mean(joint, axis=0, keepdims=True)
    sigma = ops.matmul(ops.transpose(centred), centred) / (n - 1)
    return gaussian_mutual_information_from_covariance(
        sigma, r.shape[1], ridge=ridge
    )
