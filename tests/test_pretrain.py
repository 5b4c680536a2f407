"""`adadim pretrain` / `evaluate` / `analyze` end to end on digits (tiny
settings): the run directory, resuming a killed run, the evaluation and the
report, and their errors."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from keras_adadim import cli
from keras_adadim import presets
from keras_adadim import training
from keras_adadim._source import source_commit
from keras_adadim.analysis import report
from simulated_kill import KillAfter  # tests/simulated_kill.py
from simulated_kill import saved_weights

TINY = dict(
    epochs=2, batch_size=128, width=8, projector_hidden_dim=32,
    projector_dim=16, alpha_every=1, alpha_batches=2, monitor_every=1,
    monitor_samples=128, probe_epochs=3, few_labels=2, eval="all",
    checkpoint_every_steps=4, seed=0,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "digits")
    return training.pretrain(output=out, verbose=0, log=lambda *a: None,
                             **TINY)


def test_run_directory_contents(run):
    d = run["directory"]
    for name in ("config.json", "history.json", "history.csv",
                 "results.json", "encoder.keras", "model.keras",
                 "sample_views.png", "training_dynamics.png",
                 os.path.join("checkpoints", "last.json")):
        assert os.path.exists(os.path.join(d, name)), name
    assert os.listdir(os.path.join(d, "tensorboard"))
    config = json.load(open(os.path.join(d, "config.json")))
    assert config["epochs"] == 2 and config["preset"] == "digits"
    assert config["versions"]["backend"] == keras.backend.backend()
    assert config["versions"]["keras_adadim_commit"] == source_commit()
    history = json.load(open(os.path.join(d, "history.json")))
    assert [r["epoch"] for r in history] == [0, 1]
    for key in ("loss", "alpha", "beta", "r_entropy", "mutual_information",
                "probe_accuracy"):
        assert all(np.isfinite(r[key]) for r in history), key
    csv = open(os.path.join(d, "history.csv")).read().splitlines()
    assert len(csv) == 3 and "alpha" in csv[0].split(",")
    state = json.load(open(os.path.join(d, "checkpoints", "last.json")))
    assert (state["epoch"], state["step_in_epoch"]) == (2, 0)
    assert state["optimizer_step"] == 2 * (1437 // 128)
    # Old weights files are removed as new ones are written.
    weights = [f for f in os.listdir(os.path.join(d, "checkpoints"))
               if f.endswith(".weights.h5")]
    assert weights == [state["weights"]]


def test_results_and_alpha_updates(run):
    results = run["results"]
    updates = results["alpha_updates"]
    assert [u["epoch"] for u in updates] == [0, 1]
    for u in updates:
        assert 0 < u["alpha"] <= 1
        assert u["beta"] == pytest.approx(1e-4 * u["alpha"], rel=1e-5)
    history = run["history"]
    # The logged alpha of epoch e is the update made at its start.
    assert [h["alpha"] for h in history] == pytest.approx(
        [u["alpha"] for u in updates], rel=1e-5)
    ev = results["evaluation"]
    assert set(ev) == {"AdaDim encoder", "random-init encoder", "raw pixels"}
    for r in ev.values():
        for key in ("linear_top1", "linear_top5", "knn_top1", "knn_top5"):
            assert 0 <= r["all_labels"][key] <= 1
        assert r["all_labels"]["linear_top5"] >= r["all_labels"]["linear_top1"]
        assert 0 <= r["few_label"]["linear_top1"] <= 1
    # Raw pixels of digits are linearly separable well above chance.
    assert ev["raw pixels"]["all_labels"]["knn_top1"] > 0.9


def test_saved_model_reproduces_the_last_monitored_values(run):
    """The saved model is the trained one: H(R), I(R; Z) and ER(R)
    recomputed offline from model.keras on the monitor's held-out images
    equal the values logged at the last epoch."""
    from keras_adadim import data as data_lib
    from keras_adadim.callbacks import representation_statistics

    d = run["directory"]
    model = keras.saving.load_model(os.path.join(d, "model.keras"))
    test = data_lib.load_dataset("digits", split="test")
    images, _ = data_lib.to_numpy(test, max_examples=TINY["monitor_samples"])
    stats = representation_statistics(model.encoder, model.projector, images)
    last = run["history"][-1]
    for key in ("r_entropy", "mutual_information", "r_effective_rank"):
        assert stats[key] == pytest.approx(last[key], rel=1e-4, abs=1e-5), key
    encoder = keras.saving.load_model(os.path.join(d, "encoder.keras"))
    np.testing.assert_allclose(
        encoder.predict(images[:16], verbose=0),
        model.encoder.predict(images[:16], verbose=0), atol=1e-5)


def test_finished_run_only_reports(run):
    lines = []
    again = training.pretrain(output=run["directory"], verbose=0,
                              log=lines.append, **TINY)
    assert "finished run" in lines[0]
    assert again["results"]["alpha_updates"] == run["results"]["alpha_updates"]


def test_changed_settings_and_foreign_directory_are_refused(run, tmp_path):
    with pytest.raises(ValueError, match="different settings.*epochs"):
        training.pretrain(output=run["directory"], verbose=0,
                          **{**TINY, "epochs": 5})
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        training.pretrain(output=str(tmp_path), verbose=0, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _killed_and_resumed(directory, settings, kill_after):
    """A run killed after ``kill_after`` batch-end calls, then resumed in
    the same directory: (its last checkpoint's ``last.json``, the resumed
    run's result)."""
    with pytest.raises(KeyboardInterrupt):
        training.pretrain(output=str(directory), verbose=0,
                          log=lambda *a: None,
                          callbacks=[KillAfter(kill_after)], **settings)
    state = json.load(open(directory / "checkpoints" / "last.json"))
    resumed = training.pretrain(output=str(directory), verbose=0,
                                log=lambda *a: None, **settings)
    return state, resumed


def test_killed_run_resumes_mid_epoch(tmp_path):
    settings = {**TINY, "epochs": 3, "eval": "none", "monitor_every": 1,
                "batch_size": 256, "checkpoint_every_steps": 2}
    steps = 1437 // 256  # 5
    full = training.pretrain(output=str(tmp_path / "full"), verbose=0,
                             log=lambda *a: None, **settings)
    # Killed at global step 8 = epoch 1, step 3; the last checkpoint is at
    # epoch 1, step 2 (every 2 steps).
    state, resumed = _killed_and_resumed(tmp_path / "killed", settings, 8)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)
    assert resumed["resumed_from"] == (1, 2)
    w_full, m_full = saved_weights(full["directory"])
    w_res, m_res = saved_weights(resumed["directory"])
    assert int(m_res.optimizer.iterations) == int(
        m_full.optimizer.iterations) == 3 * steps
    assert int(keras.ops.convert_to_numpy(m_res.train_steps)) == 3 * steps
    a_full = [u["alpha"] for u in full["results"]["alpha_updates"]]
    a_res = [u["alpha"] for u in resumed["results"]["alpha_updates"]]
    assert [u["epoch"] for u in resumed["results"]["alpha_updates"]] == [
        0, 1, 2]
    np.testing.assert_allclose(a_res, a_full, rtol=1e-4)
    for a, b in zip(w_full, w_res):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    rows = json.load(open(tmp_path / "killed" / "history.json"))
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    # Every epoch's row, the resumed epoch 1 included (split 2 + 3 steps
    # between the sessions), equals the uninterrupted run's: loss, the
    # method's terms, alpha / beta and the online probe are means over all
    # the epoch's steps, not only those run after resuming.
    full_rows = json.load(open(tmp_path / "full" / "history.json"))
    from keras_adadim.methods import method_class

    step_means = ("loss", *method_class("adadim").term_names, "alpha",
                  "beta", "probe_loss", "probe_accuracy")
    for got, want in zip(rows, full_rows):
        assert set(got) == set(want)
        for key in step_means:
            assert got[key] == pytest.approx(want[key], rel=1e-3,
                                             abs=1e-6), (got["epoch"], key)
    # The monitor's epoch-end statistics are not averaged.
    assert rows[1]["r_entropy"] == pytest.approx(full_rows[1]["r_entropy"],
                                                 rel=1e-3)
    # train_seconds adds up the sessions: the killed one (up to its last
    # checkpoint) and the resumed one.
    results = resumed["results"]
    assert state["train_seconds"] > 0
    assert results["session_train_seconds"] > 0
    assert results["train_seconds"] >= (
        state["train_seconds"] + results["session_train_seconds"] - 1e-6)
    assert json.load(open(tmp_path / "killed" / "results.json"))[
        "train_seconds"] == pytest.approx(results["train_seconds"])


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras' PyTorch trainer runs one step per call "
                    "(the refusal is tested below)")
