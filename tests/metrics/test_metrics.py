"""Tests of keras_adadim.metrics against SPEC.md, analytic identities and an
independent NumPy float64 reference (tests/reference_numpy.py). Run once
per Keras backend."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import reference_numpy as ref
from conftest import SPEC_Z1, SPEC_Z2
from keras_adadim import metrics as M

SPEC_X = np.concatenate([SPEC_Z1, SPEC_Z2], axis=0)
# Canonical shapes, reused throughout (JAX compiles every op once per
# shape): (b, F) of z and the width d of r paired with it (d != F).
SHAPES = [(2, 3, 8), (5, 8, 3), (16, 32, 8)]
B, F, D = 5, 8, 3


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _f(v):
    return float(keras.ops.convert_to_numpy(v))


def _random(b, f, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(b, f)) + offset).astype("float32")


def _with_spectrum(n, spectrum, seed, offset=3.0):
    """n samples whose unbiased covariance has exactly the eigenvalues
    ``spectrum`` (in a random basis), plus a constant offset."""
    rng = np.random.default_rng(seed)
    f = len(spectrum)
    a = rng.normal(size=(n, f))
    a -= a.mean(axis=0)
    q = np.linalg.qr(a)[0]  # orthonormal, zero-mean columns
    v = np.linalg.qr(rng.normal(size=(f, f)))[0]
    x = (q * np.sqrt(np.asarray(spectrum) * (n - 1))) @ v + offset
    return x.astype("float32")


# ---------------------------------------------------------------------------
# 1. SPEC test vectors
# ---------------------------------------------------------------------------


def test_effective_rank_and_alpha_spec_vector():
    """ER(concat(z1, z2)) and alpha = ER / min(2b, F) match the SPEC."""
    er = _f(M.effective_rank(SPEC_X))
    assert er == pytest.approx(2.7683896623, abs=1e-5)
    assert er / min(8, 3) == pytest.approx(0.9227965541, abs=1e-5)


def test_renyi_entropy_spec_vector():
    """H_2 of the normalised Gram of concat(z1, z2) matches the SPEC."""
    assert _f(M.renyi_entropy(SPEC_X)) == pytest.approx(0.5852897847,
                                                        abs=1e-5)
    assert _f(M.renyi_entropy(SPEC_X, order=2)) == pytest.approx(
        0.5852897847, abs=1e-5)


def test_mutual_information_spec_vector():
    """I(X; Y) with Y = X[:, ::-1] + 0.5 matches the SPEC."""
    y = SPEC_X[:, ::-1] + 0.5
    assert _f(M.matrix_mutual_information(SPEC_X, y)) == pytest.approx(
        0.1362504931, abs=1e-5)


def test_uniformity_and_alignment_spec_vectors():
    """Uniformity (t = 2) of concat(z1, z2) and alignment of its halves."""
    assert _f(M.uniformity(SPEC_X)) == pytest.approx(-1.0165407492, abs=1e-5)
    assert _f(M.uniformity(SPEC_X, t=2.0)) == pytest.approx(-1.0165407492,
                                                            abs=1e-5)
    assert _f(M.alignment(SPEC_Z1, SPEC_Z2)) == pytest.approx(0.2075829027,
                                                              abs=1e-5)


def test_reference_reproduces_spec_vectors():
    """The NumPy reference reproduces every SPEC metric vector."""
    assert ref.effective_rank(SPEC_X) == pytest.approx(2.7683896623, abs=1e-9)
    assert ref.renyi_entropy(SPEC_X) == pytest.approx(0.5852897847, abs=1e-9)
    assert ref.renyi2_frobenius(SPEC_X) == pytest.approx(0.5852897847,
                                                         abs=1e-9)
    assert ref.matrix_mutual_information(
        SPEC_X, SPEC_X[:, ::-1] + 0.5) == pytest.approx(0.1362504931,
                                                        abs=1e-9)
    assert ref.uniformity(SPEC_X) == pytest.approx(-1.0165407492, abs=1e-9)
    assert ref.alignment(SPEC_Z1, SPEC_Z2) == pytest.approx(0.2075829027,
                                                            abs=1e-9)


# ---------------------------------------------------------------------------
# 2. Random inputs against the float64 reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("b, f, d", SHAPES)
def test_spectrum_metrics_match_reference(b, f, d):
    """effective_rank and rankme equal the SciPy-SVD reference, on a wide
    and a tall matrix, centred or not."""
    for x in (_random(b, f, b + f, offset=0.7), _random(b, d, b + d)):
        assert _f(M.effective_rank(x)) == pytest.approx(
            ref.effective_rank(x), rel=1e-4)
        assert _f(M.rankme(x)) == pytest.approx(ref.rankme(x), rel=1e-4)
        s = np.sort(_np(M.singular_values(x)))[::-1]
        np.testing.assert_allclose(
            s, np.linalg.svd(x.astype("f8"), compute_uv=False),
            rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("b, f, d", SHAPES)
def test_entropy_metrics_match_reference(b, f, d):
    """renyi_entropy (orders 2, 1, 3, 0.5), normalized_gram and
    matrix_mutual_information (z and r of different widths) equal the
    eigenvalue-based reference."""
    z = _random(b, f, 3 * b + f)
    r = (_random(b, d, 5 * b + d) + 0.5 * z[:, :1]).astype("float32")
    np.testing.assert_allclose(_np(M.normalized_gram(z)),
                               ref.normalized_gram(z), rtol=1e-5, atol=1e-6)
    for order in (2, 1, 3, 0.5):
        assert _f(M.renyi_entropy(z, order=order)) == pytest.approx(
            ref.renyi_entropy(z, order), rel=1e-4, abs=1e-6), order
    # Order < 1 is left out here: K_r is rank-deficient (d < b) and lam^a
    # with a < 1 amplifies float32 round-off of the zero eigenvalues.
    for order in (2, 1, 3):
        assert _f(M.matrix_mutual_information(z, r, order=order)) == (
            pytest.approx(ref.matrix_mutual_information(z, r, order),
                          rel=1e-4, abs=1e-5)), order
    assert _f(M.renyi_entropy(z)) == pytest.approx(ref.renyi2_frobenius(z),
                                                   rel=1e-4)


@pytest.mark.parametrize("b, f, d", SHAPES)
def test_uniformity_alignment_match_reference(b, f, d):
    """uniformity (explicit pair loop reference, t = 2 and 1) and alignment
    (alpha = 2 and 1) equal the reference."""
    x = _random(b, f, 7 * b + f)
    y = (x + 0.4 * _random(b, f, 9 * b + f)).astype("float32")
    for t in (2.0, 1.0):
        assert _f(M.uniformity(x, t=t)) == pytest.approx(
            ref.uniformity(x, t), rel=1e-4)
    for a in (2.0, 1.0):
        assert _f(M.alignment(x, y, alpha=a)) == pytest.approx(
            ref.alignment(x, y, a), rel=1e-4)


@pytest.mark.parametrize("b, f", [(2, 3), (5, 8), (16, 32), (16, 8)])
def test_covariance_spectrum_metrics_match_reference(b, f):
    """eigenvalue_count and explained_variance_ratio (several top values)
    equal the reference on random data, b < F and b > F."""
    x = _random(b, f, 11 * b + f, offset=2.0)
    x = x * np.linspace(0.2, 3.0, f).astype("float32")
    lam = ref.covariance_eigenvalues(x)
    for tau in (0.01, 0.05):
        # No eigenvalue sits on the threshold, so float32 cannot flip it.
        assert np.min(np.abs(lam - tau)) > 1e-4
        assert _f(M.eigenvalue_count(x, tau=tau)) == ref.eigenvalue_count(
            x, tau)
    for top in (0.3, 0.5, 1.0, 0.01):
        assert _f(M.explained_variance_ratio(x, top=top)) == pytest.approx(
            ref.explained_variance_ratio(x, top), rel=1e-4)
    np.testing.assert_allclose(_np(M.normalized_eigenvalues(x)), lam,
                               rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("m, k", [(8, 3), (3, 8)])
def test_gaussian_mutual_information_matches_reference(m, k):
    """gaussian_mutual_information (sample covariances) and its covariance
    form equal the reference, with and without ridge."""
    rng = np.random.default_rng(m * 10 + k)
    j = min(m, k)
    r = rng.normal(size=(16, m)).astype("float32")
    z = rng.normal(size=(16, k))
    z[:, :j] += r[:, :j] @ rng.normal(size=(j, j))
    z = z.astype("float32")
    want = ref.gaussian_mutual_information(r, z)
    assert _f(M.gaussian_mutual_information(r, z)) == pytest.approx(
        want, rel=1e-4)
    assert _f(M.gaussian_mutual_information(r, z, ridge=0.1)) == (
        pytest.approx(ref.gaussian_mutual_information(r, z, 0.1), rel=1e-4))
    sigma = np.cov(np.concatenate([r, z], 1), rowvar=False).astype("float32")
    assert _f(M.gaussian_mutual_information_from_covariance(
        sigma, m)) == pytest.approx(want, rel=1e-4)


# ---------------------------------------------------------------------------
# 3. Identities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(2, 3), (5, 8), (16, 32), (5, 5)])
def test_identity_matrix_identities(n, k):
    """ER(I_n) = n, RankMe(I_n) ~ n, H_a(I_n) = log n for every order, and
    I(I_n; I_n) = H(I_n) = log n (I_n padded with k - n zero columns)."""
    eye = np.eye(n, k, dtype="float32")
    assert _f(M.effective_rank(eye)) == pytest.approx(n, rel=1e-5)
    assert _f(M.rankme(eye)) == pytest.approx(n, rel=1e-4)
    for order in (2, 1, 3):
        assert _f(M.renyi_entropy(eye, order=order)) == pytest.approx(
            math.log(n), abs=1e-5)
    assert _f(M.matrix_mutual_information(eye, eye)) == pytest.approx(
        math.log(n), abs=1e-5)


@pytest.mark.parametrize("n, k", [(5, 8), (16, 32)])
def test_orthonormal_rows_identities(n, k):
    """Orthonormal rows (K = I_n): I(X; X) = H(X) = log n and uniformity is
    -2t (every pair at squared distance 2)."""
    q = np.linalg.qr(np.random.default_rng(n).normal(size=(k, n)))[0].T
    x = (q * np.arange(1, n + 1)[:, None]).astype("float32")  # scale rows
    h = _f(M.renyi_entropy(x))
    assert h == pytest.approx(math.log(n), abs=1e-5)
    assert _f(M.matrix_mutual_information(x, x)) == pytest.approx(h, abs=1e-5)
    assert _f(M.matrix_mutual_information(x, x, order=1)) == pytest.approx(
        math.log(n), abs=1e-4)
    assert _f(M.uniformity(x)) == pytest.approx(-4.0, abs=1e-5)
    assert _f(M.uniformity(x, t=1.0)) == pytest.approx(-2.0, abs=1e-5)


@pytest.mark.parametrize("b, f, d", SHAPES)
def test_rank_one_identities(b, f, d):
    """A rank-1 matrix of positively scaled copies of one row: ER = 1,
    H_2 = 0 (all-ones Gram), eigenvalue count 1, explained variance 1,
    uniformity 0 and zero self-alignment."""
    rng = np.random.default_rng(b)
    x = np.outer(rng.uniform(0.5, 2.0, b), rng.normal(size=f))
    x = x.astype("float32")
    assert _f(M.effective_rank(x)) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(_np(M.normalized_gram(x)), np.ones((b, b)),
                               atol=1e-5)
    for order in (2, 1, 3):
        assert _f(M.renyi_entropy(x, order=order)) == pytest.approx(
            0.0, abs=1e-4)
    assert _f(M.eigenvalue_count(x)) == 1.0
    assert _f(M.explained_variance_ratio(x)) == pytest.approx(1.0, abs=1e-5)
    assert _f(M.uniformity(x)) == pytest.approx(0.0, abs=1e-5)
    assert _f(M.alignment(x, 3.0 * x)) == pytest.approx(0.0, abs=1e-6)


def test_all_ones_entropy_is_zero_and_effective_rank_uncentred():
    """The all-ones matrix has H_2 = 0 and, because ER uses the raw
    (uncentred) matrix, ER = 1 (centring would leave nothing)."""
    ones = np.ones((B, F), "float32")
    assert _f(M.renyi_entropy(ones)) == pytest.approx(0.0, abs=1e-6)
    assert _f(M.effective_rank(ones)) == pytest.approx(1.0, abs=1e-5)


def test_effective_rank_of_known_spectrum():
    """ER of diag(3, 1) (padded to 2 x 3) is exp(H(3/4, 1/4)): singular
    values, not eigenvalues of the Gram, enter p."""
    x = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")
    p = np.array([0.75, 0.25])
    assert _f(M.effective_rank(x)) == pytest.approx(
        math.exp(-np.sum(p * np.log(p))), rel=1e-6)


def test_eigenvalue_count_and_explained_variance_of_known_spectrum():
    """Data built with covariance spectrum (sum 1) in a random basis:
    counts above tau and top-fraction shares are read off the spectrum."""
    spectrum = [0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005]
    x = _with_spectrum(16, spectrum, seed=1)
    np.testing.assert_allclose(_np(M.normalized_eigenvalues(x)), spectrum,
                               atol=1e-5)
    assert _f(M.eigenvalue_count(x)) == 7  # tau = 0.01 by default
    assert _f(M.eigenvalue_count(x, tau=0.12)) == 3
    assert _f(M.eigenvalue_count(x, tau=0.02)) == 6
    assert _f(M.explained_variance_ratio(x)) == pytest.approx(0.65, abs=1e-5)
    assert _f(M.explained_variance_ratio(x, top=0.5)) == pytest.approx(
        0.9, abs=1e-5)
    assert _f(M.explained_variance_ratio(x, top=1.0)) == pytest.approx(
        1.0, abs=1e-6)
    assert _f(M.explained_variance_ratio(x, top=0.05)) == pytest.approx(
        0.4, abs=1e-5)


@pytest.mark.parametrize("order", [1, 3])
def test_renyi_entropy_of_block_gram(order):
    """K with two orthogonal groups of parallel rows (sizes 4 and 1) has
    eigenvalues (4/5, 1/5) of K/n: H_1 = Shannon, H_3 from tr((K/n)^3)."""
    x = np.zeros((B, F), "float32")
    x[:4, 0] = [1.0, 2.0, 0.5, 3.0]
    x[4, 1] = 1.0
    p = np.array([0.8, 0.2])
    want = (-np.sum(p * np.log(p)) if order == 1
            else np.log(np.sum(p ** order)) / (1 - order))
    assert _f(M.renyi_entropy(x, order=order)) == pytest.approx(want,
                                                                abs=1e-5)


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.6, 0.95])
def test_gaussian_mi_bivariate_covariance(rho):
    """Bivariate Gaussian with correlation rho: I = -1/2 ln(1 - rho^2),
    whatever the variances."""
    s1, s2 = 2.0, 0.5
    sigma = np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]],
                     "float32")
    got = _f(M.gaussian_mutual_information_from_covariance(sigma, 1))
    assert got == pytest.approx(-0.5 * math.log(1 - rho ** 2), abs=1e-5)


def test_gaussian_mi_bivariate_samples():
    """Sampled bivariate Gaussian (rho = 0.6, 20000 draws): the estimate is
    within sampling error of -1/2 ln(1 - rho^2), and equals the float64
    estimate from the same samples."""
    rho = 0.6
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, rho], [rho, 1.0]])
    xy = rng.multivariate_normal([1.0, -2.0], cov, size=20000)
    xy = xy.astype("float32")
    got = _f(M.gaussian_mutual_information(xy[:, :1], xy[:, 1:]))
    assert got == pytest.approx(-0.5 * math.log(1 - rho ** 2), abs=0.02)
    assert got == pytest.approx(
        ref.gaussian_mutual_information(xy[:, :1], xy[:, 1:]), rel=1e-3)


def test_gaussian_mi_block_covariance_matches_reference():
    """Multivariate block covariance (R: 8, Z: 3) against the reference."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(11, 11))
    sigma = (a @ a.T + 0.5 * np.eye(11)).astype("float32")
    got = _f(M.gaussian_mutual_information_from_covariance(sigma, 8))
    assert got == pytest.approx(
        ref.gaussian_mutual_information_from_covariance(sigma, 8), rel=1e-4)


