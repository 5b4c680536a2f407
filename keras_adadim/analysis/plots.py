"""Plots of the paper's analyses (matplotlib, saved as PNG and SVG).

* ``figure2(result)``: the four panels of Figure 2 (Gaussian simulation),
  mean +/- std bands over the repetitions.
* ``training_dynamics(history)``: H(R), I(R; Z), uniformity and alpha over
  epochs (Figures 1b, 3, 5c, 12).
* ``h_vs_i(runs)``: H(R) against I(R; Z) across runs, coloured by accuracy
  (Figures 1a, 4).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas; pyplot
and the user's global backend are never touched. Each function returns
``(figure, paths)``; with ``path=None`` nothing is written. ``path`` is a file
stem: ``"out/figure2"`` writes ``out/figure2.png`` and ``out/figure2.svg``
(an extension given in ``path`` is dropped).
"""

from __future__ import annotations

import math
import os

import numpy as np

# History keys tried, in order, for each quantity of ``training_dynamics``.
DYNAMICS_KEYS = {
    "entropy": ("H(R)", "entropy", "r_entropy", "entropy_r", "h_r"),
    "mutual_information": (
        "I(R;Z)", "mutual_information", "mi", "i_rz", "r_z_mutual_information"),
    "uniformity": ("uniformity", "r_uniformity", "uniformity_r"),
    "alpha": ("alpha",),
}
DYNAMICS_LABELS = {
    "entropy": ("H(R) (nats)", "Entropy of the representation"),
    "mutual_information": ("I(R; Z) (nats)", "Mutual information I(R; Z)"),
    "uniformity": ("uniformity (lower = more uniform)", "Uniformity of R"),
    "alpha": ("alpha", "AdaDim alpha (0 = VICReg, 1 = SimCLR)"),
}
FORMATS = ("png", "svg")


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Plots need matplotlib: pip install 'keras-adadim[plot]' (or "
            "pip install matplotlib).") from error
    return Figure, FigureCanvasAgg


def _new_figure(figsize):
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=figsize, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, formats=FORMATS):
    if path is None:
        return []
    stem, ext = os.path.splitext(os.fspath(path))
    if ext.lower().lstrip(".") not in FORMATS:
        stem = os.fspath(path)
    directory = os.path.dirname(stem)
    if directory:
        os.makedirs(directory, exist_ok=True)
    paths = []
    for fmt in formats:
        out = f"{stem}.{fmt}"
        fig.savefig(out, format=fmt)
        paths.append(out)
    return paths


def _band(ax, x, mean, std, label, color):
    ax.plot(x, mean, marker="o", markersize=4, linewidth=1.8, color=color,
            label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.22,
                    linewidth=0)


def figure2(result, path=None):
    """The four panels of Figure 2 from a ``GaussianSimulationResult``:
    a) I(R; Z) vs m, n = 2; b) vs m, n = 10; c) vs cluster std, n = 10;
    d) vs cluster std, n = 2 (panels whose sweep was not run are left out).
    Lines are means over the repetitions, bands +/- one standard deviation."""
    panels = result.panels()
    if not panels:
        raise ValueError(
            "The result has no panel to draw: run the simulation with "
            "components including 2 or 10 and at least one sweep.")
    fig = _new_figure((11, 8.2) if len(panels) > 2 else (11, 4.3))
    rows = 2 if len(panels) > 2 else 1
    cols = 2 if len(panels) > 1 else 1
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
              "#8c564b"]
    for ax, (name, panel) in zip(axes, panels.items()):
        n = panel["n_components"]
        for k, curve in enumerate(panel["curves"]):
            if panel["sweep"] == "features":
                label = f"cluster std = {curve:g}"
            else:
                label = f"m = {int(curve)} features"
            _band(ax, panel["x"], panel["mean"][k], panel["std"][k], label,
                  colors[k % len(colors)])
        if panel["sweep"] == "features":
            ax.set_xlabel("number of features m of R")
            ax.set_title(f"{name}) n = {n} PCA components: I(R; Z) vs m")
        else:
            ax.set_xlabel("cluster standard deviation (log scale)")
            ax.set_xscale("log")
            ax.set_title(
                f"{name}) n = {n} PCA components: I(R; Z) vs cluster std")
        ax.set_ylabel("I(R; Z) (nats)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9, loc="best")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(
        "Gaussian simulation (Figure 2): make_blobs, 5 centres, "
        f"{result.n_samples} samples, Z = PCA(R); mean ± std over "
        f"{result.repetitions} repetitions ({result.ridge_mode} ridge "
        f"{result.ridge:g})", fontsize=11)
    return fig, _save(fig, path)


def _history_dict(history):
    if hasattr(history, "history") and isinstance(history.history, dict):
        history = history.history
    if not isinstance(history, dict):
        raise ValueError(
            "`history` must be a dict of per-epoch lists or a keras History; "
            f"got {type(history).__name__}.")
    return history


def _series(values, name):
    arr = np.asarray(
        [np.nan if v is None else v for v in values], dtype="float64")
    if arr.ndim != 1:
        raise ValueError(f"History entry `{name}` must be a 1-D list.")
    return arr


