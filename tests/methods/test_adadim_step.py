"""AdaDim's training step: its loss terms (computed with shared Gram
matrices, keras_adadim.losses.adadim.adadim_terms) equal the SPEC formulas
on the model's own outputs. (That the step reads nothing on the host, for
every method: test_methods.py.)"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_adadim as ka
import reference_numpy as ref
from keras_adadim.losses.adadim import adadim_terms
from keras_adadim.losses.adadim import centred_and_cosine_grams
from keras_adadim.losses.vicreg import centre_views
from keras_adadim.losses.vicreg import off_diagonal_mass
from keras_adadim.losses.vicreg import uses_sample_gram
from keras_adadim.losses.vicreg import vicreg_of_views
from keras_adadim.methods import Step
from keras_adadim.methods import get_method
from keras_adadim.models import heads
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder

BACKEND = keras.backend.backend()
B = 6


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), "float64")


def make_model(method="adadim", **kwargs):
    keras.utils.set_random_seed(1)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=4),
        mlp_projector(hidden_dim=32, output_dim=16),
        method=get_method(method, **kwargs),
    )
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    return model


def views(b=B, seed=0):
    x1 = np.random.default_rng(seed).random((b, 8, 8, 1)).astype("float32")
    return x1, np.roll(x1, 1, 2)


# Configurations whose sharing differs: z is NT-Xent's input (shared K_z),
# a predictor in between (nothing shared), a momentum branch (K of z1, z2,
# z1t, z2t from two similarity matrices), the "same" pairing, order 3.
CONFIGS = {
    "default": {},
    "predictor": {"predictor": "head"},
    "momentum": {"momentum": 0.99},
    "momentum+predictor": {"momentum": 0.99, "predictor": "head"},
    "same pairing, order 3": {"pairing": "same", "renyi_order": 3},
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_step_terms_equal_the_formulas_on_the_model_outputs(config):
    kwargs = dict(CONFIGS[config], alpha=0.5, gamma=0.1)
    if kwargs.get("predictor") == "head":
        kwargs["predictor"] = heads.predictor(hidden_dim=8, output_dim=16)
    model = make_model(**kwargs)
    with keras.StatelessScope():
        out = model(views(), training=True)
        rows = model.step_rows(out, training=False)
        terms = model.method.loss_terms(rows, Step(False, 0.0))
    r = {k: np_(v) for k, v in rows.items()}
    got = {k: float(np_(v)) for k, v in terms.items()}
    pairing = kwargs.get("pairing", "cross")
    order = kwargs.get("renyi_order", 2)
    q1, q2 = r.get("p1", r["z1"]), r.get("p2", r["z2"])

    def mut(z1, z2, r1, r2):
        return ref.mutual_information_term(z1, z2, r1, r2, pairing, order)

    if "z1t" in r:
        want = {
            "vicreg": 0.5 * (ref.vicreg(q1, r["z2t"]) + ref.vicreg(r["z1t"], q2)),
            "nce": 0.5 * (ref.nt_xent(q1, r["z2t"], 0.1)
                          + ref.nt_xent(r["z1t"], q2, 0.1)),
            "mut": 0.5 * (mut(r["z1"], r["z2"], r["r1"], r["r2"])
                          + mut(r["z1t"], r["z2t"], r["r1t"], r["r2t"])),
        }
    else:
        want = {
            "vicreg": ref.vicreg(q1, q2),
            "nce": ref.nt_xent(q1, q2, 0.1),
            "mut": mut(r["z1"], r["z2"], r["r1"], r["r2"]),
        }
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=2e-5, abs=1e-6), (k, got, want)
    assert want["mut"] > 1e-3  # L_mut is really measured, not a zero


@pytest.mark.parametrize("b,f", [(16, 8), (6, 16)])  # b > F and b < F
@pytest.mark.parametrize("use", [(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 1, 0),
                                 (0, 0, 1)])
def test_adadim_terms_equal_the_separate_formulas(b, f, use):
    """Each term of `adadim_terms` equals its SPEC formula (NumPy float64)
    whatever else is computed beside it; unused terms are exactly 0."""
    rng = np.random.default_rng(b + f)
    z1 = rng.normal(size=(b, f)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(b, f))).astype("float32")
    r1, r2 = (rng.normal(size=(b, 5)).astype("float32") for _ in range(2))
    rows = {"z1": z1, "z2": z2, "r1": r1, "r2": r2}
    got = adadim_terms(z1, z2, rows, tuple(bool(u) for u in use), 0.2)
    want = (ref.vicreg(z1, z2), ref.nt_xent(z1, z2, 0.2),
            ref.mutual_information_term(z1, z2, r1, r2))
    for name, on, w in zip(("vicreg", "nce", "mut"), use, want):
        v = float(np_(got[name]))
        assert v == (pytest.approx(w, rel=1e-5) if on else 0.0), name


def dead_features(b, f, scale, seed=3):
    """Two live dimensions of ``f``, two faint ones (``scale``), the rest
    zero: dimensional collapse, C almost diagonal."""
    rng = np.random.default_rng(seed)
    z = np.zeros((b, f), "float32")
    z[:, :2] = rng.normal(size=(b, 2)) * [3.0, 0.5]
    z[:, 2:4] = rng.normal(size=(b, 2)) * scale
    return z


def off_diagonal_gradient(z):
    """d/dz of sum_{i != j} C_ij^2, C = zc^T zc / (b - 1), in float64:
    4 / (b - 1) zc offdiag(C) (the centring passes it unchanged: the
    columns of zc sum to 0)."""
    z = np.asarray(z, "float64")
    zc = z - z.mean(0)
    dof = len(z) - 1
    c = zc.T @ zc / dof
    return 4.0 / dof * zc @ (c - np.diag(np.diag(c)))


def backend_gradient(fn, z):
    """Gradient of the scalar ``fn(z)`` on the active backend."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(fn)(ops.convert_to_tensor(z)))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(z)
        with tf.GradientTape() as tape:
            y = fn(x)
        return tape.gradient(y, x).numpy()
    import torch

    x = torch.tensor(z, requires_grad=True)
    fn(x).backward()
    return x.grad.numpy()


