"""A run directory is locked for the life of a run: a second `adadim
pretrain` on it is refused at once, naming the other process, and changes
nothing; the lock goes with its holder (even `kill -9`)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from keras_adadim import cli
from keras_adadim import run_directory
from keras_adadim import training

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="fcntl.flock is POSIX-only")

REPO = Path(__file__).resolve().parents[1]
TINY = dict(epochs=1, batch_size=128, width=4, projector_hidden_dim=16,
            projector_dim=8, alpha_every=1, alpha_batches=1,
            monitor_every=0, eval="none", seed=0)


def _holder(directory):
    """A child process that takes the run's lock as `pretrain` does and
    keeps it until killed. Returns the process once it holds the lock."""
    code = textwrap.dedent(f"""
        import sys, time
        from keras_adadim.run_directory import RunLock
        lock = RunLock({str(directory)!r}).acquire()
        print("locked", flush=True)
        time.sleep(600)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    child = subprocess.Popen([sys.executable, "-c", code], env=env,
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.strip() == "locked", line
    return child


@pytest.fixture
def held(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    child = _holder(directory)
    yield directory, child
    if child.poll() is None:
        child.kill()
        child.wait()


def _snapshot(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def test_the_lock_file_names_its_holder(held):
    directory, child = held
    info = json.loads((directory / training.LOCK).read_text())
    assert info["pid"] == child.pid and info["host"]


def test_second_pretrain_refused_at_once_naming_the_holder(held):
    directory, child = held
    before = _snapshot(directory)
    started = time.perf_counter()
    with pytest.raises(training.RunDirectoryLocked,
                       match=rf"in use by .*PID {child.pid} on "):
        training.pretrain(output=str(directory), verbose=0,
                          log=lambda *a: None, **TINY)
    # Refused before any data is loaded or model built.
    assert time.perf_counter() - started < 5
    assert _snapshot(directory) == before
    assert child.poll() is None  # the holder is unaffected


def test_second_pretrain_on_a_started_run_refused(held):
    """A run directory that already holds a run (config.json, history)
    is refused just the same: the holder may be resuming it."""
    directory, child = held
    (directory / "config.json").write_text("{}")
    (directory / "history.json").write_text("[]")
    before = _snapshot(directory)
    with pytest.raises(training.RunDirectoryLocked, match=str(child.pid)):
        training.pretrain(output=str(directory), verbose=0,
                          log=lambda *a: None, **TINY)
    assert _snapshot(directory) == before


def test_cli_refuses_with_exit_status_2(held, capsys):
    directory, child = held
    status = cli.main(["pretrain", "--output", str(directory), "--epochs",
                       "1", "--verbose", "0"])
    assert status == 2
    err = capsys.readouterr().err
    assert f"PID {child.pid}" in err and "--output" in err


def test_lock_released_when_the_holder_is_killed(held):
    directory, child = held
    child.send_signal(signal.SIGKILL)
    child.wait()
    lock = run_directory.RunLock(str(directory)).acquire()  # not refused
    try:
        info = json.loads((directory / training.LOCK).read_text())
        assert info["pid"] == os.getpid()
    finally:
        lock.release()
    assert (directory / training.LOCK).read_text() == ""


def test_a_left_over_lock_file_is_not_a_foreign_file(tmp_path):
    """A run killed before writing config.json leaves only run.lock: the
    directory is still usable (not "not empty, holds no run")."""
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / training.LOCK).write_text('{"pid": 1, "host": "gone"}')
    result = training.pretrain(output=str(directory), verbose=0,
                               log=lambda *a: None, **TINY)
    assert os.path.exists(result["directory"] + "/encoder.keras")
    # Released at the end: the finished run can be reported again.
    again = training.pretrain(output=str(directory), verbose=0,
                              log=lambda *a: None, **TINY)
    assert again["resumed_from"] is None
    assert (directory / training.LOCK).read_text() == ""


def test_foreign_directory_refused_without_a_lock_file(tmp_path):
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty, but holds no run"):
        training.pretrain(output=str(directory), verbose=0, **TINY)
    assert sorted(os.listdir(directory)) == ["notes.txt"]


def test_two_adadim_pretrain_processes(tmp_path):
    """The issue's case end to end: while one `adadim pretrain` trains, a
    second one on the same run directory (other --epochs) exits with status
    2 at once, naming the first; the first is undisturbed."""
    directory = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    base = [sys.executable, "-m", "keras_adadim.cli", "pretrain",
            "--output", str(directory), "--width", "4", "--eval", "none",
            "--monitor-every", "0", "--verbose", "0"]
    first = subprocess.Popen([*base, "--epochs", "200"], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # until it holds the lock
            try:
                info = json.loads((directory / training.LOCK).read_text())
                if info.get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.2)
        else:
            pytest.fail("the first run never took the lock")
        second = subprocess.run([*base, "--epochs", "3"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"PID {first.pid}" in second.stderr, second.stderr
        assert first.poll() is None  # still training
    finally:
        first.kill()
        first.wait()
