"""Cross-backend agreement: the same seeded inputs give the same losses and
metrics on TensorFlow, JAX and PyTorch (to float32 round-off).

This module drives all three backends itself, each in a subprocess with its
own KERAS_BACKEND, so it runs only in the TensorFlow pass of the suite.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import reference_numpy as ref

BACKENDS = ("tensorflow", "jax", "torch")
REPO = Path(__file__).resolve().parent.parent
MARKER = "CROSS_BACKEND_JSON:"

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="drives all three backends itself in subprocesses; run once, in "
    "the TensorFlow pass",
)

# Inputs are generated inside each subprocess from fixed seeds, so every
# backend (and the reference below) sees bit-identical float32 arrays.
INPUTS = """
import numpy as np
rng = np.random.default_rng(2024)
z1 = rng.normal(size=(12, 16)).astype("float32")
z2 = (z1 + 0.5 * rng.normal(size=(12, 16))).astype("float32")
r1 = rng.normal(size=(12, 24)).astype("float32")
r2 = (r1 + 0.3 * rng.normal(size=(12, 24))).astype("float32")
g_r = rng.normal(size=(64, 4)).astype("float32")
g_z = (g_r[:, :3] @ rng.normal(size=(3, 3))
       + rng.normal(size=(64, 3))).astype("float32")
zero = np.zeros((12, 16), "float32")
rank1 = np.outer(np.arange(1, 13), np.linspace(-1, 2, 16)).astype("float32")
x = np.concatenate([z1, z2], axis=0)
"""

SCRIPT = INPUTS + """
import json
import keras
from keras import ops
from keras_adadim import losses as L, metrics as M

def out(v):
    a = np.asarray(keras.ops.convert_to_numpy(v), dtype="float64")
    return a.tolist()

