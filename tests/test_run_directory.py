"""``keras_adadim.run_directory``: atomic writes, the files a killed session
leaves behind and their clean-up on resume, and the errors of a run's
unreadable files (each names the file)."""

import json
import os

import numpy as np
import pytest

from keras_adadim import run_directory as rd


def _tree(root):
    return sorted(
        os.path.relpath(os.path.join(base, f), root)
        for base, _, files in os.walk(root) for f in files)


# ------------------------------------------------------------ atomic writes
def test_atomic_write_json_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")
    rd.atomic_write_json(path, {"a": np.float32(0.5), "b": np.arange(3),
                                "c": np.int64(7)})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2],
                                            "c": 7}
    assert _tree(tmp_path) == ["x.json"]


def test_a_failed_json_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        rd.atomic_write_json(path, {"bad": object()})
    assert path.read_text() == '{"old": 1}'
    assert _tree(tmp_path) == ["x.json"]


@pytest.mark.parametrize("name,temporary", [
    ("encoder.keras", "encoder.partial.keras"),
    ("step-1.weights.h5", "step-1.partial.weights.h5"),
    ("other.bin", "other.bin.tmp"),
])
def test_atomic_save_keeps_the_suffix_keras_checks(tmp_path, name,
                                                   temporary):
    seen = []

    def save(tmp):
        seen.append(os.path.basename(tmp))
        with open(tmp, "w") as f:
            f.write("data")

    rd.atomic_save(save, tmp_path / name)
    assert seen == [temporary]
    assert _tree(tmp_path) == [name]