def test_gaussian_mi_exactly_deterministic_is_inf():
    """Z = 2R (exact in floating point) has a singular joint covariance:
    I(R; Z) = +inf without ridge, finite with ridge."""
    r = np.random.default_rng(3).normal(size=(20000, 1)).astype("float32")
    z = 2.0 * r
    assert _f(M.gaussian_mutual_information(r, z)) == math.inf
    with_ridge = _f(M.gaussian_mutual_information(r, z, ridge=1e-2))
    assert np.isfinite(with_ridge) and with_ridge > 0
    assert with_ridge == pytest.approx(
        ref.gaussian_mutual_information(r, z, 1e-2), rel=1e-4)


def test_gaussian_mi_linear_projection_is_inf():
    """Z = R W (a deterministic linear projection, 16 samples, R: 8-D,
    Z: 3-D): I(R; Z) = +inf without ridge (SPEC, docstring), finite and
    equal to the reference with ridge.

    Known library bug: the singularity test is `sign(slogdet) > 0` in
    float32, so round-off makes |Sigma| slightly positive and the function
    returns a finite ~24 nats instead of inf (this input, seed 7, on all
    three backends; for seed 2 JAX gives inf, TF and torch ~23.7)."""
    rng = np.random.default_rng(7)
    r = rng.normal(size=(16, 8)).astype("float32")
    w = rng.normal(size=(8, 3)).astype("float32")
    z = r @ w
    assert ref.gaussian_mutual_information(r, z) == math.inf
    with_ridge = _f(M.gaussian_mutual_information(r, z, ridge=1e-3))
    assert np.isfinite(with_ridge)
    assert with_ridge == pytest.approx(
        ref.gaussian_mutual_information(r, z, 1e-3), rel=1e-3)
    got = _f(M.gaussian_mutual_information(r, z))
    assert got == math.inf, (
        f"gaussian_mutual_information(r, r @ w) = {got}, expected +inf: "
        "the float32 joint covariance is numerically singular but "
        "slogdet's sign is +1")


