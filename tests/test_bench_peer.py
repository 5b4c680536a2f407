"""benchmarks/bench_peer.py: contestants, ratios, the lightly-missing
message, the Keras worker of this pass's backend (in-process) and the
interleaving parent with a real worker subprocess, all at a tiny size.
lightly is not needed: its contestants run in their own environment."""

import os
import runpy
import statistics
import sys

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = keras.backend.backend()
TINY = ["--encoder", "small_cnn", "--width-multiplier", "0.5",
        "--projector-dim", "16", "--batch", "4", "--image-size", "8"]


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(os.path.join(ROOT, "benchmarks", "bench_peer.py"))


def _mlp_params(d, h, f):
    """Trainable parameters of the baseline projector: two bias-free Dense
    + BN (gamma, beta) layers, then Dense with bias."""
    return d * h + 2 * h + h * h + 2 * h + h * f + f


def _resnet18_cifar_params():
    """torchvision's resnet18 with conv1 -> 3x3 and no fc, by closed form."""
    total = 3 * 3 * 3 * 64 + 2 * 64
    cin = 64
    for planes in (64, 128, 256, 512):
        for i in range(2):
            stride = 2 if planes != 64 and i == 0 else 1
            total += 9 * cin * planes + 2 * planes + 9 * planes * planes + 2 * planes
            if stride != 1 or cin != planes:
                total += cin * planes + 2 * planes
            cin = planes
    return total


def test_contestants_and_knobs(bench):
    args = bench["parse_args"](["--knobs", "xla,compile,channels_last"])
    names = args.names
    assert names[:11] == list(bench["DEFAULT_CONTESTANTS"])
    assert set(names[11:]) == {
        "lightly/simclr+channels_last", "lightly/vicreg+channels_last",
        "keras/tensorflow+xla", "adadim-simclr/tensorflow+xla", "adadim/tensorflow+xla",
        "keras/torch+compile", "adadim-simclr/torch+compile", "adadim/torch+compile"}
    assert bench["reference_of"]("adadim/jax") == "lightly/vicreg"
    assert bench["reference_of"]("adadim-simclr/torch+compile") == "lightly/simclr"
    assert bench["bare_of"]("adadim/tensorflow+xla") == "keras/tensorflow+xla"
    assert bench["bare_of"]("keras/jax") is None
    for bad in ("adadim/cntk", "lightly/byol", "adadim/jax+xla", "keras/torch+fast"):
        with pytest.raises(ValueError, match="--contestants"):
            bench["parse_args"](["--contestants", bad])
    with pytest.raises(ValueError, match="--knobs"):
        bench["parse_args"](["--knobs", "turbo"])
    with pytest.raises(ValueError, match="--width-multiplier"):
        bench["parse_args"](["--width-multiplier", "0.5"])  # lightly included


def test_ratios_are_medians_and_paired_rounds(bench):
    rng = np.random.default_rng(0)
    names = ["lightly/simclr", "keras/torch", "adadim-simclr/torch"]
    times = {n: rng.uniform(1, 3, (4, 3)).tolist() for n in names}
    res = bench["summarize"](names, times, 64)
    per = res["contestants"]
    ips = {n: 64 / np.median(np.ravel(times[n])) for n in names}
    rounds = {n: 64 / np.median(times[n], axis=1) for n in names}
    for n in names:
        assert per[n]["images_per_s"] == pytest.approx(ips[n])
    r = per["adadim-simclr/torch"]["vs_lightly"]
    assert r["of"] == "lightly/simclr"
    assert r["median"] == pytest.approx(ips["adadim-simclr/torch"] / ips["lightly/simclr"])
    paired = rounds["adadim-simclr/torch"] / rounds["lightly/simclr"]
    assert r["paired"] == pytest.approx(np.median(paired))
    assert r["rounds"] == pytest.approx([paired.min(), paired.max()])
    bare = per["adadim-simclr/torch"]["vs_bare_keras"]
    assert bare["median"] == pytest.approx(ips["adadim-simclr/torch"] / ips["keras/torch"])
    assert per["lightly/simclr"]["vs_lightly"] is None
    assert res["best"]["simclr"]["contestant"] == "adadim-simclr/torch"
    assert "vicreg" not in res["best"]  # no AdaDim contestant timed