def test_a_save_that_fails_leaves_the_old_file(tmp_path):
    (tmp_path / "encoder.keras").write_text("old")

    def save(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt  # killed mid-save

    with pytest.raises(KeyboardInterrupt):
        rd.atomic_save(save, tmp_path / "encoder.keras")
    assert (tmp_path / "encoder.keras").read_text() == "old"


# ---------------------------------------------------- left-over partials
def _killed_run(root):
    """What a session killed at awkward moments leaves."""
    run = root / "run"
    (run / rd.CHECKPOINTS).mkdir(parents=True)
    (run / rd.CONFIG).write_text("{}")
    (run / rd.HISTORY).write_text("[]")
    ckpt = run / rd.CHECKPOINTS
    (ckpt / "step-000000020.weights.h5").write_text("current")
    (ckpt / rd.CHECKPOINT_STATE).write_text(
        json.dumps({"weights": "step-000000020.weights.h5"}))
    leftovers = [
        run / "history.json.tmp",          # killed in a JSON write
        run / "history.csv.tmp",
        run / "encoder.partial.keras",     # killed saving the encoder
        ckpt / "last.json.tmp",
        ckpt / "step-000000030.weights.h5",  # weights saved, state not yet
        ckpt / "step-000000040.partial.weights.h5",
    ]
    for path in leftovers:
        path.write_text("partial")
    return run, leftovers


def test_remove_partial_files_removes_exactly_the_leftovers(tmp_path):
    run, leftovers = _killed_run(tmp_path)
    (run / "notes.txt").write_text("the user's")  # never touched
    removed = rd.RunDirectory(run).remove_partial_files()
    assert sorted(removed) == sorted(str(p) for p in leftovers)
    assert _tree(run) == sorted([
        "checkpoints/last.json", "checkpoints/step-000000020.weights.h5",
        "config.json", "history.json", "notes.txt"])


@pytest.mark.parametrize("state", ["{not json", '{"weights": 3}', "[1]"])
def test_an_unreadable_state_keeps_every_weights_file(tmp_path, state):
    run, _ = _killed_run(tmp_path)
    (run / rd.CHECKPOINTS / rd.CHECKPOINT_STATE).write_text(state)
    rd.RunDirectory(run).remove_partial_files()
    weights = [f for f in _tree(run) if f.endswith(".weights.h5")]
    assert weights == ["checkpoints/step-000000020.weights.h5",
                       "checkpoints/step-000000030.weights.h5"]


# ------------------------------------------------------- unreadable files
def _run_dir(tmp_path, **files):
    run = tmp_path / "run"
    run.mkdir()
    contents = {rd.CONFIG: "{}", rd.HISTORY: '[{"epoch": 0}]', **files}
    for name, text in contents.items():
        if text is not None:
            (run / name).write_text(text)
    return run


@pytest.mark.parametrize("name,text", [
    (rd.CONFIG, ""), (rd.CONFIG, '{"dataset": "dig'), (rd.CONFIG, "[1, 2]"),
    (rd.HISTORY, ""), (rd.HISTORY, "[{"), (rd.HISTORY, '{"epoch": 0}'),
    (rd.HISTORY, "[1, 2]"), (rd.HISTORY, "[]"),
    (rd.RESULTS, "{tru"),
])
def test_a_bad_run_file_is_named(tmp_path, name, text):
    run = _run_dir(tmp_path, **{name: text})
    with pytest.raises(ValueError) as e:
        rd.read_run(str(run))
    assert str(run / name) in str(e.value)


def test_not_a_run_named(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        rd.read_run(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="has no config.json"):
        rd.read_run(str(tmp_path))
    run = _run_dir(tmp_path, **{rd.HISTORY: None})
    with pytest.raises(ValueError, match="never finished an epoch"):
        rd.read_run(str(run))


def test_checkpoint_state_errors_named(tmp_path):
    from keras_adadim.callbacks.run_checkpoint import read_state

    for text in ("", "[1]", '{"weights": 5}', '{"weights": "gone.h5"}'):
        (tmp_path / rd.CHECKPOINT_STATE).write_text(text)
        with pytest.raises(ValueError, match="Delete the checkpoint") as e:
            read_state(str(tmp_path))
        assert str(tmp_path / rd.CHECKPOINT_STATE) in str(e.value)


def test_history_rows_are_written_as_json_and_csv(tmp_path):
    run = rd.RunDirectory(tmp_path)
    rows = [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.0,
                                        "r_entropy": 2.0}]
    run.write_history(rows)
    assert run.read_history() == rows
    assert run.read_history(before_epoch=1) == rows[:1]
    assert (tmp_path / rd.HISTORY_CSV).read_text().splitlines() == [
        "epoch,loss,r_entropy", "0,1.5,nan", "1,1.0,2.0"]


def test_a_resume_removes_what_the_killed_session_left(tmp_path):
    """A run whose last session died after its last checkpoint (no
    encoder, no results) and left partial files: the resume removes them,
    says so, and finishes."""
    from keras_adadim import training

    out = tmp_path / "run"
    small = dict(dataset="digits", epochs=1, batch_size=128, width=4,
                 projector_hidden_dim=16, projector_dim=8, alpha_every=1,
                 alpha_batches=1, monitor_every=0, eval="none",
                 checkpoint_every_steps=4, seed=0)
    training.pretrain(output=str(out), verbose=0, log=lambda *a: None,
                      **small)
    for name in (rd.ENCODER_FILE, rd.MODEL_FILE, rd.RESULTS):
        (out / name).unlink()
    leftovers = [out / "encoder.partial.keras", out / "history.json.tmp",
                 out / rd.CHECKPOINTS / "step-000000099.weights.h5"]
    for path in leftovers:
        path.write_text("partial")
    logs = []
    training.pretrain(output=str(out), verbose=0, log=logs.append, **small)
    for path in leftovers:
        assert not path.exists()
        assert any(str(path) in line for line in logs), logs
    assert (out / rd.ENCODER_FILE).exists() and (out / rd.RESULTS).exists()


def test_no_mid_epoch_checkpoint_after_a_bad_batch(tmp_path):
    """The model's guard reads the loss only every few batches: a
    checkpoint due in between is not written while the epoch's loss is
    non-finite (a resume would start from the bad state)."""
    from keras_adadim.callbacks import RunCheckpoint

    saved = []
    ckpt = RunCheckpoint(str(tmp_path), steps_per_epoch=10, every_steps=2)
    ckpt.save = lambda epoch, step: saved.append(step)
    ckpt.on_train_batch_end(1, {"loss": np.float32(np.nan)})
    ckpt.on_train_batch_end(3, {"loss": np.float32(0.5)})
    assert saved == [4]
