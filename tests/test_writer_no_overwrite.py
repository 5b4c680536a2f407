"""``adadim evaluate`` (``evaluate_run.evaluate``) and ``adadim analyze``
(``analysis.report.analyze``) never replace a file they did not write: such
a file is refused with a ``ValueError`` naming it and the fix
(``overwrite=True``), and then every file under the directory keeps its
bytes and mtime, and nothing is added. Their own files, recorded in
``.keras_adadim_outputs.json`` with their sha256 (or, from before the
manifest, recognised by their content), are replaced freely, so re-running
either is still one command. Nothing is trained here: the evaluation
itself is replaced by a stub."""

import json
import os

import pytest
from disk_snapshot import snapshot  # tests/disk_snapshot.py

from keras_adadim import _written
from keras_adadim import evaluate_run
from keras_adadim import training
from keras_adadim.analysis import report

MANIFEST = _written.MANIFEST_FILE


def assert_refused(root, call, *named):
    """``call()`` raises a ValueError naming every path of ``named`` and
    ``overwrite=True``; the tree under ``root`` is unchanged."""
    before = snapshot(root)
    with pytest.raises(ValueError, match="refuses to replace") as e:
        call()
    text = str(e.value)
    for path in named:
        assert str(path) in text, text
    assert "overwrite=True" in text and "--overwrite" in text
    assert snapshot(root) == before, "a refusal changed files on disk"
    return text


# ---- analyze ---------------------------------------------------------------


def _fake_run(root, name, acc, h, mi):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "dataset": "digits", "backbone": "small_cnn", "method": "adadim",
        "image_size": 8, "test_split": "test"}))
    (d / "history.json").write_text(json.dumps([
        {"epoch": e, "loss": 1.0 - e / 10, "r_entropy": h * (e + 1) / 2,
         "mutual_information": mi, "alpha": 0.5} for e in range(2)]))
    (d / "results.json").write_text(json.dumps({"evaluation": {
        "AdaDim encoder": {"all_labels": {"linear_top1": acc}}}}))
    return str(d)


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    return [_fake_run(root, f"run{i}", acc, h, mi) for i, (acc, h, mi) in
            enumerate([(0.5, 1.0, 0.3), (0.7, 1.2, 0.2)])]


def _outputs(runs):
    names = ["report.md", "h_vs_i.png", "h_vs_i.svg"]
    names += [f"dynamics_{os.path.basename(r)}.{fmt}" for r in runs
              for fmt in ("png", "svg")]
    return names


def test_analyze_writes_a_manifest_and_reruns(runs, tmp_path):
    out = tmp_path / "analysis"
    path = report.analyze(runs, output=str(out))
    assert path == str(out / "report.md")
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(manifest) == sorted(_outputs(runs))
    assert {e["writer"] for e in manifest.values()} == {"adadim analyze"}
    assert not [f for f in os.listdir(out) if f.startswith(".partial")]
    report.analyze(runs, output=str(out))  # its own files: replaced
    report.analyze(runs[:1], output=str(out), fmt="html")
    assert "report.html" in json.loads((out / MANIFEST).read_text())["files"]


FOREIGN = {
    "report.md": b"# My own report\n\nKeep me.\n",
    "h_vs_i.png": b"\x89PNG my figure",
    "h_vs_i.svg": b"<svg>mine</svg>",
    "dynamics_run0.png": b"\x89PNG mine too",
    "dynamics_run1.svg": b"<svg/>",
    MANIFEST: b"not a manifest",
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_analyze_refuses_a_foreign_file(runs, tmp_path, name):
    out = tmp_path / "analysis"
    out.mkdir()
    (out / name).write_bytes(FOREIGN[name])
    (out / "notes.txt").write_text("mine")
    assert_refused(tmp_path, lambda: report.analyze(runs, output=str(out)),
                   out / name)


def test_analyze_names_every_foreign_file(runs, tmp_path):
    out = tmp_path / "analysis"
    out.mkdir()
    for name, data in FOREIGN.items():
        (out / name).write_bytes(data)
    assert_refused(tmp_path, lambda: report.analyze(runs, output=str(out)),
                   *(out / name for name in FOREIGN))


def test_analyze_refuses_a_folder_in_the_way_and_an_output_file(
        runs, tmp_path):
    out = tmp_path / "analysis"
    (out / "report.md").mkdir(parents=True)
    assert_refused(tmp_path, lambda: report.analyze(runs, output=str(out)),
                   out / "report.md")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="is a file, not a directory"):
        report.analyze(runs, output=str(a_file))
    assert snapshot(tmp_path) == before