def test_missing_lightly_says_how_to_install_it(bench, tmp_path):
    for python, problem in ((str(tmp_path / "python"), "does not exist"),
                            (sys.executable, "cannot import lightly")):
        with pytest.raises(ValueError) as e:
            bench["main"](["--peer-python", python, "--rounds", "1"])
        msg = str(e.value)
        assert "--peer-python" in msg and problem in msg
        assert "pip install torch==2.14.1 torchvision==0.29.1 lightly" in msg
        assert "--contestants keras/tensorflow," in msg


def test_the_network_is_lightlys():
    """torchvision's resnet18 with the CIFAR stem (3x3 conv1) and no fc, and
    lightly's VICRegProjectionHead(512, 2048, 2048), by closed form: the
    counts every contestant of a default run must report (the run refuses
    contestants whose counts differ; keras_adadim's ResNet-18 count is
    tested in tests/models/test_backbones.py)."""
    # torchvision: 11,176,512 without fc, of which conv1 7x7x3x64 = 9,408.
    assert _resnet18_cifar_params() == 11_176_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
    assert _mlp_params(512, 2048, 2048) == 9_447_424


def test_keras_worker_bare_and_library_simclr_agree(bench):
    """This pass's backend, in-process: bare Keras (inline NT-Xent) and
    AdaDimModel(method="simclr") start from the same weights, so their
    first losses are equal (two implementations of NT-Xent)."""
    args = bench["parse_args"](["--contestants", f"keras/{BACKEND}", *TINY])
    rng = np.random.default_rng(0)
    x1, x2 = (rng.random((4, 8, 8, 3), dtype=np.float32) for _ in range(2))
    losses = {}
    for family in ("keras", "adadim-simclr"):
        job = {**bench["parse_contestant"](f"{family}/{BACKEND}"), "threads": 0,
               "seed": 0, "encoder": args.encoder, "image_size": 8,
               "width_multiplier": 0.5, "projector_dim": 16, "batch": 4}
        step, params, versions = bench["_keras_step"](job, x1, x2)
        # small_cnn width 4: three convs (3->4->8->16) + BN, representation 16.
        conv = 9 * 3 * 4 + 8 + 9 * 4 * 8 + 16 + 9 * 8 * 16 + 32
        assert params == {"encoder": conv, "projector": _mlp_params(16, 16, 16)}
        assert versions["backend"] == BACKEND
        losses[family] = [step(), step()]
    assert np.isfinite(np.ravel(list(losses.values()))).all()
    assert losses["keras"][0] == pytest.approx(losses["adadim-simclr"][0], rel=1e-5)
    # NT-Xent of 2b = 8 rows lies in [0, log(7) + 2/tau]; collapsed: log 7.
    assert 0 < losses["keras"][0] < np.log(7) + 20
    assert losses["keras"][1] != losses["keras"][0]  # a step was taken


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the parent's orchestration is backend-independent: run in the "
           "TensorFlow pass only (a worker subprocess costs a backend start "
           "and compile); each backend's worker code is tested in-process, "
           "in every pass, above")
def test_parent_interleaves_worker_subprocesses(bench, tmp_path):
    """The parent with a real worker subprocess: started, its
    parameters reported, timed for 2 rounds of 2 steps over the pipe, and
    the summary made of exactly those times."""
    args = bench["parse_args"](["--contestants", f"keras/{BACKEND}", *TINY,
                                "--rounds", "2", "--steps", "2", "--warmup", "0",
                                "--log-dir", str(tmp_path / "logs")])
    lines = []
    res = bench["run"](args, say=lines.append)
    name = f"keras/{BACKEND}"
    c = res["contestants"][name]
    assert len(c["all_step_s"]) == 4 and min(c["all_step_s"]) > 0
    assert c["images_per_s"] == pytest.approx(4 / statistics.median(c["all_step_s"]))
    assert len(c["round_images_per_s"]) == 2
    cpu = res["cpu"]["contestants"][name]  # the same steps, by CPU time
    assert len(cpu["all_step_s"]) == 4 and min(cpu["all_step_s"]) > 0
    assert cpu["images_per_s"] == pytest.approx(4 / statistics.median(cpu["all_step_s"]))
    info = res["workers"][name]
    assert info["versions"]["backend"] == BACKEND
    assert info["params"]["projector"] == _mlp_params(16, 16, 16)
    assert np.isfinite(info["loss"])
    assert lines[0].startswith(name) and lines[-1].startswith("round 2/2")
    assert bench["table"](res).count("\n") == 2  # header, rule, one row