# ---------------------------------------------------------------------------
# 6. Degenerate inputs and dtypes
# ---------------------------------------------------------------------------


def _all_metrics(x, y):
    return {
        "effective_rank": M.effective_rank(x),
        "rankme": M.rankme(x),
        "eigenvalue_count": M.eigenvalue_count(x),
        "explained_variance_ratio": M.explained_variance_ratio(x),
        "renyi_2": M.renyi_entropy(x),
        "renyi_1": M.renyi_entropy(x, order=1),
        "renyi_3": M.renyi_entropy(x, order=3),
        "mi": M.matrix_mutual_information(x, y),
        "mi_1": M.matrix_mutual_information(x, y, order=1),
        "uniformity": M.uniformity(x),
        "alignment": M.alignment(x, y),
        "gaussian_mi_ridge": M.gaussian_mutual_information(x, y, ridge=1e-3),
    }


@pytest.mark.parametrize("kind", ["zero", "rank1"])
def test_metrics_finite_on_degenerate_input(kind):
    """All-zero and rank-1 inputs give finite values for every metric;
    the Gaussian MI without ridge may be +inf (singular) but never NaN."""
    if kind == "zero":
        x = np.zeros((B, F), "float32")
    else:
        x = np.outer(np.arange(1, B + 1), np.linspace(-2, 3, F))
        x = x.astype("float32")
    for y in (x, _random(B, F, 0)):
        for name, v in _all_metrics(x, y).items():
            assert np.isfinite(_f(v)), name
        assert np.all(np.isfinite(_np(M.normalized_gram(x))))
        assert not np.isnan(_f(M.gaussian_mutual_information(x, y)))
    if kind == "zero":
        # Documented values for the empty spectrum; ridge-only covariance
        # has I = 0.
        assert _f(M.effective_rank(x)) == 0.0
        assert _f(M.eigenvalue_count(x)) == 0.0
        assert _f(M.gaussian_mutual_information(x, x, ridge=1e-3)) == (
            pytest.approx(0.0, abs=1e-4))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_computed_in_float32(dtype):
    """float16 / bfloat16 inputs give float32 results equal to the float32
    computation on the same (quantised) values."""
    x = _random(16, 8, 41, offset=0.3)
    y = (x + 0.3 * _random(16, 8, 42)).astype("float32")
    xl, yl = ops.cast(x, dtype), ops.cast(y, dtype)
    xq, yq = _np(ops.cast(xl, "float32")), _np(ops.cast(yl, "float32"))
    low = _all_metrics(xl, yl)
    low["gaussian_mi"] = M.gaussian_mutual_information(xl, yl)
    quant = _all_metrics(xq, yq)
    quant["gaussian_mi"] = M.gaussian_mutual_information(xq, yq)
    full = _all_metrics(x, y)
    for name, v in low.items():
        assert keras.backend.standardize_dtype(v.dtype) == "float32", name
        assert _f(v) == pytest.approx(_f(quant[name]), rel=1e-5,
                                      abs=1e-6), name
        if name in full:
            assert _f(v) == pytest.approx(_f(full[name]), rel=5e-2,
                                          abs=1e-2), name
    gram = M.normalized_gram(xl)
    assert keras.backend.standardize_dtype(gram.dtype) == "float32"


