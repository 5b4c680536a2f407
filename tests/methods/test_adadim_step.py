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


@pytest.mark.parametrize("scale", [1e-3, 0.1])
def test_covariance_term_keeps_float32_precision_near_collapse(scale):
    """Two active dimensions of 128, two faint ones: C is almost diagonal,
    so its off-diagonal mass is tiny against its diagonal. c(z) still
    matches float64 (the b x b Gram shortcut ||zc zc^T||^2 - sum Var^2 was
    off by 1.4e-4 and 3.6e-3 here, so it is not used)."""
    rng = np.random.default_rng(3)
    b, f = 64, 128
    z = np.zeros((b, f), "float32")
    z[:, :2] = rng.normal(size=(b, 2)) * [3.0, 0.5]
    z[:, 2:4] = rng.normal(size=(b, 2)) * scale
    got = ka.losses.vicreg_components(z, z * 1.5)["covariance"]
    want = ref.vicreg_components(z, z * 1.5)["covariance"]
    assert float(np_(got)) == pytest.approx(want, rel=1e-5)