def test_steps_per_execution_run_resumes_to_the_per_step_run(tmp_path):
    """Executions of 4 steps (8 steps an epoch), killed after the third
    execution (epoch 1, checkpoint at step 4: the first execution end past
    `checkpoint_every_steps`=3) and resumed, end with the weights and epoch
    logs of the uninterrupted per-step run."""
    settings = {**TINY, "epochs": 2, "eval": "none", "monitor_every": 0,
                "batch_size": 160, "checkpoint_every_steps": 3}  # 8 steps
    full = training.pretrain(output=str(tmp_path / "full"), verbose=0,
                             log=lambda *a: None, **settings)
    settings["steps_per_execution"] = 4
    state, resumed = _killed_and_resumed(tmp_path / "k4", settings, 3)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 4)
    assert resumed["resumed_from"] == (1, 4)
    w_full, m_full = saved_weights(full["directory"])
    w_res, m_res = saved_weights(resumed["directory"])
    assert int(m_res.optimizer.iterations) == 16
    for a, b in zip(w_full, w_res):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    for got, want in zip(resumed["history"], full["history"]):
        for key in ("loss", "alpha", "probe_loss"):
            assert got[key] == pytest.approx(want[key], rel=1e-3), key


def test_steps_per_execution_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    if keras.backend.backend() == "torch":
        match = "PyTorch trainer runs one step per call"
    else:  # 1437 digits, batch 256: 5 steps an epoch
        match = ("`steps_per_execution`=2 \\(--steps-per-execution 2\\) "
                 "does not divide the 5 steps of an epoch.*divisor of 5: 1, 5")
    with pytest.raises(ValueError, match=match):
        training.pretrain(output=str(out), verbose=0, log=lambda *a: None,
                          **{**TINY, "batch_size": 256,
                             "steps_per_execution": 2})
    assert not out.exists()


