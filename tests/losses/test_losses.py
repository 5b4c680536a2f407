"""Tests of keras_adadim.losses against SPEC.md and an independent NumPy
float64 reference (tests/reference_numpy.py). Run once per Keras backend."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import reference_numpy as ref
from conftest import SPEC_Z1, SPEC_Z2
from keras_adadim import losses as L
from keras_adadim.losses.nt_xent import nt_xent_of_blocks
from keras_adadim.metrics import matrix_mutual_information

BACKEND = keras.backend.backend()
# Canonical shapes, reused throughout (JAX compiles every op once per
# shape): (b, F) of z, and (b, d) of r with d != F.
SHAPES = [(2, 3), (5, 8), (16, 32)]
B, F, D = 5, 8, 3
R_WIDTH = {2: 8, 5: 3, 16: 8}


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _f(v):
    return float(keras.ops.convert_to_numpy(v))


def _grad(fn, *arrays):
    """Gradients (NumPy float32) of the scalar ``fn(*tensors)`` with respect
    to each array, by the current backend's autodiff."""
    arrays = [np.asarray(a, "float32") for a in arrays]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            for x in xs:
                tape.watch(x)
            y = fn(*xs)
        grads = tape.gradient(y, xs)
        return [
            np.zeros_like(a) if g is None else g.numpy()
            for a, g in zip(arrays, grads)
        ]
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        # jit: one compilation instead of one per primitive (eager JAX).
        grads = jax.jit(jax.grad(fn, argnums=tuple(range(len(arrays)))))(
            *[jnp.asarray(a) for a in arrays]
        )
        return [np.asarray(g) for g in grads]
    if BACKEND == "torch":
        import torch

        xs = [torch.tensor(a, requires_grad=True) for a in arrays]
        fn(*xs).backward()
        return [
            np.zeros_like(a) if x.grad is None else x.grad.detach().numpy()
            for a, x in zip(arrays, xs)
        ]
    raise NotImplementedError(BACKEND)


def _views(rng, b, f, d=None):
    z1 = rng.normal(size=(b, f)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(b, f))).astype("float32")
    if d is None:
        return z1, z2
    r1 = rng.normal(size=(b, d)).astype("float32")
    r2 = rng.normal(size=(b, d)).astype("float32")
    return z1, z2, r1, r2


# ---------------------------------------------------------------------------
# 1. SPEC test vectors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tau, expected", [(0.1, 1.0604590199), (0.5, 1.5679614069)]
)
def test_nt_xent_spec_vectors(tau, expected):
    """NT-Xent reproduces the SPEC test vectors at tau 0.1 and 0.5."""
    got = _f(L.nt_xent(SPEC_Z1, SPEC_Z2, temperature=tau))
    assert got == pytest.approx(expected, abs=1e-5)


def test_nt_xent_default_temperature_is_0_1():
    """The default temperature is the SPEC's tau = 0.1."""
    assert _f(L.nt_xent(SPEC_Z1, SPEC_Z2)) == pytest.approx(
        1.0604590199, abs=1e-5
    )


def test_vicreg_spec_vector_and_components():
    """VICReg total and its s, v-sum, c-sum components match the SPEC."""
    loss, comps = L.vicreg(SPEC_Z1, SPEC_Z2, return_components=True)
    assert _f(loss) == pytest.approx(23.9526159117, abs=1e-5)
    assert _f(L.vicreg(SPEC_Z1, SPEC_Z2)) == pytest.approx(
        23.9526159117, abs=1e-5
    )
    assert _f(comps["invariance"]) == pytest.approx(0.4166666667, abs=1e-5)
    assert _f(comps["variance"]) == pytest.approx(0.5308824142, abs=1e-5)
    assert _f(comps["covariance"]) == pytest.approx(0.2638888889, abs=1e-5)
    alone = L.vicreg_components(SPEC_Z1, SPEC_Z2)
    for key in ("invariance", "variance", "covariance"):
        assert _f(alone[key]) == pytest.approx(_f(comps[key]), abs=1e-7)


def test_reference_reproduces_spec_vectors():
    """The NumPy reference itself reproduces every SPEC loss vector, so the
    random-input comparisons below rest on a validated ground truth."""
    assert ref.nt_xent(SPEC_Z1, SPEC_Z2, 0.1) == pytest.approx(
        1.0604590199, abs=1e-9
    )
    assert ref.nt_xent(SPEC_Z1, SPEC_Z2, 0.5) == pytest.approx(
        1.5679614069, abs=1e-9
    )
    assert ref.vicreg(SPEC_Z1, SPEC_Z2) == pytest.approx(
        23.9526159117, abs=1e-9
    )


