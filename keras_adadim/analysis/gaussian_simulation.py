"""The Gaussian simulation of the paper's Section 3.1 and Appendix B.3
(Figure 2).

R is drawn with ``sklearn.datasets.make_blobs`` (1,000 samples, 5 isotropic
clusters), Z is R projected by PCA onto its top n components (n = 2 stands for
late training, when R and Z have diverged; n = 10 for early training), and
I(R; Z) is the closed-form mutual information of a joint Gaussian,
``keras_adadim.metrics.gaussian_mutual_information_from_covariance`` (the
formula lives there only), on the joint sample covariance. Two sweeps, each
repeated (100 times by default) on freshly generated data:

* the number of features m of R, at fixed cluster standard deviation(s)
  (Figure 2 a, b: the "feature decorrelation" route to a larger H(R));
* the cluster standard deviation, at fixed m (Figure 2 c, d: the "sample
  uniformity" route).

The singular joint covariance
-----------------------------
Z = PCA(R) is a deterministic linear function of R, so the joint covariance of
(R, Z) is singular and the exact I(R; Z) is infinite (``|Sigma| = 0``). Any
finite number is I(R; Z) *at a resolution*: we add ``eps * I`` to the joint
sample covariance (equivalently, observe R and Z through independent Gaussian
noise of variance ``eps``). For a top-n PCA projection this gives, to first
order, ``I ~ 1/2 * sum_{i<=n} ln(lambda_i / (2 eps))`` where ``lambda_i`` are
the variances captured by the n components.

The resolution must scale with the data. True mutual information does not
change when R is rescaled, but with a fixed (absolute) ``eps`` multiplying the
data by c adds ``n ln c`` nats, so widening the clusters would "increase"
I(R; Z) merely by inflating the whole cloud relative to a fixed noise floor.
Hence the default ``ridge_mode="relative"``: ``eps = ridge * tr(Sigma) / k``,
``ridge`` times the mean per-coordinate variance of the joint (R, Z) vector
(k = m + n coordinates). I(R; Z) is then invariant to a global rescaling of the
data and reads as the log of the share of R's variance the n components keep,
which is the quantity the paper's argument is about ("the projection cannot
capture the variance along certain dimensions"). ``ridge_mode="absolute"``
(``eps = ridge``) is available for comparison; with it, I(R; Z) for n = 2
*rises* with the cluster standard deviation, contrary to Figure 2 d, for the
reason just given. ``ridge`` (default 1e-2) must be small next to 1; the
trends do not depend on its exact value, only the offset of the curves does
(checked for 1e-3, 1e-2 and 3e-2). The determinants are taken in float32 on
a covariance whose condition number is about
``(m + n) * (share of variance on the top axis) / ridge``; with the default
the library's float32 result matches a float64 computation to < 1e-3 nats
for m <= 128. A non-finite result raises a ValueError that says to increase
``ridge``.
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import numpy as np

from keras_adadim.metrics import gaussian_mutual_information_from_covariance

DEFAULT_N_FEATURES = (12, 16, 24, 32, 48, 64, 96, 128)
DEFAULT_FIXED_STDS = (1.0, 4.0, 8.0)
DEFAULT_CLUSTER_STDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
DEFAULT_FIXED_FEATURES = (50,)
DEFAULT_COMPONENTS = (2, 10)
RIDGE_MODES = ("relative", "absolute")


@dataclasses.dataclass
class GaussianSimulationResult:
    """Raw I(R; Z) values (nats) of both sweeps, with their settings.

    ``mi_vs_features[c, s, j, r]``: n = ``components[c]``, cluster std
    ``fixed_stds[s]``, m = ``n_features[j]``, repetition r.
    ``mi_vs_std[c, f, j, r]``: n = ``components[c]``, m = ``fixed_features[f]``,
    cluster std ``cluster_stds[j]``, repetition r.
    ``None`` for a sweep that was not run.
    """

    components: np.ndarray
    n_features: np.ndarray
    fixed_stds: np.ndarray
    cluster_stds: np.ndarray
    fixed_features: np.ndarray
    mi_vs_features: np.ndarray | None
    mi_vs_std: np.ndarray | None
    repetitions: int
    n_samples: int
    centers: int
    ridge: float
    ridge_mode: str
    seed: int | None

    def mean_std(self, sweep, n_components):
        """(mean, std) over repetitions for one panel: ``sweep`` is
        ``"features"`` or ``"std"``; arrays of shape (curves, sweep values)."""
        values = self._sweep(sweep)
        c = self._component_index(n_components)
        return values[c].mean(axis=-1), values[c].std(axis=-1)

    def panels(self):
        """The four panels of Figure 2 as a dict of plain dicts:
        ``"a"``/``"b"``: I vs m for n = 2/10 (one curve per fixed std),
        ``"c"``/``"d"``: I vs std for n = 10/2 (one curve per fixed m).
        Panels whose sweep was not run are omitted."""
        out = {}
        layout = (
            ("a", "features", 2),
            ("b", "features", 10),
            ("c", "std", 10),
            ("d", "std", 2),
        )
        for name, sweep, n in layout:
            if self._sweep_or_none(sweep) is None or n not in self.components:
                continue
            mean, std = self.mean_std(sweep, n)
            if sweep == "features":
                x, curves, curve_name = (
                    self.n_features, self.fixed_stds, "cluster_std")
            else:
                x, curves, curve_name = (
                    self.cluster_stds, self.fixed_features, "n_features")
            out[name] = {
                "sweep": sweep,
                "n_components": n,
                "x": x,
                "curve_parameter": curve_name,
                "curves": curves,
                "mean": mean,
                "std": std,
            }
        return out

    def to_dict(self):
        """Plain dict of the fields (arrays as lists), e.g. for JSON."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = (
                value.tolist() if isinstance(value, np.ndarray) else value
            )
        return out

    def _sweep_or_none(self, sweep):
        if sweep == "features":
            return self.mi_vs_features
        if sweep == "std":
            return self.mi_vs_std
        raise ValueError(f"`sweep` must be 'features' or 'std'; got {sweep!r}.")

    def _sweep(self, sweep):
        values = self._sweep_or_none(sweep)
        if values is None:
            raise ValueError(f"The {sweep!r} sweep was not run.")
        return values

    def _component_index(self, n_components):
        hits = np.flatnonzero(self.components == n_components)
        if hits.size == 0:
            raise ValueError(
                f"n_components={n_components} was not simulated; available: "
                f"{self.components.tolist()}."
            )
        return int(hits[0])


