"""Effective-rank definitions for AdaDim's adaptive alpha
(``effective_rank_of``, ``AdaDim(rank_definition=...)``; docs/alpha_definition.md),
on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_adadim as ka
from keras_adadim.methods.adadim import AdaDim
from keras_adadim.metrics.spectrum import RANK_DEFINITIONS
from keras_adadim.metrics.spectrum import effective_rank
from keras_adadim.metrics.spectrum import effective_rank_of
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def er_numpy(x, definition):
    """The reference, in float64 with NumPy's SVD."""
    x = np.asarray(x, "float64")
    if definition == "centered":
        x = x - x.mean(axis=0, keepdims=True)
    elif definition == "normalized":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = np.linalg.svd(x, compute_uv=False)
    if definition == "squared":
        s = s**2
    if s.sum() == 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("definition", RANK_DEFINITIONS)
@pytest.mark.parametrize("shape", [(16, 8), (8, 24), (32, 32)])
def test_matches_numpy(definition, shape, rng):
    # Uneven column scales and a shared offset, so that the four differ.
    x = rng.standard_normal(shape) * np.linspace(0.2, 3.0, shape[1]) + 0.7
    x = x.astype("float32")
    got = float(np_(effective_rank_of(x, definition)))
    assert got == pytest.approx(er_numpy(x, definition), rel=1e-4)


def test_definitions_differ_and_singular_is_today(rng):
    x = (rng.standard_normal((24, 12)) + 1.0).astype("float32")
    values = {d: float(np_(effective_rank_of(x, d))) for d in RANK_DEFINITIONS}
    assert values["singular"] == pytest.approx(float(np_(effective_rank(x))), rel=1e-6)
    assert values["squared"] < values["singular"]  # squaring sharpens p
    assert len({round(v, 3) for v in values.values()}) == 4


@pytest.mark.parametrize("definition", RANK_DEFINITIONS)
def test_rank_one_gives_one(definition, rng):
    u = rng.standard_normal((12, 1))
    v = rng.standard_normal((1, 7))
    x = (u @ v).astype("float32")
    assert float(np_(effective_rank_of(x, definition))) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("definition", RANK_DEFINITIONS)
@pytest.mark.parametrize("n, f", [(5, 5), (6, 10)])
def test_orthonormal_rows(definition, n, f, rng):
    q, _ = np.linalg.qr(rng.standard_normal((f, n)))
    x = (3.0 * q.T).astype("float32")  # scale-free: any multiple of Q
    if definition == "normalized":
        x = x * np.arange(1, n + 1, dtype="float32")[:, None]  # row norms vanish
    expected = n - 1 if definition == "centered" else n
    got = float(np_(effective_rank_of(x, definition)))
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("definition", RANK_DEFINITIONS)
def test_zero_matrix_is_zero(definition):
    assert float(np_(effective_rank_of(np.zeros((6, 4), "float32"), definition))) == 0.0


def test_unknown_definition_is_refused():
    with pytest.raises(ValueError, match="rank_definition"):
        effective_rank_of(np.eye(3, dtype="float32"), "eigen")
    with pytest.raises(ValueError, match="rank_definition"):
        AdaDim(rank_definition="eigen")


# ------------------------------------------------------------------- AdaDim
def test_adadim_option_round_trips():
    assert AdaDim().rank_definition == "singular"
    for d in RANK_DEFINITIONS:
        method = AdaDim(rank_definition=d)
        config = method.get_config()
        assert config["rank_definition"] == d
        assert AdaDim.from_config(config).rank_definition == d
    # A configuration saved before the option existed keeps today's default.
    old = AdaDim().get_config()
    del old["rank_definition"]
    assert AdaDim.from_config(old).rank_definition == "singular"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(AdaDim(rank_definition="squared")))
    assert restored.rank_definition == "squared"


def _model(definition):
    keras.utils.set_random_seed(0)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=4),
        mlp_projector(hidden_dim=32, output_dim=16),
        method=AdaDim(rank_definition=definition),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    return model


def test_alpha_updater_uses_the_definition(rng):
    """AlphaUpdater sets alpha = mean over batches of ER_d(concat(z1, z2)) /
    min(2b, F) under the model's definition (NumPy re-computation), and the
    definitions give different alphas from the same weights and batches."""
    b = 16
    x1 = rng.random((2 * b, 8, 8, 1)).astype("float32")
    x2 = np.clip(x1 + 0.1 * rng.standard_normal(x1.shape), 0, 1).astype("float32")
    batches = [((x1[i : i + b], x2[i : i + b]),) for i in (0, b)]
    weights = None
    alphas = {}
    for d in RANK_DEFINITIONS:
        model = _model(d)
        model(batches[0][0])
        if weights is None:
            weights = [np_(w) for w in model.weights]
        else:
            for w, value in zip(model.weights, weights):
                w.assign(value)
        expected = []
        with keras.StatelessScope():
            for (views,) in batches:
                out = model(views, training=True)
                z = np.concatenate([np_(out["z1"]), np_(out["z2"])])
                expected.append(er_numpy(z, d) / min(2 * b, 16))
        updater = ka.AlphaUpdater(every=1, batches=2, data=batches, verbose=0)
        updater.set_model(model)
        updater.on_train_begin()
        updater.on_epoch_begin(0)
        alphas[d] = float(np_(model.alpha))
        assert alphas[d] == pytest.approx(np.mean(expected), rel=1e-4)
        assert updater.updates[-1]["alpha"] == pytest.approx(alphas[d], rel=1e-6)
    assert alphas["squared"] < alphas["singular"]
    assert len({round(a, 4) for a in alphas.values()}) == 4