# ---------------------------------------------------------------------------
# 2. Random inputs against the float64 reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("b, f", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_reference(b, f, tau):
    """NT-Xent equals the explicit per-anchor reference on random inputs."""
    z1, z2 = _views(np.random.default_rng(b * 100 + f), b, f)
    got = _f(L.nt_xent(z1, z2, temperature=tau))
    assert got == pytest.approx(ref.nt_xent(z1, z2, tau), rel=1e-4)


@pytest.mark.parametrize("b, f", SHAPES)
def test_vicreg_matches_reference(b, f):
    """VICReg and each component equal the reference on random inputs
    (scaled so the variance hinge is active in some dimensions only)."""
    rng = np.random.default_rng(b * 7 + f)
    scale = np.linspace(0.3, 2.0, f).astype("float32")
    z1, z2 = _views(rng, b, f)
    z1, z2 = z1 * scale, z2 * scale
    loss, comps = L.vicreg(z1, z2, return_components=True)
    want = ref.vicreg_components(z1, z2)
    assert _f(loss) == pytest.approx(ref.vicreg(z1, z2), rel=1e-4)
    for key in want:
        assert _f(comps[key]) == pytest.approx(want[key], rel=1e-4, abs=1e-6)


def test_vicreg_custom_weights_and_epsilon():
    """Non-default lambda, mu, nu and epsilon enter the formula as in SPEC."""
    z1, z2 = _views(np.random.default_rng(3), B, F)
    got = _f(L.vicreg(z1, z2, 2.0, 3.0, 0.5, epsilon=0.1))
    want = ref.vicreg(z1, z2, 2.0, 3.0, 0.5, epsilon=0.1)
    assert got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("pairing", ["cross", "same"])
@pytest.mark.parametrize("b, f", SHAPES)
def test_mutual_information_term_matches_reference(b, f, pairing):
    """L_mut equals the reference for both pairings, r wider/narrower than z."""
    d = R_WIDTH[b]
    z1, z2, r1, r2 = _views(np.random.default_rng(b + f + d), b, f, d)
    r2 = (r2 + 0.8 * z1[:, :1]).astype("float32")  # some shared structure
    got = _f(L.mutual_information_term(z1, z2, r1, r2, pairing=pairing))
    want = ref.mutual_information_term(z1, z2, r1, r2, pairing)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("b, f", SHAPES)
def test_adadim_loss_matches_reference(b, f):
    """The full AdaDim loss (alpha 0.4, beta 0.3) equals the reference."""
    d = R_WIDTH[b]
    z1, z2, r1, r2 = _views(np.random.default_rng(11 * b + d), b, f, d)
    got = _f(L.adadim_loss(z1, z2, r1, r2, alpha=0.4, beta=0.3,
                           temperature=0.5))
    want = ref.adadim_loss(z1, z2, r1, r2, 0.4, 0.3, temperature=0.5)
    assert got == pytest.approx(want, rel=1e-4)


# ---------------------------------------------------------------------------
# 3. Identities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("b, f", SHAPES)
def test_collapsed_nt_xent_is_log_2b_minus_1(b, f):
    """Fully collapsed embeddings give NT-Xent = log(2b - 1) (SPEC)."""
    row = np.random.default_rng(b).normal(size=(1, f)).astype("float32")
    z = np.repeat(row, b, axis=0)
    assert _f(L.nt_xent(z, 2.0 * z)) == pytest.approx(
        math.log(2 * b - 1), abs=1e-5
    )


def test_nt_xent_is_scale_invariant_and_symmetric():
    """Rows are L2-normalised (row scaling is irrelevant) and the loss is
    symmetric in the two views (mean over all 2b anchors)."""
    z1, z2 = _views(np.random.default_rng(5), B, F)
    scale = np.arange(1, B + 1, dtype="float32")[:, None]
    base = _f(L.nt_xent(z1, z2))
    assert _f(L.nt_xent(z1 * scale, z2 / scale)) == pytest.approx(
        base, rel=1e-5
    )
    assert _f(L.nt_xent(z2, z1)) == pytest.approx(base, rel=1e-5)


def test_mutual_information_term_orthonormal_is_log_b():
    """With orthonormal rows in every input, each I(.;.) = H(I_b) = log b,
    so L_mut = log b for both pairings."""
    b = B
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(F, b)))[0].T
    z = q.astype("float32")
    for pairing in ("cross", "same"):
        got = _f(L.mutual_information_term(z, z, z, z, pairing=pairing))
        assert got == pytest.approx(math.log(b), abs=1e-5)