def training_dynamics(history, path=None, keys=None, epochs=None):
    """H(R), I(R; Z), uniformity and alpha over epochs, one panel each (those
    present in ``history``).

    Args:
        history: dict of per-epoch lists (or a ``keras.callbacks.History``).
            Epochs where a quantity was not computed may hold NaN or None.
        path: file stem to save PNG and SVG to, or None.
        keys: overrides of the history keys, e.g. ``{"entropy": "val_h_r"}``
            (quantities: entropy, mutual_information, uniformity, alpha);
            otherwise the names in ``DYNAMICS_KEYS`` are tried in order.
        epochs: x values; default ``history["epoch"]`` if present, else
            1, 2, ...
    """
    history = _history_dict(history)
    keys = dict(keys or {})
    unknown = set(keys) - set(DYNAMICS_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown quantities in `keys`: {sorted(unknown)}; expected some "
            f"of {sorted(DYNAMICS_KEYS)}.")
    found = {}
    for quantity, candidates in DYNAMICS_KEYS.items():
        if quantity in keys:
            if keys[quantity] not in history:
                raise ValueError(
                    f"`{keys[quantity]}` (given for {quantity}) is not in the "
                    f"history; its keys: {sorted(history)}.")
            found[quantity] = keys[quantity]
            continue
        for candidate in candidates:
            if candidate in history:
                found[quantity] = candidate
                break
    if not found:
        raise ValueError(
            "The history has none of the plotted quantities (H(R), I(R; Z), "
            f"uniformity, alpha); its keys: {sorted(history)}. Pass `keys=` "
            "to name them, e.g. keys={'entropy': 'my_h_r'}.")
    series = {q: _series(history[k], k) for q, k in found.items()}
    lengths = {found[q]: s.size for q, s in series.items()}
    n_epochs = max(lengths.values())
    if epochs is None and "epoch" in history:
        epochs = history["epoch"]
    x = (np.arange(1, n_epochs + 1) if epochs is None
         else np.asarray(epochs, dtype="float64"))

    n = len(series)
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = _new_figure((11, 3.8 * rows) if cols == 2 else (6, 4))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = {"entropy": "#1f77b4", "mutual_information": "#d62728",
              "uniformity": "#2ca02c", "alpha": "#9467bd"}
    for ax, (quantity, values) in zip(axes, series.items()):
        if values.size != x.size:
            raise ValueError(
                f"History entries have different lengths {lengths} (epochs: "
                f"{x.size}); pass `epochs=` for the epochs each was logged.")
        finite = np.isfinite(values)
        ylabel, title = DYNAMICS_LABELS[quantity]
        ax.plot(x[finite], values[finite], marker="o", markersize=3,
                linewidth=1.8, color=colors[quantity],
                label=f"{found[quantity]}")
        if quantity == "alpha":
            ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9, loc="best")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle("Training dynamics", fontsize=12)
    return fig, _save(fig, path)


def h_vs_i(runs, path=None, entropy_key="H(R)", mi_key="I(R;Z)",
           accuracy_key="accuracy", label_key="name"):
    """H(R) (x) against I(R; Z) (y), one point per run, coloured by accuracy,
    with a colour bar; runs with a ``label_key`` entry are annotated.

    ``runs``: list of dicts (one per run) or dict of equal-length columns.
    """
    if isinstance(runs, dict):
        n_runs = {len(v) for v in runs.values()}
        if len(n_runs) != 1:
            raise ValueError(
                "Columns of `runs` have different lengths: "
                f"{ {k: len(v) for k, v in runs.items()} }.")
        runs = [dict(zip(runs, values)) for values in zip(*runs.values())]
    if not isinstance(runs, (list, tuple)) or not runs:
        raise ValueError("`runs` must be a non-empty list of dicts or a dict "
                         "of columns.")
    for index, run in enumerate(runs):
        missing = [k for k in (entropy_key, mi_key, accuracy_key)
                   if k not in run]
        if missing:
            raise ValueError(
                f"Run {index} lacks {missing}; its keys: {sorted(run)}.")
    h = np.asarray([r[entropy_key] for r in runs], dtype="float64")
    i = np.asarray([r[mi_key] for r in runs], dtype="float64")
    acc = np.asarray([r[accuracy_key] for r in runs], dtype="float64")

    fig = _new_figure((7, 5.4))
    ax = fig.subplots()
    points = ax.scatter(h, i, c=acc, cmap="viridis", s=70,
                        edgecolors="black", linewidths=0.6, zorder=3,
                        label="run (colour = accuracy)")
    for run, x, y in zip(runs, h, i):
        if run.get(label_key) is not None:
            ax.annotate(str(run[label_key]), (x, y), textcoords="offset points",
                        xytext=(6, 5), fontsize=8)
    colorbar = fig.colorbar(points, ax=ax)
    colorbar.set_label(f"downstream {accuracy_key}")
    ax.set_xlabel(f"{entropy_key}: entropy of the representation (nats)")
    ax.set_ylabel(f"{mi_key}: mutual information (nats)")
    ax.set_title("H(R) vs I(R; Z) across runs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    return fig, _save(fig, path)


def figure11(result, path=None):
    """I(R; Z) over training epochs of the Appendix B.4 neural-network
    simulation, one curve per method (Figure 11)."""
    methods = [k for k in result if k != "epoch"]
    if not methods:
        raise ValueError(
            "`result` has no method curves; expected the output of "
            "`keras_adadim.analysis.nn_simulation`."
        )
    epochs = np.asarray(result["epoch"], dtype="float64")
    fig = _new_figure((7, 4.5))
    ax = fig.subplots()
    colors = {"simclr": "#1f77b4", "vicreg": "#d62728"}
    names = {"simclr": "SimCLR (NT-Xent)", "vicreg": "VICReg"}
    for method in methods:
        values = _series(result[method], method)
        if values.size != epochs.size:
            raise ValueError(
                f"`{method}` has {values.size} values for {epochs.size} epochs."
            )
        ax.plot(epochs, values, linewidth=1.8, color=colors.get(method),
                label=names.get(method, method))
    ax.set_xlabel("epoch")
    ax.set_ylabel("I(R; Z) (nats, closed-form Gaussian)")
    ax.set_title("Neural-network simulation (Appendix B.4): I(R; Z) per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig, _save(fig, path)
