"""keras_adadim.analysis: the Gaussian simulation (paper Section 3.1, Figure 2),
the correlation table (Table 1) and the plots. Runs on every backend."""

import importlib
import os

import numpy as np
import pytest
from scipy import stats

from keras_adadim.analysis import correlation_table
from keras_adadim.analysis import format_correlation_table
from keras_adadim.analysis import gaussian_simulation
from keras_adadim.analysis import pca_project
from keras_adadim.analysis import plots
from keras_adadim.analysis import projection_mutual_information
from keras_adadim.metrics import gaussian_mutual_information
from keras_adadim.metrics import gaussian_mutual_information_from_covariance

# A reduced Figure 2 (5 repetitions instead of 100, fewer sweep points); the
# shapes repeat (m = 32 in both sweeps) to keep JAX's compilations few.
SIM_KWARGS = dict(
    n_features=(12, 32, 96),
    fixed_stds=(1.0, 8.0),
    cluster_stds=(0.25, 1.0, 4.0, 8.0, 16.0, 32.0),
    fixed_features=(32,),
    repetitions=5,
    seed=0,
    verbose=0,
)


@pytest.fixture(scope="module")
def simulation():
    return gaussian_simulation(**SIM_KWARGS)


# --------------------------------------------------------------- simulation


def test_simulation_result_structure(simulation):
    assert simulation.mi_vs_features.shape == (2, 2, 3, 5)
    assert simulation.mi_vs_std.shape == (2, 1, 6, 5)
    assert np.all(np.isfinite(simulation.mi_vs_features))
    assert np.all(np.isfinite(simulation.mi_vs_std))
    panels = simulation.panels()
    assert sorted(panels) == ["a", "b", "c", "d"]
    assert [panels[p]["n_components"] for p in "abcd"] == [2, 10, 10, 2]
    assert panels["a"]["mean"].shape == (2, 3)
    assert panels["c"]["std"].shape == (1, 6)
    assert simulation.to_dict()["repetitions"] == 5


