"""The clustering and self-distillation losses (Sinkhorn-Knopp, SwAV's
swapped prediction, DINO, ReSSL, DeepCluster v2) against independent float64
NumPy re-computations (explicit loops in reference_numpy.py) and closed
forms, on the current backend (the suite runs once per backend)."""

import math

import numpy as np
import pytest
from keras import ops

import reference_numpy as ref
from keras_adadim import losses as L

RTOL = 1e-4


def f(x):
    return float(np.asarray(ops.convert_to_numpy(x)))


def a(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


@pytest.fixture
def scores(rng):
    """Cosine scores of 3 crops of 12 samples to 7 prototypes."""
    protos = unit_rows(rng, 7, 5)
    return [unit_rows(rng, 12, 5) @ protos.T for _ in range(3)]


# ------------------------------------------------------------ Sinkhorn-Knopp
@pytest.mark.parametrize("epsilon,iterations", [(0.05, 3), (0.1, 1), (0.5, 10)])
def test_sinkhorn_matches_numpy(scores, epsilon, iterations):
    got = a(L.sinkhorn_knopp(scores[0], epsilon, iterations))
    want = ref.sinkhorn_knopp(scores[0], epsilon, iterations)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-7)


def test_sinkhorn_marginals(scores):
    """Rows (samples) sum to 1 after any number of iterations; columns
    (prototypes) sum to b / K at convergence: equipartition."""
    s = np.concatenate(scores)  # 36 samples, 7 prototypes
    b, k = s.shape
    q3 = a(L.sinkhorn_knopp(s, 0.05, 3))
    np.testing.assert_allclose(q3.sum(1), 1.0, rtol=1e-5)
    assert np.all(q3 >= 0)
    q = a(L.sinkhorn_knopp(s, 0.5, 300))
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(q.sum(0), b / k, rtol=1e-3)
    # Far from the argmax of the scores: without the column constraint
    # the rows would pile onto few prototypes.
    plain = np.exp(s / 0.5) / np.exp(s / 0.5).sum(1, keepdims=True)
    assert np.max(np.abs(plain.sum(0) - b / k)) > 10 * np.max(np.abs(q.sum(0) - b / k))


def test_sinkhorn_is_stable_and_shift_invariant(scores):
    """The max is subtracted before exp: scores 30 above the cosine range
    (exp(31 / 0.05) overflows float32) give the same codes."""
    s = scores[0]
    base = a(L.sinkhorn_knopp(s, 0.05))
    np.testing.assert_allclose(a(L.sinkhorn_knopp(s + 30.0, 0.05)), base, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="epsilon"):
        L.sinkhorn_knopp(s, 0.0)
    with pytest.raises(ValueError, match="iterations"):
        L.sinkhorn_knopp(s, 0.05, 0)


def test_sinkhorn_of_a_half_batch_differs(scores):
    """The sums are over the rows given: codes of half the batch computed
    alone differ from those rows of the whole batch's codes (why the method
    needs the global batch)."""
    s = scores[0]
    whole = a(L.sinkhorn_knopp(s))[:6]
    half = a(L.sinkhorn_knopp(s[:6]))
    assert np.max(np.abs(whole - half)) > 1e-2


# ------------------------------------------------------------------ SwAV
@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_swav_loss_matches_numpy(scores, temperature):
    codes = [ref.sinkhorn_knopp(s) for s in scores[:2]]
    got = f(L.swav_loss(scores, [c.astype("float32") for c in codes], temperature))
    assert got == pytest.approx(ref.swav(scores, codes, temperature), rel=RTOL)
    # Two crops: the two swapped terms, averaged.
    two = f(L.swav_loss(scores[:2], [c.astype("float32") for c in codes], temperature))
    assert two == pytest.approx(ref.swav(scores[:2], codes, temperature), rel=RTOL)


def test_swav_loss_closed_form_and_errors():
    """One-hot codes equal to one-hot scores of the other crop at T = 1:
    log(1 + (K - 1) / e) per sample."""
    e = np.eye(3, dtype="float32")
    expected = math.log(math.e + 2) - 1.0
    assert f(L.swav_loss([e, e], [e, e], 1.0)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 crops"):
        L.swav_loss([e], [e])
    with pytest.raises(ValueError, match="columns"):
        L.swav_loss([e, e[:, :2]], [e])
    with pytest.raises(ValueError, match="temperature"):
        L.swav_loss([e, e], [e], 0.0)


# ------------------------------------------------------------------ DINO
@pytest.mark.parametrize("t_s,t_t", [(0.1, 0.04), (0.1, 0.07), (1.0, 0.5)])
def test_dino_loss_matches_numpy(scores, rng, t_s, t_t):
    center = (0.1 * rng.normal(size=7)).astype("float32")
    teacher = [s + 0.05 for s in scores[:2]]
    got = f(L.dino_loss(scores, teacher, center, t_s, t_t))
    assert got == pytest.approx(ref.dino(scores, teacher, center, t_s, t_t), rel=RTOL)
    got2 = f(L.dino_loss(scores[:2], teacher, center, t_s, t_t))
    assert got2 == pytest.approx(ref.dino(scores[:2], teacher, center, t_s, t_t), rel=RTOL)


def test_dino_centring_and_sharpening(scores):
    """A constant centre changes nothing (softmax is shift-invariant); a
    colder teacher gives a sharper target, so another loss; a centre equal
    to the teacher's logits makes its target uniform."""
    s, t = scores[:2], scores[:2]
    zero = np.zeros(7, "float32")
    base = f(L.dino_loss(s, t, zero, 0.1, 0.04))
    assert f(L.dino_loss(s, t, zero + 3.0, 0.1, 0.04)) == pytest.approx(base, rel=1e-5)
    assert abs(f(L.dino_loss(s, t, zero, 0.1, 0.5)) - base) > 1e-2
    # Teacher rows all equal to the centre: uniform targets, so the loss
    # is the mean over student rows of logsumexp(s / T_s) - mean_k(s / T_s).
    c = scores[2][0]
    teacher = [np.tile(c, (12, 1))] * 2
    st = [x.astype("f8") / 0.1 for x in s]
    want = np.mean([np.log(np.exp(x).sum(1)) - x.mean(1) for x in st])
    assert f(L.dino_loss(s, teacher, c, 0.1, 0.04)) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="at least 2 student crops"):
        L.dino_loss(s[:1], t[:1], zero)
    with pytest.raises(ValueError, match="centre"):
        L.dino_loss(s, t, zero[:3])
    with pytest.raises(ValueError, match="student_temperature"):
        L.dino_loss(s, t, zero, 0.0)


