"""benchmarks/gpu_check.py's orchestration (the prepared GPU check of issue
14): what it reports when a section cannot run, and its refusals. The
sections themselves are measured on a GPU (``bash benchmarks/gpu_check.sh``)
or with ``--quick`` on a CPU (minutes: not a test). Backend-independent
(it drives subprocesses), so it runs in the TensorFlow pass only."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="drives its backends as subprocesses; one pass is enough")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")


def _run(*argv):
    return subprocess.run([sys.executable, SCRIPT, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_spent_budget_and_missing_backend_are_reported_not_dropped(tmp_path):
    out = tmp_path / "g.json"
    proc = _run("--out", str(out), "--backends", "jax,tensorflow",
                "--sections", "step,epoch", "--budget", "0", "--quick")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["backends"]) == {"jax", "tensorflow"}
    for backend in ("jax", "tensorflow"):
        for section in ("step", "epoch"):
            entry = report["backends"][backend][section]
            assert entry["skipped"].startswith("budget spent"), entry
    assert report["settings"]["batch"] == 32  # --quick's size
    assert "total_s" in report


def test_unknown_section_and_backend_refused(tmp_path):
    proc = _run("--out", str(tmp_path / "g.json"), "--sections", "steps")
    assert proc.returncode != 0
    assert "--sections: unknown section 'steps'" in proc.stderr
    proc = _run("--out", str(tmp_path / "g.json"), "--backends", "mxnet")
    assert proc.returncode != 0
    assert "--backends: unknown backend 'mxnet'" in proc.stderr
    assert not (tmp_path / "g.json").exists()