def test_simulation_is_reproducible_from_seed():
    kwargs = dict(SIM_KWARGS, repetitions=2, sweeps=("std",),
                  cluster_stds=(1.0, 4.0))
    a = gaussian_simulation(**kwargs).mi_vs_std
    b = gaussian_simulation(**kwargs).mi_vs_std
    c = gaussian_simulation(**dict(kwargs, seed=1)).mi_vs_std
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Repetitions draw different data sets (the paper's design).
    assert a[0, 0, 0, 0] != a[0, 0, 0, 1]


@pytest.mark.parametrize("n", [2, 10])
def test_mi_grows_with_number_of_features(simulation, n):
    """Figure 2 a, b: more (decorrelated) features -> larger I(R; Z), whatever
    the projection and the cluster std."""
    mean, std = simulation.mean_std("features", n)
    for curve in range(mean.shape[0]):
        steps = np.diff(mean[curve])
        assert np.all(steps > 0), (n, simulation.fixed_stds[curve], mean)
        # The growth is large next to the spread over repetitions.
        assert mean[curve, -1] - mean[curve, 0] > 5 * std[curve].max()


def test_mi_rises_then_plateaus_with_std_for_10_components(simulation):
    """Figure 2 c: n = 10, I(R; Z) first rises with the cluster std, then
    plateaus."""
    mean = simulation.mean_std("std", 10)[0][0]
    peak = int(np.argmax(mean))
    rise = mean[peak] - mean[0]
    assert 0 < peak < mean.size - 1, mean
    assert rise > 5.0, mean  # nats
    assert np.all(np.diff(mean[: peak + 1]) > 0), mean
    # After the peak the curve stays within 10% of the rise of its maximum.
    assert mean[peak] - mean[peak:].min() < 0.1 * rise, mean


def test_mi_falls_with_std_for_2_components(simulation):
    """Figure 2 d: n = 2, I(R; Z) falls as the cluster std grows. It is flat
    (within 0.05 nat) while the std is small next to the spread of the
    centres, then falls."""
    mean, std = simulation.mean_std("std", 2)
    mean, std = mean[0], std[0]
    assert mean[-1] < mean[0] - 1.0, mean
    assert np.all(np.diff(mean) < 0.05), mean
    assert np.all(np.diff(mean[2:]) < 0), mean  # from std = 4 on


def test_absolute_ridge_does_not_reproduce_panel_d():
    """Documents the design choice: with an absolute ridge, widening the
    clusters inflates the whole cloud relative to a fixed noise floor and
    I(R; Z) for n = 2 rises instead of falling (see the module docstring)."""
    result = gaussian_simulation(**dict(
        SIM_KWARGS, sweeps=("std",), cluster_stds=(1.0, 32.0), repetitions=2,
        ridge=1.0, ridge_mode="absolute"))
    mean = result.mean_std("std", 2)[0][0]
    assert mean[-1] > mean[0]


def test_simulation_bad_input():
    with pytest.raises(ValueError, match="exceed the largest number"):
        gaussian_simulation(n_features=(8, 20), verbose=0, repetitions=1)
    with pytest.raises(ValueError, match="ridge"):
        gaussian_simulation(ridge=0.0, verbose=0, repetitions=1)
    with pytest.raises(ValueError, match="ridge_mode"):
        gaussian_simulation(ridge_mode="foo", verbose=0, repetitions=1)
    with pytest.raises(ValueError, match="repetitions"):
        gaussian_simulation(repetitions=0, verbose=0)
    with pytest.raises(ValueError, match="cluster_stds"):
        gaussian_simulation(cluster_stds=(1.0, -1.0), verbose=0)
    with pytest.raises(ValueError, match="sweeps"):
        gaussian_simulation(sweeps=("nope",), verbose=0)
    with pytest.raises(ValueError, match="not simulated"):
        gaussian_simulation(**dict(SIM_KWARGS, repetitions=1, sweeps=("std",),
                                   cluster_stds=(1.0,))).mean_std("std", 3)


# ----------------------------------------------- closed form, analytic cases


def test_gaussian_mi_bivariate_analytic():
    """I(X; Y) = -1/2 ln(1 - rho^2) for a bivariate normal with correlation
    rho: exactly from the covariance, and within sampling error from draws."""
    rng = np.random.default_rng(0)
    for rho in (0.3, 0.8, 0.95):
        sigma = np.array([[1.0, rho], [rho, 1.0]], "float32")
        exact = -0.5 * np.log(1 - rho**2)
        got = float(gaussian_mutual_information_from_covariance(sigma, 1))
        np.testing.assert_allclose(got, exact, rtol=1e-5)
        x = rng.standard_normal((20000, 1))
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((20000, 1))
        sampled = float(gaussian_mutual_information(
            x.astype("float32"), y.astype("float32")))
        np.testing.assert_allclose(sampled, exact, rtol=0.03, atol=0.01)


def test_gaussian_mi_noisy_linear_channel():
    """Z = A R + N(0, s^2 I): I(R; Z) = 1/2 ln |A Sigma_R A^T / s^2 + I|,
    checked from the joint block covariance."""
    rng = np.random.default_rng(1)
    m, n, s2 = 6, 3, 0.5
    b = rng.standard_normal((m, m))
    sigma_r = b @ b.T / m + 0.1 * np.eye(m)
    a = rng.standard_normal((n, m))
    sigma_z = a @ sigma_r @ a.T + s2 * np.eye(n)
    joint = np.block([[sigma_r, sigma_r @ a.T], [a @ sigma_r, sigma_z]])
    expected = 0.5 * np.linalg.slogdet(a @ sigma_r @ a.T / s2 + np.eye(n))[1]
    got = float(gaussian_mutual_information_from_covariance(
        joint.astype("float32"), m))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def _data_with_covariance(lambdas, n_samples=400, seed=0):
    """Samples whose sample covariance is exactly diag(lambdas)."""
    rng = np.random.default_rng(seed)
    m = len(lambdas)
    x = rng.standard_normal((n_samples, m))
    x -= x.mean(axis=0)
    q, _ = np.linalg.qr(x)  # orthonormal columns, orthogonal to ones
    return np.sqrt(n_samples - 1) * q * np.sqrt(np.asarray(lambdas))


@pytest.mark.parametrize("ridge_mode", ["relative", "absolute"])
def test_projection_mi_matches_ridge_formula(ridge_mode):
    """Z = top-n PCA of R with Cov(R) = diag(lambda): with eps added to the
    joint covariance, (R_i, Z_i) are independent 2x2 blocks, so
    I = sum_{i<=n} 1/2 ln[(l_i + eps)^2 / ((l_i + eps)^2 - l_i^2)]."""
    lambdas = np.array([9.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    r = _data_with_covariance(lambdas)
    ridge = 1e-2
    for n in (2, 5):
        z = pca_project(r, n)
        np.testing.assert_allclose(np.abs(z), np.abs(r[:, :n]), atol=1e-8)
        if ridge_mode == "relative":
            eps = ridge * (lambdas.sum() + lambdas[:n].sum()) / (len(lambdas) + n)
        else:
            eps = ridge
        top = lambdas[:n]
        expected = np.sum(
            0.5 * np.log((top + eps) ** 2 / ((top + eps) ** 2 - top**2)))
        got = projection_mutual_information(
            r, z, ridge=ridge, ridge_mode=ridge_mode)
        np.testing.assert_allclose(got, expected, rtol=2e-3)


def test_projection_mi_equals_library_gaussian_mi():
    """The simulation's MI is the library's gaussian_mutual_information on the
    same samples with the same (relative) ridge."""
    rng = np.random.default_rng(3)
    r = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12)) + 5.0
    z = pca_project(r, 3)
    joint = np.concatenate([r, z], axis=1)
    eps = 1e-2 * np.trace(np.cov(joint.T)) / joint.shape[1]
    expected = float(gaussian_mutual_information(
        r.astype("float32"), z.astype("float32"), ridge=eps))
    got = projection_mutual_information(r, z, ridge=1e-2)
    np.testing.assert_allclose(got, expected, rtol=2e-3)


def test_projection_mi_non_finite_raises(monkeypatch):
    """A non-finite determinant (e.g. a ridge too small for float32) is an
    error that names the fix, not a silent inf in the figure."""
    module = importlib.import_module(
        "keras_adadim.analysis.gaussian_simulation")

    monkeypatch.setattr(
        module, "gaussian_mutual_information_from_covariance",
        lambda sigma, r_dim, ridge=0.0: np.float32("inf"))
    r = _data_with_covariance([4.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="Increase `ridge`"):
        projection_mutual_information(r, pca_project(r, 1))


def test_relative_ridge_is_scale_invariant():
    r = _data_with_covariance([4.0, 2.0, 1.0, 0.5, 0.2])
    z = pca_project(r, 2)
    rel = [projection_mutual_information(c * r, c * z) for c in (1.0, 10.0)]
    np.testing.assert_allclose(rel[0], rel[1], rtol=1e-3)
    absolute = [projection_mutual_information(
        c * r, c * z, ridge=0.05, ridge_mode="absolute") for c in (1.0, 4.0)]
    # An absolute noise floor adds about n ln(c) nats (n = 2, c = 4).
    np.testing.assert_allclose(absolute[1] - absolute[0], 2 * np.log(4.0),
                               rtol=0.05)


# ------------------------------------------------------- correlation table


def _runs(seed=0, n=8):
    rng = np.random.default_rng(seed)
    h = rng.uniform(3.0, 6.0, n)
    i = rng.uniform(0.5, 2.5, n)
    acc = 0.4 + 0.05 * h - 0.1 * i + 0.02 * rng.standard_normal(n)
    return h, i, acc


def test_correlation_table_equals_scipy_pearsonr():
    h, i, acc = _runs()
    table = correlation_table(
        [{"accuracy": a, "H(R)": x, "I(R;Z)": y} for a, x, y in zip(acc, h, i)])
    assert table["n_runs"] == 8
    for name, column in (("H(R)", h), ("I(R;Z)", i),
                         ("I(R;Z)/H(R)", i / h)):
        ref = stats.pearsonr(acc, column)
        np.testing.assert_allclose(table[name]["abs_r"], abs(ref[0]),
                                   rtol=1e-12)
        np.testing.assert_allclose(table[name]["r"], ref[0], rtol=1e-12)
        np.testing.assert_allclose(table[name]["p_value"], ref[1], rtol=1e-6)
    # Dict of columns with custom names gives the same numbers.
    table2 = correlation_table({"acc": acc, "h": h, "i": i},
                               accuracy_key="acc", entropy_key="h", mi_key="i")
    np.testing.assert_allclose(table2["i/h"]["abs_r"],
                               table["I(R;Z)/H(R)"]["abs_r"])
    text = format_correlation_table(table)
    assert "I(R;Z)/H(R)" in text and text.count("\n") == 4


def test_correlation_table_bad_input():
    h, i, acc = _runs()
    with pytest.raises(ValueError, match="different lengths"):
        correlation_table({"accuracy": acc, "H(R)": h[:-1], "I(R;Z)": i})
    with pytest.raises(ValueError, match="at least 3 runs"):
        correlation_table({"accuracy": acc[:2], "H(R)": h[:2],
                           "I(R;Z)": i[:2]})
    with pytest.raises(ValueError, match="constant"):
        correlation_table({"accuracy": acc, "H(R)": np.full(8, 0.1),
                           "I(R;Z)": i})
    with pytest.raises(ValueError, match="constant"):
        correlation_table({"accuracy": np.full(8, 0.7), "H(R)": h,
                           "I(R;Z)": i})
    with pytest.raises(ValueError, match="Missing column"):
        correlation_table({"accuracy": acc, "H(R)": h})
    with pytest.raises(ValueError, match="Run 1 lacks"):
        correlation_table([{"accuracy": 1, "H(R)": 1, "I(R;Z)": 1},
                           {"accuracy": 1, "H(R)": 1}])
    with pytest.raises(ValueError, match="NaN"):
        correlation_table({"accuracy": acc, "H(R)": h,
                           "I(R;Z)": np.where(np.arange(8) == 3, np.nan, i)})
    with pytest.raises(ValueError, match="ratio"):
        correlation_table({"accuracy": acc, "H(R)": np.where(
            np.arange(8) == 0, 0.0, h), "I(R;Z)": i})
    with pytest.raises(ValueError, match="list of dicts"):
        correlation_table(np.zeros((3, 3)))


# ------------------------------------------------------------------- plots


def _check_files(paths, min_png=15_000):
    assert [os.path.splitext(p)[1] for p in paths] == [".png", ".svg"]
    for p in paths:
        assert os.path.isfile(p)
    assert os.path.getsize(paths[0]) > min_png
    assert os.path.getsize(paths[1]) > 10_000


def _check_axes(fig):
    visible = [ax for ax in fig.axes if ax.get_visible()]
    plotted = [ax for ax in visible if ax.get_label() != "<colorbar>"]
    assert plotted
    for ax in plotted:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    return plotted


def test_figure2_plot(simulation, tmp_path):
    fig, paths = plots.figure2(simulation, tmp_path / "fig" / "figure2")
    _check_files(paths)
    axes = _check_axes(fig)
    assert len(axes) == 4
    assert axes[2].get_xscale() == "log"


def test_training_dynamics_plot(tmp_path):
    epochs = 30
    t = np.arange(epochs)
    history = {
        "H(R)": list(4 + np.tanh(t / 8)),
        "I(R;Z)": list(1 + 0.5 * np.sin(t / 6)),
        "uniformity": list(-1 - 2 * (1 - np.exp(-t / 10))),
        "alpha": [0.2] * 20 + [0.6] * 10,
        "loss": list(np.exp(-t / 10)),
    }
    history["I(R;Z)"][5] = float("nan")  # not computed this epoch
    fig, paths = plots.training_dynamics(history, tmp_path / "dyn.png")
    assert paths == [str(tmp_path / "dyn.png"), str(tmp_path / "dyn.svg")]
    _check_files(paths)
    assert len(_check_axes(fig)) == 4
    # Only some quantities, under custom names.
    fig, _ = plots.training_dynamics({"my_h": [1.0, 2.0, 3.0]}, None,
                                     keys={"entropy": "my_h"})
    assert len(_check_axes(fig)) == 1
    with pytest.raises(ValueError, match="none of the plotted"):
        plots.training_dynamics({"loss": [1.0, 0.5]})
    with pytest.raises(ValueError, match="not in the history"):
        plots.training_dynamics(history, keys={"entropy": "nope"})
    with pytest.raises(ValueError, match="different lengths"):
        plots.training_dynamics({"H(R)": [1.0, 2.0], "alpha": [0.1]})


def test_h_vs_i_plot(tmp_path):
    h, i, acc = _runs(n=10)
    runs = [{"H(R)": x, "I(R;Z)": y, "accuracy": a, "name": f"run{k}"}
            for k, (x, y, a) in enumerate(zip(h, i, acc))]
    fig, paths = plots.h_vs_i(runs, tmp_path / "h_vs_i")
    _check_files(paths)
    assert len(_check_axes(fig)) == 1
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel()
    with pytest.raises(ValueError, match="lacks"):
        plots.h_vs_i([{"H(R)": 1.0, "accuracy": 0.5}])
