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
import re

from keras_adadim import _written
from keras_adadim.analysis import plots
from keras_adadim.analysis.correlation import correlation_table
from keras_adadim.run_directory import ENCODER_KEY
from keras_adadim.run_directory import history_columns
from keras_adadim.run_directory import read_run

ACCURACY_KEYS = ("linear_top1", "knn_top1", "few_label", "online_probe")
WRITER = "adadim analyze"
_TITLE = "AdaDim run report"
# How each report format begins (see _markdown, _html): how a report from
# before the manifest is recognised.
_REPORT_START = {
    "report.md": f"# {_TITLE}\n",
    "report.html": "<!doctype html><html><head><meta charset='utf-8'>\n"
                   f"<title>{_TITLE}</title>",
}
_PLOT_NAME = re.compile(r"^(dynamics_.+|h_vs_i)\.(png|svg)$")
_COMPARABLE = ("dataset", "image_size", "test_split")


def _last_finite(values):
    for v in reversed(values):
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return None


def _accuracy(run, key):
    evaluation = (run["results"] or {}).get("evaluation") or {}
    # A run's results.json, or `adadim evaluate`'s evaluation.json.
    main = evaluation.get(ENCODER_KEY) or evaluation.get("encoder")
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


def _read_start(path, size):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(size)
    except (OSError, ValueError):
        return ""


def _legacy_own(directory, name):
    """Whether ``name`` in ``directory`` is ``analyze``'s output from
    before its manifest existed: a ``report.md`` / ``report.html`` that
    begins exactly as ``analyze`` writes it, or a plot (``dynamics_*`` /
    ``h_vs_i``, ``.png`` or ``.svg``) that such a report there shows (the
    ``.svg`` beside a shown ``.png`` counts too)."""
    if name in _REPORT_START:
        start = _REPORT_START[name]
        return _read_start(os.path.join(directory, name),
                           len(start)) == start
    m = _PLOT_NAME.match(name)
    if not m:
        return False
    png = f"{os.path.splitext(name)[0]}.png"
    for report, start in _REPORT_START.items():
        path = os.path.join(directory, report)
        text = _read_start(path, 1 << 20)
        if text.startswith(start) and (
                f"]({png})" in text or f"src='{html.escape(png)}'" in text):
            return True
    return False


def _plot_files(stem):
    """The files ``plots`` writes for the path ``stem``."""
    base, ext = os.path.splitext(stem)
    if ext.lower().lstrip(".") not in plots.FORMATS:
        base = stem
    return [f"{base}.{fmt}" for fmt in plots.FORMATS]


def analyze(run_dirs, output="analysis", fmt="md",
            accuracy_key="linear_top1", allow_mixed=False, overwrite=False):
    """Write the report for ``run_dirs`` into ``output``; returns its path.

    ``output`` gets ``report.md`` (or ``report.html``), ``dynamics_<run>``
    and ``h_vs_i`` plots (``.png`` and ``.svg``) and
    ``.keras_adadim_outputs.json``, a manifest of what ``analyze`` wrote
    there (with each file's sha256). Re-running ``analyze`` into the same
    directory replaces those files; it refuses, with a ``ValueError``
    naming them and before writing anything, to replace any other file of
    those names: a file it did not write, or one changed since it did
    (``overwrite=True`` replaces them anyway). Files of other names are
    never touched. A directory written before the manifest existed (no
    entry for a file) is still recognised: a report that begins as
    ``analyze`` writes it, and the plots it shows, count as its own.

    Raises ``ValueError`` for a directory that is not a finished-epoch run
    (no history), runs that are not comparable (different datasets, unless
    ``allow_mixed``), a run given twice, an unknown ``accuracy_key``, or
    files in ``output`` it may not replace (see above).
    """

    if fmt not in ("md", "html"):
        raise ValueError(f"`fmt` must be 'md' or 'html'; got {fmt!r}.")
    if accuracy_key not in ACCURACY_KEYS:
        raise ValueError(
            f"Unknown accuracy {accuracy_key!r}; use one of {ACCURACY_KEYS}.")
    if not run_dirs:
        raise ValueError("Give at least one run directory.")
    runs = [read_run(d) for d in run_dirs]
    _check_set(runs, allow_mixed)
    rows = [summarise(run, accuracy_key) for run in runs]
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):  # same basename in different parents
        for i, row in enumerate(rows):
            row["name"] = f"{i + 1}:{row['name']}"

    # First what will be written, checked before anything is.
    plans = []  # (row, plot data or None, file stem)
    for run, row in zip(runs, rows):
        columns = history_columns(run["history"])
        plot = {k: columns[k] for k in
                ("r_entropy", "mutual_information", "r_uniformity", "alpha")
                if k in columns}
        if plot:
            plot["epoch"] = [e + 1 for e in columns["epoch"]]
        plans.append((row, plot or None, f"dynamics_{_safe(row['name'])}"))
    complete = [r for r in rows
                if r["H(R)"] is not None and r["I(R;Z)"] is not None
                and r["accuracy"] is not None]
    missing = [r["name"] for r in rows if r not in complete]
    with_h_vs_i = len(rows) > 1 and len(complete) >= 2
    report_name = f"report.{fmt}"
    targets = [report_name]
    for _, plot, stem in plans:
        if plot:
            targets += _plot_files(stem)
    if with_h_vs_i:
        targets += _plot_files("h_vs_i")
    _written.check_can_write(output, targets, WRITER, overwrite,
                             legacy=_legacy_own)

    with _written.staging(output) as stage:
        sections = []  # (title, text lines, images)
        for row, plot, stem in plans:
            images, notes = [], []
            if plot:
                _, paths = plots.training_dynamics(
                    plot, path=os.path.join(stage, stem))
                images.append(os.path.basename(paths[0]))
            else:
                notes.append("No H(R) / I(R; Z) / alpha in this run's "
                             "history (run without RepresentationMonitor).")
            sections.append((f"Run {row['name']}", notes, images))

        across_notes, across_images, table = [], [], None
        if len(rows) > 1:
            if missing:
                across_notes.append(
                    f"Left out of the comparison (no H(R), I(R; Z) or "
                    f"{accuracy_key}): {', '.join(missing)}.")
            if with_h_vs_i:
                _, paths = plots.h_vs_i(
                    complete, path=os.path.join(stage, "h_vs_i"),
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

        writer = _markdown if fmt == "md" else _html
        text = writer(rows, sections, across_notes, across_images, table,
                      accuracy_key)
        with open(os.path.join(stage, report_name), "w",
                  encoding="utf-8") as f:
            f.write(text)
        unplanned = sorted(set(os.listdir(stage)) - set(targets))
        if unplanned:  # not expected; still never replace a foreign file
            _written.check_can_write(output, unplanned, WRITER, overwrite,
                                     legacy=_legacy_own)
        _written.replace_files(output, stage, WRITER)
    return os.path.join(output, report_name)


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
    lines = [f"# {_TITLE}", "",
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
             f"<title>{_TITLE}</title><style>body{{font-family:"
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
