"""Correlation between downstream accuracy and the information diagnostics
over a set of runs (the paper's Table 1): |Pearson r| of accuracy with H(R),
with I(R; Z) and with the ratio I(R; Z) / H(R)."""

from __future__ import annotations

import math

import numpy as np

DEFAULT_KEYS = {
    "accuracy": "accuracy",
    "entropy": "H(R)",
    "mutual_information": "I(R;Z)",
}


def correlation_table(runs, accuracy_key=None, entropy_key=None,
                      mi_key=None):
    """|Pearson r| between accuracy and H(R), I(R; Z) and I(R; Z)/H(R).

    Args:
        runs: the table of numbers, either a list of dicts (one per run) or a
            dict of equal-length sequences (one per column).
        accuracy_key, entropy_key, mi_key: column names; default
            ``"accuracy"``, ``"H(R)"`` and ``"I(R;Z)"``.

    Returns:
        dict with, for each of ``"H(R)"``, ``"I(R;Z)"`` and
        ``"I(R;Z)/H(R)"`` (named after the columns used): ``{"abs_r": |r|,
        "r": r, "p_value": two-sided p-value (Student t, n - 2 d.o.f.; needs
        SciPy, else None)}``, plus ``"n_runs"``.

    Raises:
        ValueError: missing columns, columns of different lengths, fewer than
        3 runs, non-finite values, a constant column (r undefined) or
        H(R) = 0 in some run (ratio undefined).
    """
    keys = {
        "accuracy": accuracy_key or DEFAULT_KEYS["accuracy"],
        "entropy": entropy_key or DEFAULT_KEYS["entropy"],
        "mutual_information": mi_key or DEFAULT_KEYS["mutual_information"],
    }
    columns = _columns(runs, list(keys.values()))
    acc = columns[keys["accuracy"]]
    h = columns[keys["entropy"]]
    i = columns[keys["mutual_information"]]
    if np.any(h == 0):
        bad = np.flatnonzero(h == 0).tolist()
        raise ValueError(
            f"`{keys['entropy']}` is 0 in run(s) {bad}: the ratio "
            f"{keys['mutual_information']}/{keys['entropy']} is undefined.")
    ratio = i / h
    ratio_name = f"{keys['mutual_information']}/{keys['entropy']}"
    out = {"n_runs": int(acc.size)}
    for name, values in ((keys["entropy"], h),
                         (keys["mutual_information"], i),
                         (ratio_name, ratio)):
        r = _pearson(acc, values, keys["accuracy"], name)
        out[name] = {"abs_r": abs(r), "r": r,
                     "p_value": _p_value(r, acc.size)}
    return out


def format_correlation_table(table, digits=3):
    """Markdown rendering of ``correlation_table``'s result."""
    lines = [
        f"| Diagnostic | abs. Pearson r with accuracy (n = "
        f"{table['n_runs']}) | r | p |",
        "|---|---|---|---|",
    ]
    for name, row in table.items():
        if name == "n_runs":
            continue
        p = "n/a" if row["p_value"] is None else f"{row['p_value']:.{digits}g}"
        lines.append(
            f"| {name} | {row['abs_r']:.{digits}f} | {row['r']:+.{digits}f} "
            f"| {p} |")
    return "\n".join(lines)


def _columns(runs, names):
    if isinstance(runs, dict):
        missing = [n for n in names if n not in runs]
        if missing:
            raise ValueError(
                f"Missing column(s) {missing}; available: {sorted(runs)}. Pass "
                "`accuracy_key`, `entropy_key` or `mi_key` to use other names.")
        raw = {n: runs[n] for n in names}
    elif isinstance(runs, (list, tuple)):
        if not all(isinstance(run, dict) for run in runs):
            raise ValueError(
                "`runs` must be a list of dicts (one per run) or a dict of "
                "columns.")
        raw = {n: [] for n in names}
        for index, run in enumerate(runs):
            missing = [n for n in names if n not in run]
            if missing:
                raise ValueError(
                    f"Run {index} lacks {missing}; its keys: {sorted(run)}. "
                    "Every run needs accuracy, H(R) and I(R; Z).")
            for n in names:
                raw[n].append(run[n])
    else:
        raise ValueError(
            "`runs` must be a list of dicts (one per run) or a dict of "
            f"columns; got {type(runs).__name__}.")

    columns = {}
    for n, values in raw.items():
        try:
            arr = np.asarray(values, dtype="float64")
        except (TypeError, ValueError) as error:
            raise ValueError(f"Column `{n}` must hold numbers.") from error
        if arr.ndim != 1:
            raise ValueError(
                f"Column `{n}` must be 1-D (one number per run); got shape "
                f"{arr.shape}.")
        columns[n] = arr
    lengths = {n: c.size for n, c in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"Columns have different lengths {lengths}: every run needs a "
            "value in each column (mismatched run sets?).")
    n_runs = next(iter(lengths.values()))
    if n_runs < 3:
        raise ValueError(
            f"A correlation needs at least 3 runs; got {n_runs} (with 2 runs "
            "|r| is always 1).")
    for n, c in columns.items():
        if not np.all(np.isfinite(c)):
            bad = np.flatnonzero(~np.isfinite(c)).tolist()
            raise ValueError(f"Column `{n}` has NaN/Inf in run(s) {bad}.")
    return columns


def _pearson(x, y, name_x, name_y):
    for name, values in ((name_x, x), (name_y, y)):
        if np.ptp(values) == 0:
            raise ValueError(
                f"`{name}` is constant over the runs: its Pearson correlation "
                "is undefined.")
    dx = x - x.mean()
    dy = y - y.mean()
    r = float(np.sum(dx * dy) / math.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))
    return max(-1.0, min(1.0, r))


def _p_value(r, n):
    try:
        from scipy import stats
    except ImportError:
        return None
    if abs(r) >= 1.0:
        return 0.0
    t = r * math.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), n - 2))