def pca_project(r, n_components):
    """Scores of ``r`` (n, m) on its top ``n_components`` principal axes
    (NumPy, float64; eigen-decomposition of the sample covariance)."""
    r = np.asarray(r, dtype="float64")
    centred = r - r.mean(axis=0, keepdims=True)
    cov = centred.T @ centred / (r.shape[0] - 1)
    _, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
    top = vectors[:, ::-1][:, :n_components]
    return centred @ top


def projection_mutual_information(r, z, ridge=1e-2, ridge_mode="relative"):
    """Closed-form Gaussian I(R; Z) for samples ``r`` (n, m) and ``z`` (n, k)
    where Z may be a deterministic function of R, regularised by a ridge on
    the joint covariance (see the module docstring): ``ridge_mode`` =
    ``"relative"`` adds ``ridge * tr(Sigma) / (m + k)``, ``"absolute"`` adds
    ``ridge``. Returns a Python float (nats).

    The joint sample covariance (unbiased) is formed in NumPy float64 and
    passed to ``keras_adadim.metrics.gaussian_mutual_information_from_covariance``
    (the one implementation of the formula, also behind
    ``gaussian_mutual_information``). Forming it in float64 avoids float32
    cancellation on uncentred data, and handing the backend only the
    (m + k)-square matrix keeps JAX from compiling the data-sized ops anew for
    every (n, m) of a sweep.
    """
    r = np.asarray(r, dtype="float64")
    z = np.asarray(z, dtype="float64")
    if r.ndim != 2 or z.ndim != 2 or r.shape[0] != z.shape[0]:
        raise ValueError(
            "`r` and `z` must be 2-D with the same number of rows; got shapes "
            f"{r.shape} and {z.shape}.")
    if r.shape[0] < 2:
        raise ValueError("A covariance needs at least 2 samples.")
    if ridge_mode not in RIDGE_MODES:
        raise ValueError(
            f"`ridge_mode` must be one of {RIDGE_MODES}; got {ridge_mode!r}.")
    joint = np.concatenate([r, z], axis=1)
    centred = joint - joint.mean(axis=0, keepdims=True)
    sigma = centred.T @ centred / (joint.shape[0] - 1)
    if ridge_mode == "relative":
        eps = ridge * np.trace(sigma) / sigma.shape[0]
    else:
        eps = ridge
    mi = float(
        keras.ops.convert_to_numpy(
            gaussian_mutual_information_from_covariance(
                sigma.astype("float32"), r.shape[1], ridge=float(eps)))
    )
    if not np.isfinite(mi):
        raise ValueError(
            f"I(R; Z) is not finite (got {mi}) for R of shape {r.shape} and Z "
            f"of shape {z.shape}: the ridged joint covariance (ridge={ridge}, "
            f"ridge_mode={ridge_mode!r}) is too ill-conditioned for float32. "
            "Increase `ridge`.")
    return mi


