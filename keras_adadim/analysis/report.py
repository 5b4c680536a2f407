"""``adadim analyze``: a report on one or more run directories.

For each run: its settings, final diagnostics and accuracy, and its
training dynamics (H(R), I(R; Z), uniformity and alpha over epochs). Across
runs: H(R) against I(R; Z) coloured by accuracy (Figures 1a, 4) and, with
three runs or more, the |Pearson r| of accuracy with H(R), I(R; Z) and
I/H (Table 1). Markdown or HTML, with the plots beside it as PNG and SVG.
"""

import html
import math
import os

from keras_adadim.analysis import plots
from keras_adadim.analysis.correlation import correlation_table

ACCURACY_KEYS = ("linear_top1", "knn_top1", "few_label", "online_probe")
_COMPARABLE = ("dataset", "image_size", "test_split")


def _last_finite(values):
    for v in reversed(values):
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return None


def _accuracy(run, key):
    evaluation = (run["results"] or {}).get("evaluation") or {}
    main = evaluation.get("AdaDim encoder") or evaluation.get("encoder")
    if key == "online_probe":
        return _last_finite(
            [r.get("probe_accuracy") for r in run["history"]])
    if not main:
        return None
    if key == "few_label":
        return (main.get("few_label") or {}).get("linear_top1")
    return main["all_labels"].get(key)


def summarise(run, accuracy_key="linear_top1"):
    """One row of the report: settings, final diagnostics, accuracy."""
    from keras_adadim.training import history_columns

    config = run["config"] or {}
    columns = history_columns(run["history"])
    row = {
        "name": os.path.basename(os.path.normpath(run["directory"])),
        "dataset": config.get("dataset"),
        "backbone": config.get("backbone"),
        "method": config.get("method"),
        "preset": config.get("preset"),
        "epochs": len(run["history"]),
        "alpha": _last_finite(columns.get("alpha", [])),
        "ER(R)": _last_finite(columns.get("r_effective_rank", [])),
        "H(R)": _last_finite(columns.get("r_entropy", [])),
        "I(R;Z)": _last_finite(columns.get("mutual_information", [])),
        "uniformity": _last_finite(columns.get("r_uniformity", [])),
        "accuracy": _accuracy(run, accuracy_key),
    }
    return row


def _check_set(runs, allow_mixed):
    seen = set()
    for run in runs:
        path = os.path.realpath(run["directory"])
        if path in seen:
            raise ValueError(f"Run {run['directory']!r} is given twice.")
        seen.add(path)
    if allow_mixed or len(runs) < 2:
        return
    first = runs[0]["config"] or {}
    for run in runs[1:]:
        config = run["config"] or {}
        differ = [k for k in _COMPARABLE if config.get(k) != first.get(k)]
        if differ:
            details = ", ".join(
                f"{k} {first.get(k)!r} vs {config.get(k)!r}" for k in differ)
            raise ValueError(
                f"Mismatched run set: {runs[0]['directory']!r} and "
                f"{run['directory']!r} differ in {details}; accuracies and "
                "diagnostics are only comparable on the same evaluation "
                "data. Analyse them separately, or pass --allow-mixed."
            )


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def analyze(run_dirs, output="analysis", fmt="md",
            accuracy_key="linear_top1", allow_mixed=False):
    """Write the report for ``run_dirs`` into ``output``; returns its path.

    Raises ``ValueError`` for a directory that is not a finished-epoch run
    (no history), runs that are not comparable (different datasets, unless
    ``allow_mixed``), a run given twice, or an unknown ``accuracy_key``.
    """
    from keras_adadim.training import history_columns
    from keras_adadim.training import read_run

    if fmt not in ("md", "html"):
        raise ValueError(f"`fmt` must be 'md' or 'html'; got {fmt!r}.")
    if accuracy_key not in ACCURACY_KEYS:
        raise ValueError(
            f"Unknown accuracy {accuracy_key!r}; use one of {ACCURACY_KEYS}.")
    if not run_dirs:
        raise ValueError("Give at least one run directory.")
    runs = [read_run(d) for d in run_dirs]
    _check_set(runs, allow_mixed)
    os.makedirs(output, exist_ok=True)
    rows = [summarise(run, accuracy_key) for run in runs]
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):  # same basename in different parents
        for i, row in enumerate(rows):
            row["name"] = f"{i + 1}:{row['name']}"

    sections = []  # (title, text lines, images)
    for run, row in zip(runs, rows):
        columns = history_columns(run["history"])
        plot = {k: columns[k] for k in
                ("r_entropy", "mutual_information", "r_uniformity", "alpha")
                if k in columns}
        images, notes = [], []
        if plot:
            plot["epoch"] = [e + 1 for e in columns["epoch"]]
            stem = os.path.join(output, f"dynamics_{_safe(row['name'])}")
            _, paths = plots.training_dynamics(plot, path=stem)
            images.append(os.path.basename(paths[0]))
        else:
            notes.append("No H(R) / I(R; Z) / alpha in this run's history "
                         "(run without RepresentationMonitor).")
        sections.append((f"Run {row['name']}", notes, images))

    across_notes, across_images, table = [], [], None
    complete = [r for r in rows
                if r["H(R)"] is not None and r["I(R;Z)"] is not None
                and r["accuracy"] is not None]
    missing = [r["name"] for r in rows if r not in complete]
    if len(rows) > 1:
        if missing:
            across_notes.append(
                f"Left out of the comparison (no H(R), I(R; Z) or "
                f"{accuracy_key}): {', '.join(missing)}.")
        if len(complete) >= 2:
            _, paths = plots.h_vs_i(
                complete, path=os.path.join(output, "h_vs_i"),
                accuracy_key="accuracy")
            across_images.append(os.path.basename(paths[0]))
        if len(complete) >= 3:
            try:
                table = correlation_table(complete)
            except ValueError as e:
                across_notes.append(f"No correlation table: {e}")
        else:
            across_notes.append(
                "The correlation table needs at least 3 runs with "
                "diagnostics and accuracy.")

    path = os.path.join(output, f"report.{fmt}")
    writer = _markdown if fmt == "md" else _html
    text = writer(rows, sections, across_notes, across_images, table,
                  accuracy_key)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