# ---------------------------------------------------------------------------
# 7. Bad input
# ---------------------------------------------------------------------------


def test_wrong_rank_raises():
    """3-D (and 1-D) input is rejected with a message asking for 2-D."""
    x3 = np.ones((2, 3, 4), "float32")
    one_arg = [M.effective_rank, M.rankme, M.eigenvalue_count,
               M.explained_variance_ratio, M.renyi_entropy,
               M.normalized_gram, M.uniformity]
    for fn in one_arg:
        with pytest.raises(ValueError, match="must be a 2-D matrix"):
            fn(x3)
    for fn in (M.matrix_mutual_information, M.alignment,
               M.gaussian_mutual_information):
        with pytest.raises(ValueError, match="must be a 2-D matrix"):
            fn(x3, x3)
    with pytest.raises(ValueError, match="must be a 2-D matrix"):
        M.effective_rank(np.ones(4, "float32"))


def test_shape_mismatch_raises():
    """alignment needs equal shapes; MI and Gaussian MI need equal rows."""
    a = _random(B, F, 0)
    with pytest.raises(ValueError, match="must have the same shape"):
        M.alignment(a, _random(B, D, 1))
    with pytest.raises(ValueError, match="same number of rows"):
        M.matrix_mutual_information(a, _random(B + 1, F, 1))
    with pytest.raises(ValueError, match="same number of rows"):
        M.gaussian_mutual_information(a, _random(B + 1, F, 1))