def test_analyze_refuses_its_own_file_edited_since(runs, tmp_path):
    out = tmp_path / "analysis"
    report.analyze(runs, output=str(out))
    with open(out / "report.md", "a") as f:
        f.write("\nMy conclusions.\n")
    assert_refused(tmp_path, lambda: report.analyze(runs, output=str(out)),
                   out / "report.md")
    (out / "notes.txt").write_text("kept")
    report.analyze(runs, output=str(out), overwrite=True)
    assert "My conclusions" not in (out / "report.md").read_text()
    assert (out / "notes.txt").read_text() == "kept"
    report.analyze(runs, output=str(out))  # its own again


def test_analyze_overwrite_replaces_foreign_files_only_of_its_names(
        runs, tmp_path):
    out = tmp_path / "analysis"
    out.mkdir()
    for name, data in FOREIGN.items():
        (out / name).write_bytes(data)
    (out / "photo.png").write_bytes(b"\x89PNG holiday")
    report.analyze(runs, output=str(out), overwrite=True)
    assert (out / "report.md").read_bytes() != FOREIGN["report.md"]
    assert (out / "photo.png").read_bytes() == b"\x89PNG holiday"
    report.analyze(runs, output=str(out))


def test_analyze_never_touches_files_of_other_names(runs, tmp_path):
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "dynamics_someone_else.png").write_bytes(b"\x89PNG other run")
    before = snapshot(out)
    report.analyze(runs, output=str(out))
    after = snapshot(out)
    for name in ("notes.txt", "dynamics_someone_else.png"):
        assert after[name] == before[name]


def test_analyze_reuses_a_directory_from_before_the_manifest(runs,
                                                             tmp_path):
    """A report directory written before the manifest existed (like
    benchmarks/results/*/analysis): its report, which begins as analyze
    writes it, and the plots it shows are analyze's own; a PNG it does not
    show, or a report that does not begin so, is not."""
    out = tmp_path / "analysis"
    report.analyze(runs, output=str(out))
    os.remove(out / MANIFEST)
    for f in os.listdir(out):
        if f.endswith(".svg"):
            os.remove(out / f)  # as in the committed benchmark directory
    report.analyze(runs, output=str(out))
    assert (out / MANIFEST).exists()

    os.remove(out / MANIFEST)
    text = (out / "report.md").read_text()
    (out / "report.md").write_text(
        text.replace("](dynamics_run1.png)", "](elsewhere.png)"))
    assert_refused(tmp_path, lambda: report.analyze(runs, output=str(out)),
                   out / "dynamics_run1.png", out / "dynamics_run1.svg")
    (out / "report.md").write_text("# Notes on the runs\n" + text)
    assert_refused(
        tmp_path, lambda: report.analyze(runs, output=str(out)),
        out / "report.md", out / "h_vs_i.png", out / "dynamics_run0.png")


def test_the_committed_benchmark_analysis_is_recognised():
    """`adadim analyze ... --output benchmarks/results/fashion_mnist_cpu/
    analysis` may replace every file there (checked without writing)."""
    out = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks",
                       "results", "fashion_mnist_cpu", "analysis")
    if not os.path.isdir(out):
        pytest.skip("no committed benchmark analysis here")
    names = [f for f in os.listdir(out) if not f.startswith(".")]
    assert "report.md" in names
    assert _written.foreign_files(out, names, report.WRITER,
                                  legacy=report._legacy_own) == []


# ---- evaluate --------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    from keras_adadim.models.small_cnn import small_cnn_encoder

    path = tmp_path_factory.mktemp("encoder") / "encoder.keras"
    small_cnn_encoder((8, 8, 1), width=4).save(str(path))
    return path


@pytest.fixture
def run_dir(tmp_path, encoder_file):
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(
        {"dataset": "digits", "image_size": 8, "test_split": "test"}))
    (d / "encoder.keras").write_bytes(encoder_file.read_bytes())
    return d