def gaussian_simulation(
    n_features=DEFAULT_N_FEATURES,
    fixed_stds=DEFAULT_FIXED_STDS,
    cluster_stds=DEFAULT_CLUSTER_STDS,
    fixed_features=DEFAULT_FIXED_FEATURES,
    components=DEFAULT_COMPONENTS,
    repetitions=100,
    n_samples=1000,
    centers=5,
    ridge=1e-2,
    ridge_mode="relative",
    seed=0,
    sweeps=("features", "std"),
    verbose=1,
):
    """Run the Figure 2 simulation; returns a ``GaussianSimulationResult``.

    Args:
        n_features: values of m for the features sweep (each > max(components)).
        fixed_stds: cluster standard deviation(s) held fixed in that sweep
            (one curve each).
        cluster_stds: cluster standard deviations for the std sweep.
        fixed_features: m held fixed in the std sweep (one curve each).
        components: PCA sizes n of Z (the paper: 2 and 10).
        repetitions: freshly generated data sets per setting (paper: 100).
        n_samples, centers: ``make_blobs`` arguments (paper: 1000 and 5).
        ridge, ridge_mode: regularisation of the singular joint covariance;
            see the module docstring.
        seed: seeds every ``make_blobs`` call (a different ``random_state``
            per setting and repetition, all derived from ``seed``), so a run is
            reproducible; ``None`` draws fresh entropy, as the paper does.
        sweeps: which sweeps to run, a subset of ``("features", "std")``.
        verbose: 1 shows a ``keras.utils.Progbar`` over the repetitions.
    """
    try:
        from sklearn.datasets import make_blobs
    except ImportError as error:  # pragma: no cover - sklearn is a dependency
        raise ImportError(
            "The Gaussian simulation needs scikit-learn: pip install "
            "scikit-learn") from error

    components = _int_array(components, "components", minimum=1)
    n_features = _int_array(n_features, "n_features", minimum=2)
    fixed_features = _int_array(fixed_features, "fixed_features", minimum=2)
    fixed_stds = _float_array(fixed_stds, "fixed_stds")
    cluster_stds = _float_array(cluster_stds, "cluster_stds")
    sweeps = tuple(sweeps)
    unknown = set(sweeps) - {"features", "std"}
    if not sweeps or unknown:
        raise ValueError(
            f"`sweeps` must be a non-empty subset of ('features', 'std'); got "
            f"{sweeps!r}.")
    if int(repetitions) < 1:
        raise ValueError(f"`repetitions` must be >= 1; got {repetitions}.")
    repetitions = int(repetitions)
    if ridge_mode not in RIDGE_MODES:
        raise ValueError(
            f"`ridge_mode` must be one of {RIDGE_MODES}; got {ridge_mode!r}.")
    if not ridge > 0:
        raise ValueError(
            "`ridge` must be > 0: Z = PCA(R) is a deterministic function of R, "
            "so without a ridge the joint covariance is singular and I(R; Z) "
            f"is infinite. Got {ridge}.")
    n_max = int(components.max())
    checked = []
    if "features" in sweeps:
        checked.append(("n_features", n_features))
    if "std" in sweeps:
        checked.append(("fixed_features", fixed_features))
    for name, ms in checked:
        if ms.min() <= n_max:
            raise ValueError(
                f"Every value of `{name}` must exceed the largest number of "
                f"PCA components ({n_max}), since Z = PCA(R) needs n < m; got "
                f"{ms.tolist()}.")
        if int(n_samples) <= int(ms.max()) + n_max:
            raise ValueError(
                f"`n_samples` ({n_samples}) must exceed m + n "
                f"({int(ms.max()) + n_max}) so that the sample covariance of "
                "(R, Z) can be estimated.")

    settings = []  # (sweep, component-independent index tuple, m, std)
    if "features" in sweeps:
        for s, std in enumerate(fixed_stds):
            for j, m in enumerate(n_features):
                settings.append(("features", (s, j), int(m), float(std)))
    if "std" in sweeps:
        for f, m in enumerate(fixed_features):
            for j, std in enumerate(cluster_stds):
                settings.append(("std", (f, j), int(m), float(std)))

    mi_vs_features = (
        np.full((len(components), len(fixed_stds), len(n_features),
                 repetitions), np.nan)
        if "features" in sweeps else None)
    mi_vs_std = (
        np.full((len(components), len(fixed_features), len(cluster_stds),
                 repetitions), np.nan)
        if "std" in sweeps else None)

    states = np.random.SeedSequence(seed).generate_state(
        repetitions * len(settings), dtype=np.uint32
    ).reshape(repetitions, len(settings))

    progbar = keras.utils.Progbar(
        repetitions, unit_name="repetition") if verbose else None
    # The matrices are small (at most a few hundred columns): BLAS/OpenMP
    # threads only contend with each other (10-100x slower on a loaded
    # machine), so the loop runs single-threaded.
    with _single_threaded():
        _simulate(settings, states, repetitions, n_samples, centers,
                  components, n_max, ridge, ridge_mode, mi_vs_features,
                  mi_vs_std, progbar, make_blobs)

    return GaussianSimulationResult(
        components=components,
        n_features=n_features,
        fixed_stds=fixed_stds,
        cluster_stds=cluster_stds,
        fixed_features=fixed_features,
        mi_vs_features=mi_vs_features,
        mi_vs_std=mi_vs_std,
        repetitions=repetitions,
        n_samples=int(n_samples),
        centers=int(centers),
        ridge=float(ridge),
        ridge_mode=ridge_mode,
        seed=seed,
    )


