"""The compared methods' losses (negative cosine, InfoNCE, Barlow Twins,
NNCLR, MoCo's InfoNCE with a queue) against independent float64 NumPy re-computations and closed forms,
on the current backend (the suite runs once per backend;
test_cross_backend.py checks that the backends agree with each other)."""

import math

import numpy as np
import pytest
from keras import ops

import reference_numpy as ref
from keras_adadim import losses as L

RTOL = 1e-4


def f(x):
    return float(np.asarray(ops.convert_to_numpy(x)))


@pytest.fixture
def batch(rng):
    z1 = rng.normal(size=(12, 16)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(12, 16))).astype("float32")
    p1 = rng.normal(size=(12, 16)).astype("float32")
    p2 = (p1 + 0.3 * rng.normal(size=(12, 16))).astype("float32")
    support = rng.normal(size=(40, 16)).astype("float32")
    return z1, z2, p1, p2, support


def test_negative_cosine_matches_numpy_and_closed_forms(batch):
    z1, z2, p1, _, _ = batch
    assert f(L.negative_cosine_similarity(p1, z1)) == pytest.approx(
        ref.negative_cosine_similarity(p1, z1), rel=RTOL)
    assert f(L.negative_cosine_similarity(z1, z1)) == pytest.approx(-1.0, abs=1e-6)
    assert f(L.negative_cosine_similarity(z1, -3.0 * z1)) == pytest.approx(1.0, abs=1e-6)
    # The Loss wrapper takes (y_true = target, y_pred = prediction).
    assert f(L.NegativeCosineSimilarity()(z2, p1)) == pytest.approx(
        ref.negative_cosine_similarity(p1, z2), rel=RTOL)


@pytest.mark.parametrize("temperature", [0.1, 0.2, 1.0])
def test_info_nce_matches_numpy(batch, temperature):
    z1, z2, _, _, _ = batch
    assert f(L.info_nce(z1, z2, temperature)) == pytest.approx(
        ref.info_nce(z1, z2, temperature), rel=RTOL)
    assert f(L.InfoNCE(temperature)(z2, z1)) == pytest.approx(
        ref.info_nce(z1, z2, temperature), rel=RTOL)


def test_info_nce_closed_form():
    """Orthonormal rows, q = k: -1/tau + log(e^{1/tau} + (b - 1))."""
    e = np.eye(5, dtype="float32")
    for tau in (0.2, 1.0):
        expected = math.log(math.exp(1 / tau) + 4) - 1 / tau
        assert f(L.info_nce(e, e, tau)) == pytest.approx(expected, rel=1e-5)
    # Queries are not each other's negatives (unlike NT-Xent): collapsed
    # keys give log(b) whatever the queries.
    ones = np.ones((6, 3), "float32")
    queries = np.eye(6, 3, dtype="float32") + 1.0
    assert f(L.info_nce(queries, ones, 0.2)) == pytest.approx(math.log(6), rel=1e-5)


@pytest.mark.parametrize("lambda_,scale", [(0.0051, 1.0), (0.0051, 0.1), (0.5, 2.0)])
def test_barlow_twins_matches_numpy(batch, lambda_, scale):
    z1, z2, _, _, _ = batch
    assert f(L.barlow_twins(z1, z2, lambda_, scale)) == pytest.approx(
        ref.barlow_twins(z1, z2, lambda_, scale), rel=RTOL)


def test_barlow_twins_of_an_input_with_itself_is_its_off_diagonal_term(batch):
    z1 = batch[0]
    zs = (z1 - z1.mean(0)) / z1.std(0)
    c = zs.T.astype("f8") @ zs / len(z1)
    off = np.sum(c ** 2) - np.sum(np.diag(c) ** 2)
    assert f(L.barlow_twins(z1, z1, 0.0051)) == pytest.approx(0.0051 * off, rel=RTOL)
    assert f(L.barlow_twins(z1, z1, 0.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        L.barlow_twins(z1[:1], z1[:1])


def test_nnclr_matches_numpy(batch):
    z1, z2, p1, p2, support = batch
    got = f(L.nnclr(z1, z2, p1, p2, support, 0.2))
    assert got == pytest.approx(ref.nnclr(z1, z2, p1, p2, support, 0.2), rel=RTOL)
    nn = np.asarray(ops.convert_to_numpy(L.nearest_neighbours(z1, support)))
    np.testing.assert_allclose(nn, ref.nearest_neighbours(z1, support), rtol=1e-5, atol=1e-6)
    # An embedding that is in the support set is its own nearest neighbour.
    nn_self = np.asarray(ops.convert_to_numpy(L.nearest_neighbours(support[:5], support)))
    np.testing.assert_allclose(nn_self, ref.l2_normalize_rows(support[:5]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.2, 1.0])
def test_moco_info_nce_matches_numpy(batch, temperature):
    """MoCo v2+'s loss: each query against its key and a queue of negatives
    (the batch's other keys are not negatives), then the method's
    symmetrised sum."""
    z1, z2, p1, p2, support = batch
    got = f(L.moco_info_nce(z1, z2, support, temperature))
    want = ref.moco_info_nce(z1, z2, support, temperature)
    assert got == pytest.approx(want, rel=RTOL)
    # Not InfoNCE over the batch: the other keys are not negatives.
    assert abs(want - ref.info_nce(z1, z2, temperature)) > 1e-2
    # Unnormalised queue rows: the loss normalises them.
    assert f(L.moco_info_nce(z1, z2, 3.0 * support, temperature)) == pytest.approx(
        want, rel=RTOL)
    sym = 0.5 * (f(L.moco_info_nce(z1, p2, support[20:], temperature))
                 + f(L.moco_info_nce(z2, p1, support[:20], temperature)))
    assert sym == pytest.approx(
        ref.mocov2plus(z1, z2, p1, p2, support[:20], support[20:], temperature), rel=RTOL)


def test_moco_info_nce_closed_form():
    """q = k unit rows orthogonal to the K queue rows: log(1 + K e^{-1/tau})."""
    e = np.eye(7, dtype="float32")
    for tau in (0.2, 1.0):
        expected = math.log(1 + 4 * math.exp(-1 / tau))
        assert f(L.moco_info_nce(e[:3], e[:3], e[3:], tau)) == pytest.approx(
            expected, rel=1e-5)
    with pytest.raises(ValueError, match="features"):
        L.moco_info_nce(e[:3], e[:3], e[3:, :4])
    with pytest.raises(ValueError, match="temperature"):
        L.moco_info_nce(e[:3], e[:3], e[3:], 0.0)


def test_losses_reject_bad_input(batch):
    z1, z2, _, _, _ = batch
    with pytest.raises(ValueError, match="same shape"):
        L.info_nce(z1, z2[:5])
    with pytest.raises(ValueError, match="temperature"):
        L.info_nce(z1, z2, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        L.negative_cosine_similarity(z1[0], z2[0])