# ---------------------------------------------------------------------------
# 4. adadim_loss composition
# ---------------------------------------------------------------------------


def test_adadim_alpha0_beta0_is_vicreg_exactly():
    """alpha = 0, beta = 0 is pure VICReg (bit-for-bit)."""
    z1, z2 = _views(np.random.default_rng(1), B, F)
    assert _f(L.adadim_loss(z1, z2, alpha=0.0, beta=0.0)) == _f(
        L.vicreg(z1, z2)
    )


def test_adadim_alpha1_beta0_is_nt_xent_exactly():
    """alpha = 1, beta = 0 is pure NT-Xent: no trace of VICReg (~20 here)
    or L_mut, to float32 round-off (AdaDim takes NT-Xent from the blocks
    of the similarity matrix, ``nt_xent`` from the whole matrix)."""
    z1, z2 = _views(np.random.default_rng(2), B, F)
    got = _f(L.adadim_loss(z1, z2, alpha=1.0, beta=0.0, temperature=0.3))
    assert got == pytest.approx(
        _f(L.nt_xent(z1, z2, temperature=0.3)), rel=1e-6)


def test_adadim_intermediate_equals_formula_on_components():
    """L = (1-b)[(1-a) VICReg + a NCE] - b L_mut on separately computed
    terms, and return_components reports those terms."""
    z1, z2, r1, r2 = _views(np.random.default_rng(4), B, F, D)
    a, bt = 0.35, 0.25
    v = _f(L.vicreg(z1, z2))
    n = _f(L.nt_xent(z1, z2))
    m = _f(L.mutual_information_term(z1, z2, r1, r2))
    loss, comps = L.adadim_loss(z1, z2, r1, r2, alpha=a, beta=bt,
                                return_components=True)
    want = (1 - bt) * ((1 - a) * v + a * n) - bt * m
    assert _f(loss) == pytest.approx(want, rel=1e-5)
    assert _f(comps["loss"]) == _f(loss)
    assert _f(comps["vicreg"]) == pytest.approx(v, rel=1e-6)
    # NT-Xent here is ~1e-2, a difference of parts ~1/tau = 10 (each
    # summed in float32 in a different order): 1e-6 absolute is round-off.
    assert _f(comps["nce"]) == pytest.approx(n, rel=1e-6, abs=1e-6)
    assert _f(comps["mut"]) == pytest.approx(m, rel=1e-6)
    assert _f(L.combine_adadim(v, n, m, a, bt)) == pytest.approx(
        want, rel=1e-6
    )


def test_adadim_mi_penalty_adds_plus_lambda_mut():
    """mi_penalty adds +lambda * L_mut (the '+lambda' baselines)."""
    z1, z2, r1, r2 = _views(np.random.default_rng(6), B, F, D)
    m = _f(L.mutual_information_term(z1, z2, r1, r2))
    n = _f(L.nt_xent(z1, z2))
    got = _f(L.adadim_loss(z1, z2, r1, r2, alpha=1.0, mi_penalty=0.5))
    assert got == pytest.approx(n + 0.5 * m, rel=1e-5)


def test_adadim_pairing_cross_vs_same():
    """pairing='cross' uses I(z1;r2), I(z2;r1); 'same' uses I(z1;r1),
    I(z2;r2); the default is 'cross'. The inputs make the two differ."""
    rng = np.random.default_rng(9)
    # Rows of z1, r1 clustered by one labelling, rows of z2, r2 by another
    # (orthogonal cluster centres): matched pairs share their clusters.
    first, second = np.array([0, 0, 1, 1, 0]), np.array([0, 1, 0, 1, 1])

    def clustered(labels, width):
        centres = np.eye(width)[:2] * 3.0
        noise = 0.2 * rng.normal(size=(B, width))
        return (centres[labels] + noise).astype("float32")

    z1, r1 = clustered(first, F), clustered(first, D)
    z2, r2 = clustered(second, F), clustered(second, D)
    mi = lambda x, y: _f(matrix_mutual_information(x, y))  # noqa: E731
    cross = 0.5 * (mi(z1, r2) + mi(z2, r1))
    same = 0.5 * (mi(z1, r1) + mi(z2, r2))
    assert same - cross > 0.3
    got_c = _f(L.mutual_information_term(z1, z2, r1, r2, pairing="cross"))
    got_s = _f(L.mutual_information_term(z1, z2, r1, r2, pairing="same"))
    got_d = _f(L.mutual_information_term(z1, z2, r1, r2))
    assert got_c == pytest.approx(cross, rel=1e-5)
    assert got_s == pytest.approx(same, rel=1e-5)
    assert got_d == got_c
    beta = 0.5
    for pairing, m in (("cross", cross), ("same", same)):
        got = _f(L.adadim_loss(z1, z2, r1, r2, alpha=1.0, beta=beta,
                               pairing=pairing))
        want = (1 - beta) * _f(L.nt_xent(z1, z2)) - beta * m
        assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"beta": 0.1},
    {"beta": 0.1, "r1": np.ones((4, 3), "float32")},
    {"beta": 0.0, "mi_penalty": 1e-4},
])
def test_adadim_requires_r_when_mut_is_used(kwargs):
    """beta != 0 (or mi_penalty != 0) without r1 and r2 is a ValueError."""
    with pytest.raises(ValueError, match="`r1` and `r2`"):
        L.adadim_loss(SPEC_Z1, SPEC_Z2, alpha=0.5, **kwargs)


