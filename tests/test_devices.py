"""``adadim pretrain --devices N`` (``pretrain(devices=N)``): the run on 2
data-parallel devices (TF ``MirroredStrategy``, JAX ``DataParallel``; virtual
CPU devices here) logs the losses of the 1-device run, resumes after a kill
mid-epoch in the same run directory, and evaluates; PyTorch and impossible
device counts are refused before any work.

Device counts must be set before a backend starts, so every run is a
subprocess; this file is also its worker script (``python
tests/test_devices.py <json>``). The module drives TensorFlow and JAX
itself, so it runs in the TensorFlow pass of the suite only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MARKER = "DEVICES_JSON:"
STEPS_PER_EPOCH = 4
# A small learning rate: this tiny AdaDim run is chaotic at the default
# one (switching oneDNN off, a pure round-off change, moves the 1-device
# loss by 1% within 3 steps), and the test compares runs whose round-off
# differs. Exact multi-device equality of the step itself is
# tests/test_distributed.py's subject.
SETTINGS = dict(
    learning_rate=1e-5, epochs=2, batch_size=32, width=4, projector_hidden_dim=16,
    projector_dim=8, alpha_every=1, alpha_batches=1, monitor_every=0,
    eval="linear", probe_epochs=2, few_labels=0,
    eval_baselines=False, checkpoint_every_steps=2, seed=0,
    test_split="test",
)


# ------------------------------------------------------------------ worker
def _worker(spec):
    import keras

    from keras_adadim import training

    class Kill(keras.callbacks.Callback):
        """Stand-in for a kill: stop the process after a checkpoint."""

        def on_train_batch_end(self, batch, logs=None):
            step = int(keras.ops.convert_to_numpy(
                self.model.optimizer.iterations))
            if spec.get("kill_at") and step >= spec["kill_at"]:
                raise KeyboardInterrupt

    try:
        run = training.pretrain(
            dataset=spec["data"], output=spec["out"], verbose=0,
            callbacks=[Kill()], log=lambda *a: None,
            **{**SETTINGS, "devices": spec["devices"],
               "eval": spec.get("eval", SETTINGS["eval"])})
    except KeyboardInterrupt:
        print(MARKER + json.dumps({"killed": True}))
        return
    evaluation = run["results"].get("evaluation")
    print(MARKER + json.dumps({
        "history": run["history"], "resumed_from": run["resumed_from"],
        "linear_top1": evaluation and evaluation["AdaDim encoder"][
            "all_labels"]["linear_top1"]}))


# ------------------------------------------------------------------- tests
pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="drives the TensorFlow and JAX backends itself (subprocesses)")


def _data(path):
    rng = np.random.default_rng(0)
    n = 32 * STEPS_PER_EPOCH
    base = rng.integers(0, 255, size=(4, 8, 8, 1))
    labels = rng.integers(0, 4, size=n)
    noise = rng.integers(-30, 30, size=(n, 8, 8, 1))
    images = np.clip(base[labels] + noise, 0, 255).astype("uint8")
    test_labels = np.arange(32) % 4
    test = np.clip(base[test_labels] + noise[:32], 0, 255).astype("uint8")
    np.savez(path, train_images=images, train_labels=labels,
             test_images=test, test_labels=test_labels)
    return str(path)


def _start(backend, **spec):
    """A worker run, started (not waited for: independent runs overlap,
    which halves this file's wall time on a 2-core machine)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    env.pop("XLA_FLAGS", None)
    if backend == "jax" and spec["devices"] > 1:
        # What `adadim pretrain --devices` sets (cli._virtual_cpu_devices).
        env["XLA_FLAGS"] = (
            f"--xla_force_host_platform_device_count={spec['devices']}")
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(spec)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    assert proc.returncode == 0 and lines, stdout + stderr[-3000:]
    return json.loads(lines[-1][len(MARKER):])


def _losses(history, key):
    return np.array([row[key] for row in history])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_equal_one_and_resume_mid_epoch(backend, tmp_path):
    data = _data(tmp_path / "d.npz")
    # Only the resumed run evaluates (`eval` may change on resume): each
    # evaluation costs these subprocesses compile time.
    one = _start(backend, data=data, out=str(tmp_path / "one"), devices=1,
                 eval="none")
    out = str(tmp_path / "two")
    # Killed in the second epoch (after a mid-epoch checkpoint), resumed in
    # the same directory on the same 2 devices.
    killed = _start(backend, data=data, out=out, devices=2, eval="none",
                    kill_at=STEPS_PER_EPOCH + 2)
    try:
        assert _finish(killed) == {"killed": True}
        two = _finish(_start(backend, data=data, out=out, devices=2))
        one = _finish(one)
    finally:
        for proc in (one, killed):
            if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                proc.kill()
    assert two["resumed_from"] == [1, 2]
    assert len(two["history"]) == len(one["history"]) == 2
    for key in ("loss", "alpha", "probe_loss"):
        np.testing.assert_allclose(
            _losses(two["history"], key), _losses(one["history"], key),
            rtol=1e-3, atol=1e-4, err_msg=key)
    assert 0.0 <= two["linear_top1"] <= 1.0
    config = json.loads((Path(out) / "config.json").read_text())
    assert config["devices"] == 2


def test_impossible_device_counts_refused_before_any_work(tmp_path):
    data = _data(tmp_path / "d.npz")
    for backend, devices, message in [
        ("torch", 2, "torch backend trains on one device"),
        ("jax", 3, "JAX sees 1 cpu device"),  # no XLA_FLAGS: 1 device
    ]:
        env = dict(os.environ, KERAS_BACKEND=backend,
                   TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
                   CUDA_VISIBLE_DEVICES="")
        env.pop("XLA_FLAGS", None)
        out = tmp_path / f"run-{backend}"
        code = (
            "from keras_adadim import training\n"
            f"training.pretrain(dataset={data!r}, output={str(out)!r}, "
            f"verbose=0, devices={devices}, epochs=1, "
            f"batch_size={30 if devices == 3 else 32})\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                              env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode != 0
        assert message in proc.stderr, proc.stderr[-2000:]
        assert "devices" in proc.stderr
        assert not out.exists()


def test_batch_not_divisible_by_devices_refused():
    from keras_adadim import training

    with pytest.raises(ValueError, match="batch_size`=30 does not split "
                       "into `devices`=4"):
        training.configure(None, dict(dataset="digits", batch_size=30,
                                      devices=4))


def test_devices_flag_parsed_and_recorded():
    from keras_adadim import cli

    args = cli.build_parser().parse_args(["pretrain", "--devices", "2"])
    assert cli.pretrain_config(args)["devices"] == 2
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["pretrain", "--devices", "0"])


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