@pytest.fixture
def evaluations(monkeypatch):
    """Replace the evaluation (probes, kNN) by a stub; count its calls."""
    calls = []

    def fake(settings, train, test, size, encoders, **kwargs):
        calls.append(size)
        return {"encoder": {"all_labels": {"linear_top1": 0.5 + len(calls)
                                           / 100}}}

    monkeypatch.setattr(training, "evaluate_encoders", fake)
    monkeypatch.setattr(training, "print_results", lambda *a, **k: None)
    return calls


def _evaluate(source, **kwargs):
    return evaluate_run.evaluate(str(source), log=lambda *a: None, **kwargs)


def test_evaluate_writes_a_manifest_and_reruns(run_dir, evaluations):
    _evaluate(run_dir)
    first = json.loads((run_dir / "evaluation.json").read_text())
    manifest = json.loads((run_dir / MANIFEST).read_text())["files"]
    assert list(manifest) == ["evaluation.json"]
    assert manifest["evaluation.json"]["writer"] == "adadim evaluate"
    _evaluate(run_dir)  # its own file: replaced
    second = json.loads((run_dir / "evaluation.json").read_text())
    assert first != second and len(evaluations) == 2
    assert not [f for f in os.listdir(run_dir) if f.startswith(".partial")]


@pytest.mark.parametrize("content", [
    b'{"my": "numbers"}\n', b"not even JSON", b""])
def test_evaluate_refuses_a_foreign_file_before_evaluating(
        run_dir, evaluations, content):
    (run_dir / "evaluation.json").write_bytes(content)
    assert_refused(run_dir, lambda: _evaluate(run_dir),
                   run_dir / "evaluation.json")
    assert evaluations == []  # refused before any work


def test_evaluate_refuses_in_another_output_directory(run_dir, tmp_path,
                                                      evaluations):
    out = tmp_path / "out"
    out.mkdir()
    (out / "evaluation.json").write_text('{"mine": 1}')
    assert_refused(tmp_path, lambda: _evaluate(run_dir, output=str(out)),
                   out / "evaluation.json")
    _evaluate(run_dir, output=str(tmp_path / "new"))
    assert (tmp_path / "new" / "evaluation.json").exists()


def test_evaluate_refuses_its_own_file_edited_since(run_dir, evaluations):
    _evaluate(run_dir)
    data = json.loads((run_dir / "evaluation.json").read_text())
    data["note"] = "checked by hand"
    (run_dir / "evaluation.json").write_text(json.dumps(data))
    assert_refused(run_dir, lambda: _evaluate(run_dir),
                   run_dir / "evaluation.json")
    _evaluate(run_dir, overwrite=True)
    assert "note" not in json.loads((run_dir / "evaluation.json").read_text())
    _evaluate(run_dir)


def test_evaluate_replaces_its_file_from_before_the_manifest(run_dir,
                                                             evaluations):
    """An evaluation.json with exactly the keys evaluate writes, and no
    manifest entry, is evaluate's own (written by an earlier version)."""
    _evaluate(run_dir)
    os.remove(run_dir / MANIFEST)
    _evaluate(run_dir)
    assert len(evaluations) == 2


def test_cli_analyze_refuses_then_overwrites_with_the_flag(runs, tmp_path,
                                                           capsys):
    from keras_adadim import cli

    out = tmp_path / "analysis"
    out.mkdir()
    (out / "report.md").write_bytes(FOREIGN["report.md"])
    before = snapshot(tmp_path)
    assert cli.main(["analyze", *runs, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out / "report.md") in err and "--overwrite" in err
    assert snapshot(tmp_path) == before
    assert cli.main(["analyze", *runs, "--output", str(out),
                     "--overwrite"]) == 0
    assert (out / "report.md").read_bytes() != FOREIGN["report.md"]


def test_cli_evaluate_passes_the_overwrite_flag(run_dir, evaluations,
                                                capsys):
    from keras_adadim import cli

    (run_dir / "evaluation.json").write_text('{"mine": 1}')
    assert cli.main(["evaluate", str(run_dir)]) == 2
    assert "evaluation.json" in capsys.readouterr().err
    assert (run_dir / "evaluation.json").read_text() == '{"mine": 1}'
    assert cli.main(["evaluate", str(run_dir), "--overwrite"]) == 0
    assert "mine" not in (run_dir / "evaluation.json").read_text()