# ---------------------------------------------------------------------------
# 5. Gradients: the sign of L_mut and a finite-difference check
# ---------------------------------------------------------------------------


class MutualInformationModel(keras.Model):
    """Holds z1, z2 as trainable weights; its loss is
    combine_adadim(0, 0, L_mut(z, r), 0, beta) = -beta * L_mut.

    r1, r2 are non-trainable weights, or (``constant_r=True``) plain backend
    tensors captured by the compiled train step."""

    def __init__(self, z1, z2, r1, r2, beta, constant_r=False):
        super().__init__()
        self.z1 = self.add_weight(shape=z1.shape, initializer="zeros")
        self.z2 = self.add_weight(shape=z2.shape, initializer="zeros")
        self.z1.assign(z1)
        self.z2.assign(z2)
        if constant_r:
            self.r1 = keras.ops.convert_to_tensor(r1)
            self.r2 = keras.ops.convert_to_tensor(r2)
        else:
            self.r1 = self.add_weight(shape=r1.shape, initializer="zeros",
                                      trainable=False)
            self.r2 = self.add_weight(shape=r2.shape, initializer="zeros",
                                      trainable=False)
            self.r1.assign(r1)
            self.r2.assign(r2)
        self.beta = beta

    def call(self, x):
        return x

    def mut(self):
        return L.mutual_information_term(self.z1, self.z2, self.r1, self.r2)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        return L.combine_adadim(0.0, 0.0, self.mut(), 0.0, self.beta)


def _fit_one_step(model):
    return model.fit(np.zeros((1, 1), "float32"), np.zeros((1, 1), "float32"),
                     batch_size=1, epochs=1, verbose=0)


def test_minus_beta_mut_raises_mutual_information_via_fit():
    """One SGD step of model.fit on -beta * L_mut (z trainable, r fixed)
    increases L_mut, i.e. the minus sign raises I(R; Z)."""
    rng = np.random.default_rng(21)
    z1, z2, r1, r2 = _views(rng, B, F, D)
    z1, z2 = 0.3 * z1, 0.3 * z2
    model = MutualInformationModel(z1, z2, r1, r2, beta=1.0)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    before = _f(model.mut())
    assert before == pytest.approx(
        ref.mutual_information_term(z1, z2, r1, r2), rel=1e-4
    )
    history = _fit_one_step(model)
    assert history.history["loss"][0] == pytest.approx(-before, rel=1e-4)
    after = _f(model.mut())
    moved = np.abs(_np(model.z1) - z1).max()
    assert moved > 0, "the SGD step did not update z"
    assert after > before + 1e-4, (before, after)
    # Cross-check with the reference on the updated weights.
    assert after == pytest.approx(
        ref.mutual_information_term(_np(model.z1), _np(model.z2), r1, r2),
        rel=1e-4,
    )