def test_batch_of_one_raises():
    """uniformity, covariance spectra and Gaussian MI need >= 2 rows."""
    x = np.ones((1, 3), "float32")
    for fn in (M.uniformity, M.eigenvalue_count, M.explained_variance_ratio):
        with pytest.raises(ValueError, match="at least 2"):
            fn(x)
    with pytest.raises(ValueError, match="at least 2"):
        M.gaussian_mutual_information(x, x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_entries_raise(bad):
    """NaN / Inf entries are rejected by every metric."""
    x = _random(5, 3, 0)
    xb = x.copy()
    xb[2, 1] = bad
    for fn in (M.effective_rank, M.rankme, M.eigenvalue_count,
               M.explained_variance_ratio, M.renyi_entropy, M.uniformity):
        with pytest.raises(ValueError, match="NaN or Inf"):
            fn(xb)
    for fn in (M.matrix_mutual_information, M.alignment,
               M.gaussian_mutual_information):
        with pytest.raises(ValueError, match="NaN or Inf"):
            fn(x, xb)


@pytest.mark.parametrize("order", [0, -1, -0.5])
def test_non_positive_order_raises(order):
    """Renyi order <= 0 is rejected."""
    with pytest.raises(ValueError, match="order must be positive"):
        M.renyi_entropy(SPEC_X, order)
    with pytest.raises(ValueError, match="order must be positive"):
        M.matrix_mutual_information(SPEC_X, SPEC_X, order=order)


@pytest.mark.parametrize("top", [0.0, -0.3, 1.5])
def test_explained_variance_top_out_of_range_raises(top):
    """explained_variance_ratio needs top in (0, 1]."""
    with pytest.raises(ValueError, match=r"`top` must be in \(0, 1\]"):
        M.explained_variance_ratio(SPEC_X, top=top)


def test_gaussian_covariance_bad_shapes_raise():
    """The covariance form needs a square matrix and 0 < r_dim < k."""
    with pytest.raises(ValueError, match="must be square"):
        M.gaussian_mutual_information_from_covariance(np.ones((3, 4)), 1)
    for r_dim in (0, 3):
        with pytest.raises(ValueError, match="`r_dim` must be in"):
            M.gaussian_mutual_information_from_covariance(np.eye(3), r_dim)


@pytest.mark.parametrize("case", ["random", "zero rows", "all-zero x", "all-zero both"])
def test_unit_diagonal_mutual_information_equals_the_entropies(case):
    """``gram_mutual_information(unit_diagonal=True)`` (one log of norms and
    constant traces) equals H(K_X) + H(K_Y) - H(K_X o K_Y) from
    ``gram_entropy``, in value and gradient, also with all-zero rows and
    all-zero matrices (finite gradients there)."""
    from keras_adadim.metrics.entropy import gram_mutual_information
    from keras_adadim.metrics.entropy import l2_normalize_rows
    from tests.losses.test_losses import _grad

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 12, 6)).astype("float32")
    y = rng.normal(size=(2, 12, 4)).astype("float32")
    if case == "zero rows":
        x[0, 2] = 0.0
        y[1, 5] = 0.0
        y[0, 2] = 0.0
    if case in ("all-zero x", "all-zero both"):
        x[0] = 0.0
    if case == "all-zero both":
        y[0] = 0.0

    def mi(a, b, unit):
        a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
        an, bn = l2_normalize_rows(a), l2_normalize_rows(b)
        kx = an @ ops.swapaxes(an, -1, -2)
        ky = bn @ ops.swapaxes(bn, -1, -2)
        return gram_mutual_information(kx, ky, 2, unit_diagonal=unit)

    got = np.asarray(ops.convert_to_numpy(mi(x, y, True)))
    want = np.asarray(ops.convert_to_numpy(mi(x, y, False)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    w = ops.convert_to_tensor(np.array([0.7, -1.3], "float32"))
    g_unit = _grad(lambda a, b: ops.sum(mi(a, b, True) * w), x, y)
    g_ref = _grad(lambda a, b: ops.sum(mi(a, b, False) * w), x, y)
    for gu, gr in zip(g_unit, g_ref):
        assert np.all(np.isfinite(gu))
        np.testing.assert_allclose(gu, gr, rtol=1e-4, atol=1e-5)