vic, comps = L.vicreg(z1, z2, return_components=True)
sigma = np.cov(np.concatenate([g_r, g_z], 1), rowvar=False).astype("float32")
res = {
    "nt_xent_0.1": L.nt_xent(z1, z2),
    "nt_xent_0.5": L.nt_xent(z1, z2, temperature=0.5),
    "vicreg": vic,
    "vicreg_invariance": comps["invariance"],
    "vicreg_variance": comps["variance"],
    "vicreg_covariance": comps["covariance"],
    "mut_cross": L.mutual_information_term(z1, z2, r1, r2),
    "mut_same": L.mutual_information_term(z1, z2, r1, r2, pairing="same"),
    "adadim": L.adadim_loss(z1, z2, r1, r2, alpha=0.3, beta=0.2),
    "NTXent": L.NTXent(temperature=0.2)(z1, z2),
    "VICReg": L.VICReg()(z1, z2),
    "AdaDimLoss": L.AdaDimLoss(alpha=0.6)(z1, z2),
    "effective_rank": M.effective_rank(x),
    "rankme": M.rankme(x),
    "singular_values": ops.sort(M.singular_values(x)),
    "eigenvalue_count": M.eigenvalue_count(x),
    "explained_variance_ratio": M.explained_variance_ratio(x),
    "normalized_eigenvalues": M.normalized_eigenvalues(x),
    "renyi_1": M.renyi_entropy(x, order=1),
    "renyi_2": M.renyi_entropy(x),
    "renyi_3": M.renyi_entropy(x, order=3),
    "normalized_gram": M.normalized_gram(z1),
    "mi_2": M.matrix_mutual_information(z1, r1),
    "mi_1": M.matrix_mutual_information(z1, r1, order=1),
    "uniformity": M.uniformity(x),
    "alignment": M.alignment(z1, z2),
    "gaussian_mi": M.gaussian_mutual_information(g_r, g_z),
    "gaussian_mi_ridge": M.gaussian_mutual_information(g_r, g_z, ridge=0.1),
    "gaussian_mi_cov": M.gaussian_mutual_information_from_covariance(sigma, 4),
    "zero_nt_xent": L.nt_xent(zero, zero),
    "zero_vicreg": L.vicreg(zero, zero),
    "zero_effective_rank": M.effective_rank(zero),
    "zero_rankme": M.rankme(zero),
    "zero_renyi_2": M.renyi_entropy(zero),
    "zero_uniformity": M.uniformity(zero),
    "rank1_effective_rank": M.effective_rank(rank1),
    "rank1_renyi_1": M.renyi_entropy(rank1, order=1),
    "rank1_mi": M.matrix_mutual_information(rank1, r1),
    "rank1_vicreg": L.vicreg(rank1, rank1),
    "negative_cosine": L.negative_cosine_similarity(z1, z2),
    "info_nce_0.2": L.info_nce(z1, z2, 0.2),
    "barlow_twins": L.barlow_twins(z1, z2),
    "barlow_twins_scaled": L.barlow_twins(z1, z2, 0.5, 0.1),
    "nnclr": L.nnclr(z1, z2, r1[:, :16], r2[:, :16], x, 0.2),
}
print(%r + json.dumps({k: out(v) for k, v in res.items()}))
""" % MARKER


def _reference():
    """The same quantities from the float64 NumPy reference."""
    ns = {}
    exec(INPUTS, ns)  # noqa: S102 - our own constant source, above
    z1, z2, r1, r2 = ns["z1"], ns["z2"], ns["r1"], ns["r2"]
    x, g_r, g_z = ns["x"], ns["g_r"], ns["g_z"]
    comps = ref.vicreg_components(z1, z2)
    return {
        "nt_xent_0.1": ref.nt_xent(z1, z2, 0.1),
        "nt_xent_0.5": ref.nt_xent(z1, z2, 0.5),
        "vicreg": ref.vicreg(z1, z2),
        "vicreg_invariance": comps["invariance"],
        "vicreg_variance": comps["variance"],
        "vicreg_covariance": comps["covariance"],
        "mut_cross": ref.mutual_information_term(z1, z2, r1, r2, "cross"),
        "mut_same": ref.mutual_information_term(z1, z2, r1, r2, "same"),
        "adadim": ref.adadim_loss(z1, z2, r1, r2, 0.3, 0.2),
        "NTXent": ref.nt_xent(z1, z2, 0.2),
        "VICReg": ref.vicreg(z1, z2),
        "AdaDimLoss": ref.adadim_loss(z1, z2, alpha=0.6),
        "effective_rank": ref.effective_rank(x),
        "rankme": ref.rankme(x),
        "eigenvalue_count": ref.eigenvalue_count(x),
        "explained_variance_ratio": ref.explained_variance_ratio(x),
        "renyi_1": ref.renyi_entropy(x, 1),
        "renyi_2": ref.renyi_entropy(x, 2),
        "renyi_3": ref.renyi_entropy(x, 3),
        "mi_2": ref.matrix_mutual_information(z1, r1, 2),
        "mi_1": ref.matrix_mutual_information(z1, r1, 1),
        "uniformity": ref.uniformity(x),
        "alignment": ref.alignment(z1, z2),
        "gaussian_mi": ref.gaussian_mutual_information(g_r, g_z),
        "gaussian_mi_ridge": ref.gaussian_mutual_information(g_r, g_z, 0.1),
        "zero_vicreg": 49.5,
        "rank1_effective_rank": 1.0,
        "zero_nt_xent": float(np.log(2 * 12 - 1)),
        "negative_cosine": ref.negative_cosine_similarity(z1, z2),
        "info_nce_0.2": ref.info_nce(z1, z2, 0.2),
        "barlow_twins": ref.barlow_twins(z1, z2),
        "barlow_twins_scaled": ref.barlow_twins(z1, z2, 0.5, 0.1),
        "nnclr": ref.nnclr(z1, z2, r1[:, :16], r2[:, :16], x, 0.2),
    }


@pytest.fixture(scope="module")
def backend_results():
    """Run SCRIPT once per backend, in parallel, and parse its JSON."""
    procs = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend,
                   TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
                   CUDA_VISIBLE_DEVICES="")
        procs[backend] = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results, start = {}, time.monotonic()
    for backend, proc in procs.items():
        remaining = max(1.0, 150.0 - (time.monotonic() - start))
        try:
            stdout, stderr = proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{backend} subprocess timed out")
        lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
        assert proc.returncode == 0 and lines, (
            f"{backend} failed (rc {proc.returncode}):\n{stderr[-3000:]}")
        results[backend] = json.loads(lines[-1][len(MARKER):])
    return results


def test_all_backends_report_the_same_quantities(backend_results):
    """Each backend computed every quantity, all finite."""
    keys = set(backend_results["tensorflow"])
    assert len(keys) > 30
    for backend in BACKENDS:
        assert set(backend_results[backend]) == keys, backend
        for key, value in backend_results[backend].items():
            assert np.all(np.isfinite(value)), (backend, key, value)


def test_backends_agree_to_float32_round_off(backend_results):
    """JAX and PyTorch equal TensorFlow to 1e-5 (relative and absolute)."""
    base = backend_results["tensorflow"]
    failures = []
    for backend in ("jax", "torch"):
        for key, value in backend_results[backend].items():
            a, b = np.asarray(value), np.asarray(base[key])
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5,
                                                      atol=1e-5):
                failures.append(f"{backend} {key}: {value} vs tf {base[key]}")
    assert not failures, "\n".join(failures)


def test_backend_values_match_reference(backend_results):
    """The agreed values are also right: each backend equals the float64
    reference to 1e-4 relative."""
    want = _reference()
    for backend in BACKENDS:
        got = backend_results[backend]
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (
                backend, key)
