"""benchmarks/bench_methods.py: the cells' commands and the aggregated table
(on run directories written here; no training)."""

import json
import os
import runpy

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(os.path.join(ROOT, "benchmarks", "bench_methods.py"))


def _fake_run(d, linear, knn, few, stats, seconds, epochs=3, commit=None):
    os.makedirs(d)
    ev = {"linear_top1": linear, "knn_top1": knn}
    results = {"train_seconds": seconds, "evaluation": {
        "AdaDim encoder": {"all_labels": ev, "few_label": {"linear_top1": few}},
        "random-init encoder": {"all_labels": {"linear_top1": 0.5, "knn_top1": 0.4},
                                "few_label": {"linear_top1": 0.3}}}}
    history = [{"epoch": 0, "loss": 1.0},
               {"epoch": 1, "loss": 0.9, "r_entropy": 9.0, "mutual_information": 9.0,
                "r_effective_rank": 9.0},
               {"epoch": 2, "loss": 0.8, **stats}]
    for name, data in (("results.json", results), ("history.json", history),
                       ("config.json", {"epochs": epochs, "versions": {
                           "keras_adadim_commit": commit}})):
        with open(os.path.join(d, name), "w") as f:
            json.dump(data, f)


def test_table_is_mean_and_std_over_seeds(bench, tmp_path, capsys):
    args = bench["parse_args"](["--out", str(tmp_path), "--methods", "byol,simclr",
                                "--seeds", "0,1"])
    values = {("byol", 0): 0.70, ("byol", 1): 0.80, ("simclr", 0): 0.60}
    for (m, s), acc in values.items():
        _fake_run(bench["run_dir"](args, m, s), acc, acc - 0.1, acc - 0.2,
                  {"r_entropy": 2.0 + s, "mutual_information": 0.1 * (s + 1),
                   "r_effective_rank": 10.0 * (s + 1)}, seconds=30.0 * (s + 1),
                  commit=f"sha{s}")
    bench["aggregate"](args)
    written = json.load(open(tmp_path / "table.json"))
    # Each finished cell's code, read from its run (seed 1 of simclr never ran).
    assert written["code"] == {"byol:0": "sha0", "byol:1": "sha1",
                               "simclr:0": "sha0"}
    table = written["table"]
    assert table["byol"]["seeds"] == 2 and table["simclr"]["seeds"] == 1
    mean, std = table["byol"]["linear"]
    assert mean == pytest.approx(0.75) and std == pytest.approx(np.std([0.7, 0.8], ddof=1))
    # The last monitored row, not an earlier one.
    assert table["byol"]["r_entropy"][0] == pytest.approx(2.5)
    assert table["byol"]["sec_per_epoch"][0] == pytest.approx(15.0)
    assert table["simclr"]["linear"] == [pytest.approx(0.6), None]
    assert table["random-init encoder"]["seeds"] == 3
    md = open(tmp_path / "table.md").read()
    assert "| byol | 2 | 0.750 ± 0.071 |" in md
    assert "| simclr | 1 | 0.600 |" in md


def test_cell_commands_share_the_budget(bench, tmp_path):
    args = bench["parse_args"](["--out", str(tmp_path)])
    cmds = {m: bench["command"](args, m, 1) for m in ("adadim", "byol", "nnclr", "barlow_twins")}
    for cmd in cmds.values():
        for flag, value in (("--epochs", "15"), ("--batch-size", "256"),
                            ("--seed", "1"), ("--backbone", "small_cnn")):
            assert cmd[cmd.index(flag) + 1] == value
    assert "--predictor-hidden-dim" in cmds["byol"]
    assert "--predictor-hidden-dim" not in cmds["barlow_twins"]
    assert "--predictor-hidden-dim" not in cmds["adadim"]
    assert "--queue-size" in cmds["nnclr"] and "--queue-size" not in cmds["byol"]
    assert not any("--num-prototypes" in cmd for cmd in cmds.values())
    args = bench["parse_args"](["--out", str(tmp_path), "--num-prototypes", "64"])
    swav, byol = (bench["command"](args, m, 0) for m in ("swav", "byol"))
    assert swav[swav.index("--num-prototypes") + 1] == "64"
    assert "--num-prototypes" not in byol  # BYOL has no prototypes
    with pytest.raises(ValueError, match="Unknown method"):
        bench["cells"](bench["parse_args"](["--out", str(tmp_path), "--only", "byl:0"]))