def _simulate(settings, states, repetitions, n_samples, centers, components,
              n_max, ridge, ridge_mode, mi_vs_features, mi_vs_std, progbar,
              make_blobs):
    for rep in range(repetitions):
        for k, (sweep, (a, j), m, std) in enumerate(settings):
            r, _ = make_blobs(
                n_samples=int(n_samples), n_features=m, centers=int(centers),
                cluster_std=std, random_state=int(states[rep, k]))
            z_all = pca_project(r, n_max)
            target = mi_vs_features if sweep == "features" else mi_vs_std
            for c, n in enumerate(components):
                target[c, a, j, rep] = projection_mutual_information(
                    r, z_all[:, :n], ridge=ridge, ridge_mode=ridge_mode)
        if progbar is not None:
            progbar.update(rep + 1)


def _single_threaded():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _int_array(values, name, minimum):
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty list of integers.")
    if not np.all(np.equal(np.mod(arr, 1), 0)) or arr.min() < minimum:
        raise ValueError(
            f"`{name}` must hold integers >= {minimum}; got {arr.tolist()}.")
    return arr.astype("int64")


def _float_array(values, name):
    arr = np.atleast_1d(np.asarray(values, dtype="float64"))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) \
            or arr.min() <= 0:
        raise ValueError(
            f"`{name}` must be a non-empty list of positive numbers; got "
            f"{np.asarray(values).tolist()}.")
    return arr