# ------------------------------------------------------------------ ReSSL
@pytest.mark.parametrize("t_s,t_t", [(0.1, 0.04), (0.2, 0.2)])
def test_ressl_loss_matches_numpy(rng, t_s, t_t):
    q1, q2, k = (rng.normal(size=(10, 6)).astype("float32") for _ in range(3))
    queue = rng.normal(size=(25, 6)).astype("float32")
    got = f(L.ressl_loss(q1, k, queue, t_s, t_t))
    assert got == pytest.approx(ref.ressl([q1], k, queue, t_s, t_t), rel=RTOL)
    got2 = f(L.ressl_loss([q1, q2], k, queue, t_s, t_t))
    assert got2 == pytest.approx(ref.ressl([q1, q2], k, queue, t_s, t_t), rel=RTOL)
    # Scale-free: rows are normalised.
    assert f(L.ressl_loss(2 * q1, 3 * k, 4 * queue, t_s, t_t)) == pytest.approx(got, rel=RTOL)


def test_ressl_loss_closed_form_and_errors():
    """Student = teacher = queue = I_3 at T = 1: the entropy of
    softmax(e_n) = (p, (1-p)/2, (1-p)/2), p = e / (e + 2); equal
    temperatures make the loss the target's entropy, its minimum."""
    e = np.eye(3, dtype="float32")
    p = math.e / (math.e + 2)
    want = -p * math.log(p) - (1 - p) * math.log((1 - p) / 2)
    assert f(L.ressl_loss(e, e, e, 1.0, 1.0)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="features"):
        L.ressl_loss(e, e, e[:, :2])
    with pytest.raises(ValueError, match="teacher_temperature"):
        L.ressl_loss(e, e, e, 0.1, 0.0)


# -------------------------------------------------------- DeepCluster v2
def test_deepclusterv2_loss_matches_numpy(scores, rng):
    heads = [scores, [s[:, :5] for s in scores[:2]]]  # K = 7 and 5, 3 and 2 crops
    labels = [rng.integers(0, 7, 12), rng.integers(0, 5, 12)]
    for t in (0.1, 1.0):
        got = f(L.deepclusterv2_loss(heads, labels, t))
        assert got == pytest.approx(ref.deepclusterv2(heads, labels, t), rel=RTOL)
    # One head given as its crops.
    assert f(L.deepclusterv2_loss(scores, labels[0], 0.1)) == pytest.approx(
        ref.deepclusterv2([scores], [labels[0]], 0.1), rel=RTOL)


def test_deepclusterv2_loss_ignores_samples_without_a_cluster(scores, rng):
    """-1 marks a sample not yet clustered (the first epoch): it is left
    out of the mean, and a head with no clustered sample gives 0 (with a
    zero gradient), as cross-entropy with ``ignore_index=-1``."""
    labels = rng.integers(0, 7, 12)
    labels[[0, 3, 4, 9]] = -1
    got = f(L.deepclusterv2_loss(scores, labels, 0.1))
    assert got == pytest.approx(ref.deepclusterv2([scores], [labels], 0.1), rel=RTOL)
    kept = labels >= 0
    assert got == pytest.approx(f(L.deepclusterv2_loss(
        [s[kept] for s in scores], labels[kept], 0.1)), rel=RTOL)
    none = -np.ones(12, "int64")
    assert f(L.deepclusterv2_loss(scores, none, 0.1)) == 0.0
    both = [scores, scores[:2]]
    assert f(L.deepclusterv2_loss(both, [labels, none], 0.1)) == pytest.approx(
        ref.deepclusterv2([scores], [labels], 0.1) / 2, rel=RTOL)


def test_deepclusterv2_loss_closed_form_and_errors():
    """Scores one-hot on the assigned cluster, T = 1: log(1 + (K-1)/e)."""
    e = np.eye(4, dtype="float32")
    want = math.log(1 + 3 / math.e)
    assert f(L.deepclusterv2_loss([[e, e]], [np.arange(4)], 1.0)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="one assignment vector per head"):
        L.deepclusterv2_loss([[e, e]], [np.arange(4), np.arange(4)])
    with pytest.raises(ValueError, match="integer cluster"):
        L.deepclusterv2_loss([[e, e]], [np.zeros(4, "float32")])