def test_cli_evaluate_and_analyze(run, tmp_path, capsys):
    d = run["directory"]
    assert cli.main(["evaluate", d, "--probe-epochs", "3", "--few-labels",
                     "2"]) == 0
    out = capsys.readouterr().out
    assert "encoder" in out and "kNN" in out
    ev = json.load(open(os.path.join(d, "evaluation.json")))
    assert 0 <= ev["evaluation"]["encoder"]["all_labels"]["knn_top1"] <= 1
    # Three comparable runs with different numbers -> correlation table.
    runs = []
    for i, (acc, h, mi) in enumerate([(0.5, 10.0, 0.3), (0.7, 12.0, 0.2),
                                      (0.9, 15.0, 0.25)]):
        copy = tmp_path / f"run{i}"
        shutil.copytree(d, copy)
        hist = json.load(open(copy / "history.json"))
        hist[-1]["r_entropy"], hist[-1]["mutual_information"] = h, mi
        json.dump(hist, open(copy / "history.json", "w"))
        res = json.load(open(copy / "results.json"))
        res["evaluation"]["AdaDim encoder"]["all_labels"]["linear_top1"] = acc
        json.dump(res, open(copy / "results.json", "w"))
        runs.append(str(copy))
    out_dir = tmp_path / "report"
    assert cli.main(["analyze", *runs, "--output", str(out_dir)]) == 0
    text = (out_dir / "report.md").read_text()
    assert "h_vs_i.png" in text and "Pearson" in text
    assert (out_dir / "h_vs_i.png").exists()
    from scipy.stats import pearsonr

    r = pearsonr([0.5, 0.7, 0.9], [10.0, 12.0, 15.0])[0]
    assert f"{abs(r):.3f}" in text
    assert cli.main(["analyze", runs[0], "--output", str(out_dir),
                     "--format", "html"]) == 0
    assert "<img" in (out_dir / "report.html").read_text()