def test_constant_tensor_inside_compiled_train_step():
    """A concrete backend tensor (here r1, r2) used by L_mut inside the
    compiled train step must work like a variable does.

    Known library bug on JAX: `_validation.check_finite` trusts
    `_backend.is_concrete(x)`, which only asks whether `x` itself is a
    Tracer; under `jax.jit` (Keras' JAX train step) operations on a concrete
    jax.Array are staged, so `bool(ops.all(ops.isfinite(x)))` raises
    `jax.errors.TracerBoolConversionError`. Minimal input:
    `jax.jit(lambda z: nt_xent(z, jnp.ones((4, 3))))(np.ones((4, 3)))`."""
    rng = np.random.default_rng(22)
    z1, z2, r1, r2 = _views(rng, B, F, D)
    model = MutualInformationModel(z1, z2, r1, r2, beta=1.0, constant_r=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    before = _f(model.mut())
    try:
        history = _fit_one_step(model)
    except Exception as error:  # noqa: BLE001 - turned into a clear failure
        pytest.fail(
            "model.fit with a constant tensor inside L_mut raised "
            f"{type(error).__name__}: {str(error).splitlines()[0]}"
        )
    assert history.history["loss"][0] == pytest.approx(-before, rel=1e-4)
    assert _f(model.mut()) > before


def test_gradient_of_minus_beta_mut_points_uphill_in_mi():
    """The negative gradient of -beta*L_mut has a positive directional
    derivative of the reference I(R; Z) (float64 central difference)."""
    rng = np.random.default_rng(8)
    z1, z2, r1, r2 = _views(rng, B, F, D)
    beta = 0.7
    g1, g2 = _grad(
        lambda a, b: L.combine_adadim(
            0.0, 0.0, L.mutual_information_term(a, b, r1, r2), 0.0, beta),
        z1, z2)
    h = 1e-4
    f = lambda s: ref.mutual_information_term(  # noqa: E731
        z1 - s * g1, z2 - s * g2, r1, r2)
    slope = (f(h) - f(-h)) / (2 * h)
    # d/ds I(z - s g) = -grad(I) . g = |g|^2 / beta, since g = -beta grad(I).
    want = np.sum(g1.astype("f8") ** 2) + np.sum(g2.astype("f8") ** 2)
    assert slope > 0
    assert slope * beta == pytest.approx(want, rel=1e-2)


def _central_difference(fn, arrays, h=1e-5):
    grads = []
    for k, a in enumerate(arrays):
        a = a.astype("float64")
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.astype("float64") for x in arrays]
            minus = [x.astype("float64") for x in arrays]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (fn(*plus) - fn(*minus)) / (2 * h)
        grads.append(g)
    return grads


def test_adadim_loss_gradient_matches_finite_differences():
    """Autodiff gradient of adadim_loss (alpha 0.3, beta 0.2) w.r.t. z1, z2,
    r1, r2 equals float64 central differences of the NumPy reference."""
    rng = np.random.default_rng(13)
    z1, z2, r1, r2 = _views(rng, B, F, D)
    z1, z2 = 0.5 * z1, 0.5 * z2  # keep every variance hinge active
    got = _grad(lambda a, b, c, d: L.adadim_loss(a, b, c, d, alpha=0.3,
                                                 beta=0.2),
                z1, z2, r1, r2)
    want = _central_difference(
        lambda a, b, c, d: ref.adadim_loss(a, b, c, d, 0.3, 0.2),
        [z1, z2, r1, r2])
    for g, w in zip(got, want):
        assert np.abs(w).max() > 1e-3  # each input really matters
        np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-3)


def test_nt_xent_gradient_matches_finite_differences():
    """Autodiff gradient of NT-Xent (tau 0.5) equals central differences."""
    z1, z2 = _views(np.random.default_rng(14), B, F)
    got = _grad(lambda a, b: L.nt_xent(a, b, 0.5), z1, z2)
    want = _central_difference(lambda a, b: ref.nt_xent(a, b, 0.5), [z1, z2])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-3)


def _blocks_of(z1, z2):
    """NT-Xent from the blocks of the similarity matrix, in keras.ops."""
    n1, n2 = (ops.normalize(ops.convert_to_tensor(z), axis=-1) for z in (z1, z2))
    within = ops.stack([n1 @ ops.transpose(n1), n2 @ ops.transpose(n2)])
    return within, n1 @ ops.transpose(n2)


