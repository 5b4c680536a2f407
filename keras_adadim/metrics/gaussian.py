"""Closed-form mutual information of jointly Gaussian variables (paper
Section 3.1 and Appendix B.2)."""

from keras import ops

from keras_adadim._validation import as_matrix, check_same_rows


def gaussian_mutual_information_from_covariance(sigma, r_dim, ridge=0.0):
    """Mutual information of a joint Gaussian from its block covariance::

        Sigma = [[Sigma_R, Sigma_RZ], [Sigma_ZR, Sigma_Z]]
        I(R; Z) = 1/2 [ln|Sigma_R| + ln|Sigma_Z| - ln|Sigma|]

    ``r_dim`` is the size of the R block (the first ``r_dim`` rows/columns).
    ``ridge`` is added to the diagonal; use it when Z is (close to) a
    deterministic function of R, where |Sigma| = 0 and I(R; Z) is infinite.
    """
    sigma = as_matrix(sigma, "sigma")
    k = sigma.shape[0]
    if sigma.shape[1] != k:
        raise ValueError(f"`sigma` must be square; got {tuple(sigma.shape)}.")
    if not 0 < r_dim < k:
        raise ValueError(f"`r_dim` must be in (0, {k}); got {r_dim}.")
    if ridge:
        sigma = sigma + ridge * ops.eye(k, dtype=sigma.dtype)
    sign_r, ld_r = ops.slogdet(sigma[:r_dim, :r_dim])
    sign_z, ld_z = ops.slogdet(sigma[r_dim:, r_dim:])
    sign, ld = ops.slogdet(sigma)
    mi = 0.5 * (ld_r + ld_z - ld)
    positive = (sign_r > 0) & (sign_z > 0) & (sign > 0)
    # A singular joint covariance means Z is a deterministic function of R.
    return ops.where(positive, mi, float("inf"))


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