def test_analyze_bad_input(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        report.analyze([str(empty)], output=str(tmp_path / "r"))
    nohist = tmp_path / "nohist"
    shutil.copytree(run["directory"], nohist)
    os.remove(nohist / "history.json")
    with pytest.raises(ValueError, match="never finished an epoch"):
        report.analyze([str(nohist)], output=str(tmp_path / "r"))
    other = tmp_path / "other"
    shutil.copytree(run["directory"], other)
    config = json.load(open(other / "config.json"))
    config["dataset"] = "cifar10"
    json.dump(config, open(other / "config.json", "w"))
    with pytest.raises(ValueError, match="Mismatched run set"):
        report.analyze([run["directory"], str(other)],
                       output=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="given twice"):
        report.analyze([run["directory"], run["directory"]],
                       output=str(tmp_path / "r"))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the runner's code path is the same on every backend (the model and losses are tested on all three); one run, in the TF pass")
def test_zoo_train_runs_a_pretrain_recipe(tmp_path, monkeypatch):
    """`adadim zoo train NAME` runs the entry's `adadim pretrain` command and
    publishes the run with save_pretrained; from_pretrained loads it."""
    import keras_adadim as ka
    from keras_adadim import zoo

    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"models": [{
        "name": "adadim-tiny-recipe", "status": "recipe",
        "repo_id": "org/adadim-tiny-recipe", "revision": None, "sha256": {},
        "dataset": "digits", "backbone": "small_cnn",
        "command": "KERAS_BACKEND=tensorflow adadim pretrain --epochs 1 "
                   "--width 4 --projector-dim 8 --projector-hidden-dim 16 "
                   "--monitor-every 1 --monitor-samples 64 --probe-epochs 2 "
                   "--few-labels 0 --eval linear --no-baselines --verbose 0",
    }]}))
    monkeypatch.setenv(zoo.REGISTRY_ENV, str(reg))
    out = tmp_path / "published"
    assert cli.main(["zoo", "train", "adadim-tiny-recipe", "--output",
                     str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "library_name: keras" in card
    config = json.load(open(out / "config.json"))
    assert config["recipe"]["epochs"] == 1 and config["recipe"]["width"] == 4
    encoder = ka.from_pretrained(str(out))
    run_encoder = keras.saving.load_model(out / "run" / "encoder.keras")
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype="float32")
    np.testing.assert_allclose(encoder.predict(x, verbose=0),
                               run_encoder.predict(x, verbose=0), atol=1e-6)


# ------------------------------------------------------- every method's run
_METHOD_FLAGS = ["--epochs", "2", "--batch-size", "128", "--width", "8",
                 "--projector-hidden-dim", "32", "--projector-dim", "16",
                 "--monitor-every", "1",
                 "--monitor-samples", "128", "--eval", "knn",
                 "--probe-epochs", "3", "--few-labels", "0", "--no-baselines",
                 "--checkpoint-every", "4", "--seed", "0"]


def _method_flags(method, queue_size=None):
    flags = ["pretrain", "--method", method, *_METHOD_FLAGS]
    if presets.METHODS[method]["predictor"] == "yes":
        flags += ["--predictor-hidden-dim", "32"]
    if queue_size is not None:
        flags += ["--queue-size", str(queue_size)]
    return flags


@pytest.mark.parametrize("method", presets.method_names())
def test_pretrain_cli_accepts_every_method(method, capsys):
    """`adadim pretrain --method M` resolves every registered method with
    its flags and its registry settings. The run itself is one code path
    for every method (test_methods.py trains each on all three backends;
    the NNCLR run below goes end to end through the command line)."""
    assert cli.main([*_method_flags(method), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["method"] == method
    for key, value in presets.METHODS[method]["settings"].items():
        assert config[key] == value, key
    assert presets.METHODS[method]["reference"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the runner's code path is the same on every "
                    "backend (test_methods.py trains each method on all "
                    "three); one end-to-end run, in the TF pass")
def test_pretrain_cli_runs_a_method_end_to_end_and_resumes(tmp_path):
    """`adadim pretrain --method nnclr` on digits: run directory, history
    with the method's terms and the monitor's statistics, kNN evaluation;
    a killed run resumes to the uninterrupted run's weights and queue
    (teacher state is restored like any weight: test_methods.py)."""
    method = "nnclr"  # a queue: the state a resume must restore in order
    flags = _method_flags(method, queue_size=64)
    full = str(tmp_path / "full")
    assert cli.main([*flags, "--output", full, "--verbose", "0"]) == 0
    config = json.load(open(os.path.join(full, "config.json")))
    assert config["method"] == method
    history = json.load(open(os.path.join(full, "history.json")))
    from keras_adadim.methods import method_class

    terms = method_class(method).term_names
    for key in ("loss", *terms, "r_entropy", "mutual_information",
                "r_effective_rank", "probe_accuracy"):
        assert all(np.isfinite(row[key]) for row in history), key
    results = json.load(open(os.path.join(full, "results.json")))
    knn = results["evaluation"]["AdaDim encoder"]["all_labels"]["knn_top1"]
    assert knn > 0.5, results["evaluation"]
    killed = str(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        config = cli.pretrain_config(
            cli.build_parser().parse_args([*flags, "--output", killed]))
        training.pretrain(config, output=killed, verbose=0,
                          log=lambda *a: None, callbacks=[KillAfter(14)])
    assert cli.main([*flags, "--output", killed, "--verbose", "0"]) == 0
    w_full, m_full = saved_weights(full)
    w_res, m_res = saved_weights(killed)
    for a, b in zip(w_full, w_res):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # The method's state (in the weights compared above) by name, too.
    state = [m.method.support.queue for m in (m_full, m_res)]
    np.testing.assert_allclose(*(np.asarray(s) for s in state),
                               rtol=1e-3, atol=1e-4)


def test_results_table_names_the_method_of_the_encoder():
    """results.json keeps the key "AdaDim encoder" for the trained encoder
    (its readers: zoo cards, analyze, the benchmark), but the table a BYOL
    run prints calls it the BYOL encoder."""
    from keras_adadim import run_directory as rd

    ev = {"all_labels": {"linear_top1": 0.5, "num_test": 10}}
    results = {"encoder_label": "BYOL encoder",
               "evaluation": {rd.ENCODER_KEY: ev, rd.RANDOM_INIT_KEY: ev}}
    lines = []
    training.print_results(results, log=lines.append)
    table = "\n".join(lines)
    assert "BYOL encoder" in table and rd.ENCODER_KEY not in table
    assert rd.RANDOM_INIT_KEY in table
    lines.clear()
    training.print_results({"evaluation": {rd.ENCODER_KEY: ev}}, log=lines.append)
    assert rd.ENCODER_KEY in "\n".join(lines)  # results written before the label