@pytest.mark.parametrize("b, f", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_of_blocks_matches_reference(b, f, tau):
    """NT-Xent from [[W1, C], [C^T, W2]]'s blocks, the (2b, 2b) matrix never
    formed, equals the per-anchor float64 reference, with the positives
    read from C or given."""
    z1, z2 = _views(np.random.default_rng(b * 10 + f), b, f)
    within, cross = _blocks_of(z1, z2)
    # abs: the loss is a difference of float32 parts ~1/tau (b = 2: ~1e-6).
    want = pytest.approx(ref.nt_xent(z1, z2, tau), rel=1e-5, abs=1e-6)
    assert _f(nt_xent_of_blocks(within, cross, tau)) == want
    given = ops.diagonal(cross)
    assert _f(nt_xent_of_blocks(within, cross, tau, given)) == want


def test_nt_xent_of_blocks_spec_vectors_and_collapse():
    """The SPEC vectors, and log(2b - 1) for collapsed views."""
    for tau, expected in [(0.1, 1.0604590199), (0.5, 1.5679614069)]:
        got = nt_xent_of_blocks(*_blocks_of(SPEC_Z1, SPEC_Z2), tau)
        assert _f(got) == pytest.approx(expected, abs=1e-5)
    z = np.repeat(np.random.default_rng(2).normal(size=(1, F)), B, 0)
    got = nt_xent_of_blocks(*_blocks_of(z.astype("float32"),
                                          (2 * z).astype("float32")))
    assert _f(got) == pytest.approx(math.log(2 * B - 1), abs=1e-5)


def test_nt_xent_of_blocks_gradient_matches_finite_differences():
    """Its gradient (through the blocks to z1, z2) equals central
    differences of the reference."""
    z1, z2 = _views(np.random.default_rng(15), B, F)
    got = _grad(lambda a, b: nt_xent_of_blocks(*_blocks_of(a, b), 0.5),
                z1, z2)
    want = _central_difference(lambda a, b: ref.nt_xent(a, b, 0.5), [z1, z2])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------------------
# 6. Degenerate inputs and dtypes
# ---------------------------------------------------------------------------


def _degenerate_inputs():
    zero = np.zeros((B, F), "float32")
    rank1 = np.outer(np.arange(1, B + 1), np.linspace(-2, 3, F))
    rank1 = rank1.astype("float32")
    const = np.ones((B, F), "float32") * 3.0
    return {"zero": zero, "rank1": rank1, "constant": const}


@pytest.mark.parametrize("kind", ["zero", "rank1", "constant"])
def test_losses_finite_on_degenerate_input(kind):
    """All-zero, rank-1 and constant inputs give finite losses."""
    z = _degenerate_inputs()[kind]
    r = np.random.default_rng(0).normal(size=(B, D)).astype("float32")
    values = {
        "nt_xent": L.nt_xent(z, z),
        "vicreg": L.vicreg(z, z),
        "mut": L.mutual_information_term(z, z, z, z),
        "mut_r": L.mutual_information_term(z, z, r, r),
        "adadim": L.adadim_loss(z, z, r, r, alpha=0.5, beta=0.1),
        **{f"vicreg_{k}": v for k, v in L.vicreg_components(z, z).items()},
    }
    for name, v in values.items():
        assert np.isfinite(_f(v)), name
    # Known values: identical views have no invariance term; constant and
    # zero columns have zero variance, so v = 1 - sqrt(eps) per dimension.
    comps = L.vicreg_components(z, z)
    assert _f(comps["invariance"]) == 0.0
    if kind in ("zero", "constant"):
        assert _f(comps["variance"]) == pytest.approx(2 * (1 - 0.01),
                                                      abs=1e-6)
        assert _f(L.vicreg(z, z)) == pytest.approx(49.5, abs=1e-4)


def test_vicreg_constant_views_value():
    """VICReg of two different constant views: 25 * s + 25 * 2 * 0.99."""
    z1 = np.full((B, F), 2.0, "float32")
    z2 = np.full((B, F), -1.0, "float32")
    assert _f(L.vicreg(z1, z2)) == pytest.approx(25 * 9 + 49.5, rel=1e-6)


@pytest.mark.parametrize("name", ["nt_xent", "vicreg", "adadim", "mut"])
def test_loss_gradients_finite_at_zero(name):
    """Gradients of the losses at an all-zero z are finite (no NaN/Inf)."""
    z = np.zeros((B, F), "float32")
    r = np.random.default_rng(1).normal(size=(B, D)).astype("float32")
    fns = {
        "nt_xent": lambda a, b: L.nt_xent(a, b),
        "vicreg": lambda a, b: L.vicreg(a, b),
        "adadim": lambda a, b: L.adadim_loss(a, b, r, r, alpha=0.3,
                                             beta=0.2),
        "mut": lambda a, b: L.mutual_information_term(a, b, r, r),
    }
    for g in _grad(fns[name], z, z):
        assert np.all(np.isfinite(g)), g


def test_vicreg_gradient_at_zero_is_exactly_zero():
    """At z = 0 the VICReg gradient is exactly zero (symmetric point), which
    is finite, not NaN; slightly perturbed inputs get finite gradients too."""
    z = np.zeros((B, F), "float32")
    for g in _grad(lambda a, b: L.vicreg(a, b), z, z):
        np.testing.assert_array_equal(g, 0.0)
    eps = 1e-3 * np.random.default_rng(2).normal(size=(B, F))
    eps = eps.astype("float32")
    for g in _grad(lambda a, b: L.vicreg(a, b), eps, -eps):
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_computed_in_float32(dtype):
    """float16 / bfloat16 inputs give float32 results equal to the float32
    computation on the same (quantised) values."""
    z1, z2, r1, r2 = _views(np.random.default_rng(17), B, F, D)
    low = [ops.cast(a, dtype) for a in (z1, z2, r1, r2)]
    up = [_np(ops.cast(a, "float32")) for a in low]
    fns = {
        "nt_xent": lambda a, b, c, d: L.nt_xent(a, b),
        "vicreg": lambda a, b, c, d: L.vicreg(a, b),
        "mut": lambda a, b, c, d: L.mutual_information_term(a, b, c, d),
        "adadim": lambda a, b, c, d: L.adadim_loss(a, b, c, d, alpha=0.4,
                                                   beta=0.2),
        "NTXent": lambda a, b, c, d: L.NTXent()(a, b),
        "VICReg": lambda a, b, c, d: L.VICReg()(a, b),
    }
    for name, fn in fns.items():
        got = fn(*low)
        assert keras.backend.standardize_dtype(got.dtype) == "float32", name
        want = _f(fn(*up))
        assert _f(got) == pytest.approx(want, rel=1e-6, abs=1e-6), name
        # ... and close to the unquantised float32 value.
        assert _f(got) == pytest.approx(_f(fn(z1, z2, r1, r2)), rel=5e-2)


# ---------------------------------------------------------------------------
# 7. Bad input
# ---------------------------------------------------------------------------


def test_wrong_rank_raises():
    """3-D input is rejected with a message asking for a 2-D matrix."""
    z3 = np.ones((2, 3, 4), "float32")
    for fn in (L.nt_xent, L.vicreg, L.vicreg_components):
        with pytest.raises(ValueError, match="must be a 2-D matrix"):
            fn(z3, z3)
    with pytest.raises(ValueError, match="must be a 2-D matrix"):
        L.mutual_information_term(z3, z3, z3, z3)
    with pytest.raises(ValueError, match="must be a 2-D matrix"):
        L.nt_xent(np.ones(4, "float32"), np.ones(4, "float32"))


def test_different_view_shapes_raise():
    """z1 and z2 of different shapes are rejected."""
    a, b = np.ones((B, F), "float32"), np.ones((B, D), "float32")
    c = np.ones((B + 1, F), "float32")
    for fn in (L.nt_xent, L.vicreg, L.adadim_loss):
        with pytest.raises(ValueError, match="must have the same shape"):
            fn(a, b)
        with pytest.raises(ValueError, match="must have the same shape"):
            fn(a, c)


def test_mut_with_mismatched_rows_raises():
    """r with a different number of rows than z is rejected."""
    z = np.random.default_rng(0).normal(size=(B, F)).astype("float32")
    r = np.ones((B + 1, D), "float32")
    with pytest.raises(ValueError, match="same number of rows"):
        L.mutual_information_term(z, z, r, r)


def test_vicreg_batch_of_one_raises():
    """VICReg needs b >= 2 (unbiased variance); b = 1 is a ValueError."""
    z = np.ones((1, 3), "float32")
    with pytest.raises(ValueError, match="at least 2"):
        L.vicreg(z, z)
    with pytest.raises(ValueError, match="at least 2"):
        L.adadim_loss(z, z, alpha=0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entries_raise(bad):
    """NaN / Inf entries are rejected before they can propagate."""
    z = np.random.default_rng(0).normal(size=(B, F)).astype("float32")
    zb = z.copy()
    zb[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        L.nt_xent(z, zb)
    with pytest.raises(ValueError, match="NaN or Inf"):
        L.vicreg(zb, z)
    with pytest.raises(ValueError, match="NaN or Inf"):
        L.mutual_information_term(z, z, z, zb)


def test_value_checks_are_off_only_within_no_value_checks():
    """The training step turns the losses' NaN checks off (each is a host
    sync on PyTorch; the model's guard reports a bad batch): within
    `no_value_checks` a NaN passes through as a NaN loss, and after it,
    also after an error inside it, the check is back."""
    from keras_adadim._validation import no_value_checks

    z = np.random.default_rng(0).normal(size=(B, F)).astype("float32")
    zb = z.copy()
    zb[1, 2] = np.nan
    with no_value_checks():
        with no_value_checks():  # nested
            pass
        assert np.isnan(float(ops.convert_to_numpy(L.info_nce(z, zb))))
    with pytest.raises(RuntimeError):
        with no_value_checks():
            raise RuntimeError
    with pytest.raises(ValueError, match="NaN or Inf"):
        L.info_nce(z, zb)


@pytest.mark.parametrize("tau", [0.0, -0.1, float("nan")])
def test_non_positive_temperature_raises(tau):
    """temperature <= 0 (or NaN) is rejected by every NT-Xent entry point."""
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        L.nt_xent(SPEC_Z1, SPEC_Z2, temperature=tau)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        L.adadim_loss(SPEC_Z1, SPEC_Z2, alpha=0.5, temperature=tau)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        L.NTXent(temperature=tau)(SPEC_Z1, SPEC_Z2)


def test_unknown_pairing_raises():
    """An unknown pairing name is rejected, listing the valid ones."""
    z = SPEC_Z1
    with pytest.raises(ValueError, match="`pairing` must be one of"):
        L.mutual_information_term(z, z, z, z, pairing="diagonal")
    with pytest.raises(ValueError, match="cross"):
        L.adadim_loss(z, z, z, z, alpha=0.5, beta=0.1, pairing="Cross")


@pytest.mark.parametrize("order", [0, -1, -0.5])
def test_non_positive_order_raises(order):
    """A Renyi order <= 0 in L_mut is rejected."""
    z = SPEC_Z1
    with pytest.raises(ValueError, match="order must be positive"):
        L.mutual_information_term(z, z, z, z, order=order)


# ---------------------------------------------------------------------------
# 8. Keras Loss wrappers
# ---------------------------------------------------------------------------


def _wrappers():
    return [
        (L.NTXent(), lambda a, b: ref.nt_xent(a, b, 0.1)),
        (L.NTXent(temperature=0.5), lambda a, b: ref.nt_xent(a, b, 0.5)),
        (L.VICReg(), ref.vicreg),
        (L.VICReg(sim_weight=3.0, var_weight=2.0, cov_weight=0.5,
                  epsilon=1e-2),
         lambda a, b: ref.vicreg(a, b, 3.0, 2.0, 0.5, 1e-2)),
        (L.AdaDimLoss(), lambda a, b: ref.adadim_loss(a, b, alpha=0.5)),
        (L.AdaDimLoss(alpha=0.2, temperature=0.3),
         lambda a, b: ref.adadim_loss(a, b, alpha=0.2, temperature=0.3)),
    ]


def test_loss_wrappers_match_functions_and_reference():
    """NTXent, VICReg and AdaDimLoss give the numbers of the functions."""
    z1, z2 = _views(np.random.default_rng(31), B, F)
    assert _f(L.NTXent(temperature=0.5)(z1, z2)) == _f(L.nt_xent(z1, z2, 0.5))
    assert _f(L.VICReg()(z1, z2)) == pytest.approx(_f(L.vicreg(z1, z2)),
                                                   rel=1e-7)
    assert _f(L.AdaDimLoss(alpha=0.2)(z1, z2)) == pytest.approx(
        _f(L.adadim_loss(z1, z2, alpha=0.2)), rel=1e-7)
    for loss, want in _wrappers():
        assert _f(loss(z1, z2)) == pytest.approx(want(z1, z2), rel=1e-4)
    assert _f(L.NTXent()(SPEC_Z1, SPEC_Z2)) == pytest.approx(1.0604590199,
                                                             abs=1e-5)
    assert _f(L.VICReg()(SPEC_Z1, SPEC_Z2)) == pytest.approx(23.9526159117,
                                                             abs=1e-5)


def test_loss_wrappers_serialize_round_trip():
    """serialize/deserialize restores class, config and value; the classes
    are registered under the package 'keras_adadim'."""
    z1, z2 = _views(np.random.default_rng(32), B, F)
    for loss, _ in _wrappers():
        config = keras.losses.serialize(loss)
        cls = type(loss).__name__
        assert config["registered_name"] == f"keras_adadim>{cls}"
        restored = keras.losses.deserialize(config)
        assert type(restored) is type(loss)
        assert restored.get_config() == loss.get_config()
        assert _f(restored(z1, z2)) == _f(loss(z1, z2))
        by_name = keras.saving.get_registered_object(f"keras_adadim>{cls}")
        assert by_name is type(loss)


def test_loss_wrapper_in_model_compile():
    """NTXent works as a compiled Keras loss: fit reports the NT-Xent of the
    model's outputs against the targets."""
    z1, z2 = _views(np.random.default_rng(33), B, F)
    model = keras.Sequential([keras.Input((F,)),
                              keras.layers.Identity()])
    model.compile(loss=L.NTXent(temperature=0.5))
    got = model.evaluate(z1, z2, batch_size=B, verbose=0)
    assert got == pytest.approx(ref.nt_xent(z2, z1, 0.5), rel=1e-4)