_COLUMNS = ("name", "dataset", "backbone", "method", "epochs", "alpha",
            "ER(R)", "H(R)", "I(R;Z)", "uniformity", "accuracy")


def _correlation_rows(table):
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            p = value.get("p_value")
            out.append((key, f"{value['abs_r']:.3f}", f"{value['r']:+.3f}",
                        "-" if p is None else f"{p:.3g}"))
    return out


def _markdown(rows, sections, across_notes, across_images, table, acc_key):
    lines = ["# AdaDim run report", "",
             f"Accuracy: `{acc_key}` on each run's test split. H(R), I(R; Z),"
             " ER and uniformity: the last RepresentationMonitor measurement "
             "(held-out data).", "",
             "| " + " | ".join(_COLUMNS) + " |",
             "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[c]) for c in _COLUMNS) + " |")
    if len(rows) > 1:
        lines += ["", "## Across runs", ""]
        lines += [f"- {n}" for n in across_notes]
        lines += [f"![H(R) vs I(R; Z)]({img})" for img in across_images]
        if table:
            lines += ["", f"|Pearson r| of accuracy with ({table['n_runs']} "
                      "runs; the paper's Table 1):", "",
                      "| quantity | abs r | r | p |", "|---|---|---|---|"]
            lines += ["| " + " | ".join(r) + " |"
                      for r in _correlation_rows(table)]
    for title, notes, images in sections:
        lines += ["", f"## {title}", ""]
        lines += [f"- {n}" for n in notes]
        lines += [f"![training dynamics]({img})" for img in images]
    return "\n".join(lines) + "\n"


def _html(rows, sections, across_notes, across_images, table, acc_key):
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>AdaDim run report</title><style>body{font-family:"
             "sans-serif;max-width:1100px;margin:auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
             "img{max-width:100%}</style></head><body>",
             "<h1>AdaDim run report</h1>",
             f"<p>Accuracy: <code>{e(acc_key)}</code> on each run's test "
             "split. H(R), I(R; Z), ER and uniformity: the last "
             "RepresentationMonitor measurement (held-out data).</p>",
             "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
             + "</tr>"]
    for row in rows:
        parts.append("<tr>" + "".join(
            f"<td>{e(_fmt(row[c]))}</td>" for c in _COLUMNS) + "</tr>")
    parts.append("</table>")
    if len(rows) > 1:
        parts.append("<h2>Across runs</h2>")
        parts += [f"<p>{e(n)}</p>" for n in across_notes]
        parts += [f"<img src='{e(i)}' alt='H(R) vs I(R; Z)'>"
                  for i in across_images]
        if table:
            parts.append(f"<p>|Pearson r| of accuracy with "
                         f"({table['n_runs']} runs):</p><table><tr><th>"
                         "quantity</th><th>abs r</th><th>r</th><th>p</th>"
                         "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r)
                      + "</tr>" for r in _correlation_rows(table)]
            parts.append("</table>")
    for title, notes, images in sections:
        parts.append(f"<h2>{e(title)}</h2>")
        parts += [f"<p>{e(n)}</p>" for n in notes]
        parts += [f"<img src='{e(i)}' alt='training dynamics'>"
                  for i in images]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["ACCURACY_KEYS", "analyze", "summarise"]