def off_diagonal(z):
    """sum_{i != j} C_ij^2 of one view, the way the step takes it."""
    zs = ops.expand_dims(ops.cast(z, "float32"), 0)
    zc, _ = centre_views(zs)
    dof = ops.cast(ops.shape(zs)[1], "float32") - 1.0
    return off_diagonal_mass(zc, ops.sum(ops.square(zc), axis=-2), dof)


def off_diagonal_f64(z):
    z = np.asarray(z, "float64")
    c = np.cov(z, rowvar=False)
    return float(np.sum(c ** 2) - np.sum(np.diag(c) ** 2))


@pytest.mark.parametrize("scale", [1e-3, 0.1])
def test_covariance_term_keeps_float32_precision_near_collapse(scale):
    """b >= F: the F x F covariance keeps every C_ij's own precision, so
    c(z) matches float64 however close to diagonal C is."""
    z = dead_features(64, 32, scale)
    assert not uses_sample_gram(64, 32)
    got = ka.losses.vicreg_components(z, z * 1.5)["covariance"]
    want = ref.vicreg_components(z, z * 1.5)["covariance"]
    assert float(np_(got)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("b, f", [(16, 48), (40, 48), (64, 32)])
def test_covariance_term_and_gradient_equal_float64_either_way(b, f):
    """Live features, both ways of taking sum_{i!=j} C_ij^2 (b x b Gram
    when b < F, F x F covariance otherwise): value and gradient equal the
    float64 formula to float32 round-off."""
    z = np.random.default_rng(b + f).normal(size=(b, f)).astype("float32")
    assert uses_sample_gram(b, f) == (b < f)
    assert float(np_(off_diagonal(z))) == pytest.approx(
        off_diagonal_f64(z), rel=1e-5
    )
    want = off_diagonal_gradient(z)
    np.testing.assert_allclose(
        backend_gradient(off_diagonal, z), want, rtol=1e-4,
        atol=1e-5 * np.abs(want).max(),
    )


@pytest.mark.parametrize("scale", [1e-3, 0.1])
def test_sample_gram_covariance_near_collapse_is_exact_to_the_diagonal(scale):
    """b < F with dying features: the b x b route's difference
    ||zc zc^T||^2 - sum Var^2 keeps the float32 precision of the diagonal's
    mass sum_j Var_j^2 (not of the tiny off-diagonal one), value and
    gradient; the whole VICReg loss, dominated by its variance term there,
    still equals float64 to 1e-6."""
    b, f = 64, 128
    z = dead_features(b, f, scale)
    var = z.astype("float64").var(0, ddof=1)
    got = float(np_(off_diagonal(z)))
    assert abs(got - off_diagonal_f64(z)) <= 1e-6 * np.sum(var ** 2)
    want = off_diagonal_gradient(z)
    # the scale of the diagonal's share: 4 / (b - 1) zc diag(C)
    zc = z - z.mean(0)
    diagonal_share = np.abs(4.0 / (b - 1) * zc * var).max()
    got_grad = backend_gradient(off_diagonal, z)
    assert np.abs(got_grad - want).max() <= 1e-5 * diagonal_share
    loss = float(np_(ka.losses.vicreg(z, z * 1.5)))
    assert loss == pytest.approx(ref.vicreg(z, z * 1.5), rel=1e-6)


@pytest.mark.parametrize(
    "case", ["collapsed", "offset", "low_rank", "dying", "zero row"])
def test_vicreg_and_nt_xent_from_the_shared_products(case):
    """b < F: AdaDim builds VICReg's centred Gram matrices and the blocks of
    NT-Xent's similarity matrix from three b x b x F products. Both losses
    equal float64 to 1e-6, also where rebuilding one from the other would
    cancel: views collapsed onto their mean, or far from the origin; and an
    all-zero row among rows far from the origin (a dead unit of a ReLU
    head) has zero similarities, as when S is formed directly."""
    rng = np.random.default_rng(5)
    b, f = 32, 96
    z = {
        "collapsed": rng.normal(size=(1, f)) * 5 + 1e-3 * rng.normal(size=(b, f)),
        "offset": 100.0 + rng.normal(size=(b, f)),
        "low_rank": rng.normal(size=(b, 4)) @ rng.normal(size=(4, f)),
        "dying": dead_features(b, f, 1e-3),
        "zero row": 10.0 + rng.normal(size=(b, f)),
    }[case]
    z1 = z.astype("float32")
    z2 = (1.5 * z + 0.1 * rng.normal(size=z.shape)).astype("float32")
    if case == "zero row":
        z1[3] = 0.0
    got = adadim_terms(z1, z2, None, (True, True, False), 0.2)
    assert float(np_(got["vicreg"])) == pytest.approx(ref.vicreg(z1, z2), rel=1e-6)
    zz = np.concatenate([z1, z2]).astype("float64")
    norms = np.linalg.norm(zz, axis=1, keepdims=True)
    zz /= np.where(norms > 0, norms, 1.0)
    s = zz @ zz.T
    assert float(np_(got["nce"])) == pytest.approx(
        nt_xent_of_similarity(s, 0.2), rel=1e-6
    )
    views = (ops.convert_to_tensor(z1), ops.convert_to_tensor(z2))
    zs = ops.stack(views)
    shared = centred_and_cosine_grams(zs, centre_views(zs), views)
    np.testing.assert_allclose(np_(shared["within"]),
                               [s[:b, :b], s[b:, b:]], atol=2e-6)
    np.testing.assert_allclose(np_(shared["cross"]), s[:b, b:], atol=2e-6)
    np.testing.assert_allclose(np_(shared["positives"]), np.diag(s[:b, b:]),
                               atol=2e-6)
    zc = np.stack([z1, z2]).astype("float64")
    zc -= zc.mean(1, keepdims=True)
    np.testing.assert_allclose(np_(shared["centred"]),
                               zc @ zc.transpose(0, 2, 1), rtol=1e-5,
                               atol=1e-5 * np.abs(zc @ zc.transpose(0, 2, 1)).max())


def nt_xent_of_similarity(s, tau):
    """float64 NT-Xent of the (2b, 2b) cosine-similarity matrix ``s``
    (tests/reference_numpy.py's needs non-zero rows)."""
    n = len(s)
    logits = np.where(np.eye(n, dtype=bool), -np.inf, s / tau)
    top = logits.max(1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(1))
    positives = np.diag(np.roll(s, n // 2, axis=1)) / tau
    return float(np.mean(lse - positives))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="only a TensorFlow graph "
                    "is traced with the batch size unknown (JAX and PyTorch "
                    "always see it), so only there does the route wait for "
                    "run time")
@pytest.mark.parametrize("b, f", [(16, 48), (64, 32)])
def test_route_chosen_at_run_time_when_the_batch_size_is_unknown(b, f):
    """A step traced for any batch size (TF's retrace of a partial batch)
    picks the b x b or F x F way when it runs; both give the float64
    value."""
    import tensorflow as tf

    spec = tf.TensorSpec((2, None, f), tf.float32)
    terms = tf.function(lambda zs: vicreg_of_views(zs), input_signature=[spec])
    z1 = np.random.default_rng(b).normal(size=(b, f)).astype("float32")
    z2 = (z1 + 0.3).astype("float32") * 0.7
    got = terms(np.stack([z1, z2]))
    want = ref.vicreg_components(z1, z2)
    for name in ("invariance", "variance", "covariance"):
        assert float(got[name]) == pytest.approx(want[name], rel=1e-5), name
