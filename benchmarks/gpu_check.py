"""The prepared GPU check (issue 14): one short run on one GPU that writes
every number as JSON. Run it through ``benchmarks/gpu_check.sh``, which
sets the environment up (see there); at the default sizes it takes at most
``--budget`` seconds (default 420, i.e. 7 minutes, inside the issue's 8).

Sections, per backend (TensorFlow, JAX, PyTorch: those that import here):

* ``step``: the training step of ResNet-18 with the CIFAR stem, 32x32, the
  baseline 3-layer projector, batch ``--batch`` (256) of two views, SGD,
  for AdaDim (VICReg, InfoNCE and L_mut all computed) and SimCLR,
  interleaved, one in-memory batch repeated: ``bench_peer.py``'s Keras
  contestants ``adadim/<backend>`` and ``adadim-simclr/<backend>``, so
  the numbers are comparable with the CPU tables in benchmarks/README.md.
  Reported: median ms per step, images/s and AdaDim / SimCLR.
* ``augment``: two-view augmentation throughput (the asymmetric scheme, 32
  px, batch ``--batch``): the device path (``DeviceAugmentation``, compiled
  where the backend compiles) and, where TensorFlow is installed, the host
  ``tf.data`` path over the same images, interleaved round by round.
* ``epoch``: one synthetic CIFAR-size epoch end to end (``--epoch-images``
  random 32x32x3 images, ResNet-18, AdaDim, batch ``--batch``). With
  TensorFlow installed it is ``training.pretrain`` itself (the ``tf.data``
  pipeline, the model, the callbacks, the checkpoints) with
  ``augment_on="device"`` and, for the comparison, ``"host"``; without it
  (the pipeline is ``tf.data``), ``AdaDimModel.fit`` on the in-memory array
  with the device augmentation inside the step, which is the part that
  does not need the pipeline. Reported: seconds of the epoch, of its first
  (compiling) step, and images/s; on TensorFlow and JAX also the device
  path with ``steps_per_execution`` K (the largest divisor of the epoch's
  steps up to 16: Keras reads the logs on the host once per K steps).

A section that cannot run (a backend or TensorFlow not installed, or the
budget spent) is reported as such in the JSON, never silently left out.

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --quick --out /tmp/g.json   # CPU, seconds
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "GPU_CHECK_JSON:"
BACKENDS = ("tensorflow", "jax", "torch")
SECTIONS = ("step", "augment", "epoch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--backends", default="available",
                   help="comma-separated, or 'available' (those that import)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epoch-images", type=int, default=50000)
    p.add_argument("--budget", type=float, default=420,
                   help="seconds for the whole check; each section gets a "
                        "share of what is left")
    p.add_argument("--threads", type=int, default=8,
                   help="CPU threads of bench_peer's workers")
    p.add_argument("--quick", action="store_true",
                   help="tiny network and data: checks the script on a CPU")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def importable(module):
    """Whether ``module`` imports, asked of a fresh interpreter (importing
    TensorFlow here would start it in the parent)."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True, timeout=300)
    return proc.returncode == 0


def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONUNBUFFERED="1",
               # Several processes share one GPU: JAX and TensorFlow take
               # memory as they need it instead of most of it up front.
               XLA_PYTHON_CLIENT_PREALLOCATE="false",
               TF_FORCE_GPU_ALLOW_GROWTH="true")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# ---------------------------------------------------------------- sections
def step_section(args, backend, timeout):
    """AdaDim and SimCLR steps, interleaved, by bench_peer.py."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "peer.json")
        cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_peer.py"),
               "--contestants", f"adadim/{backend},adadim-simclr/{backend}",
               "--batch", str(args.batch), "--threads", str(args.threads),
               "--rounds", "5", "--steps", "5", "--warmup", "3",
               "--timeout", str(timeout), "--out", out]
        if args.quick:
            cmd += ["--encoder", "small_cnn", "--projector-dim", "32",
                    "--rounds", "2", "--steps", "1", "--warmup", "1"]
        proc = subprocess.run(cmd, env=_env(backend), capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out):
            return {"error": f"bench_peer.py exited {proc.returncode}",
                    "log_tail": (proc.stdout + proc.stderr)[-2000:]}
        with open(out, encoding="utf-8") as f:
            peer = json.load(f)
    per = peer["contestants"]
    ms = {name: per[f"{name}/{backend}"]["median_step_s"] * 1e3
          for name in ("adadim", "adadim-simclr")}
    return {"network": "resnet18" if not args.quick else "small_cnn",
            "batch": args.batch,
            "adadim_ms": ms["adadim"], "simclr_ms": ms["adadim-simclr"],
            "adadim_images_per_s": args.batch / ms["adadim"] * 1e3,
            "simclr_images_per_s": args.batch / ms["adadim-simclr"] * 1e3,
            # AdaDim's step time over SimCLR's (issue 14's target: <= 1.05)
            "adadim_over_simclr": ms["adadim"] / ms["adadim-simclr"],
            "bench_peer_settings": peer["settings"]}


def _worker_section(args, backend, section, timeout):
    job = {"section": section, "batch": args.batch,
           "epoch_images": args.epoch_images, "quick": args.quick}
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--out", "-",
         "--worker", json.dumps(job)],
        env=_env(backend), capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        return {"error": f"worker exited {proc.returncode}",
                "log_tail": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(lines[-1][len(MARKER):])


# ------------------------------------------------------------------ worker
def _images(n, size, seed=0):
    import numpy as np

    return np.random.default_rng(seed).integers(
        0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _devices():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "torch":
        import torch

        return ([torch.cuda.get_device_name(0)] if torch.cuda.is_available()
                else ["cpu"])
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices()]


def augment_worker(job):
    """Device (and, with TensorFlow, host) two-view throughput."""
    import keras
    import numpy as np

    from keras_adadim.data.device_augment import device_augmentations

    batch, size = job["batch"], 32
    x = _images(batch, size).astype("float32") / 255.0
    aug1, aug2 = device_augmentations("asymmetric", size, seed=0)
    inp = keras.Input((size, size, 3), batch_size=batch)
    views = keras.Model(inp, [aug1(inp), aug2(inp)])
    # XLA where Keras has it; on PyTorch `jit_compile=True` is a
    # torch.compile of minutes, which a short check cannot afford.
    jit = keras.backend.backend() != "torch"
    views.compile(jit_compile=True if jit else "auto")
    t0 = time.perf_counter()
    views.predict_on_batch(x)
    compile_s = time.perf_counter() - t0

    def device_rate(batches):
        t = time.perf_counter()
        for _ in range(batches):
            views.predict_on_batch(x)  # returns host arrays: work is done
        return batches * batch / (time.perf_counter() - t)

    host_rate, host_note = None, None
    try:
        import tensorflow  # noqa: F401  (the host path is tf.data)
    except ImportError:
        host_note = "TensorFlow is not installed: no host (tf.data) path"
    if host_note is None:
        from keras_adadim.data import from_arrays, pretraining_dataset

        n = batch * (4 if job["quick"] else 40)
        data = from_arrays(_images(n, size), np.zeros(n, "int64"))
        stream = pretraining_dataset(data, "asymmetric", image_size=size,
                                     batch_size=batch, seed=0)

        def host_rate(batches, it=iter(stream)):
            next(it)
            t = time.perf_counter()
            for _ in range(batches):
                (x1, x2), _ = next(it)
                np.asarray(x1), np.asarray(x2)
            return batches * batch / (time.perf_counter() - t)

    batches = 2 if job["quick"] else 20
    device, host = [], []
    for _ in range(3):
        device.append(device_rate(batches))
        if host_note is None:
            host.append(host_rate(batches))
    out = {"scheme": "asymmetric", "image_size": size, "batch": batch,
           "device_jit_compile": jit, "device_compile_s": compile_s,
           "device_images_per_s": statistics.median(device)}
    if host:
        out["host_images_per_s"] = statistics.median(host)
        out["device_over_host"] = out["device_images_per_s"] / out["host_images_per_s"]
        out["host_cpu_cores"] = os.cpu_count()
    else:
        out["host"] = host_note
    return out


class _StepTimes:
    """Wall time of every training batch (the first is the compiling one)."""

    def __new__(cls):
        import keras

        class Times(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self.t)

            def on_train_begin(self, logs=None):
                self.times = []

        return Times()


def epoch_worker(job):
    """One synthetic CIFAR-size epoch, end to end."""
    import numpy as np

    quick = job["quick"]
    n, batch = job["epoch_images"], job["batch"]
    try:
        import tensorflow  # noqa: F401
        have_tf = True
    except ImportError:
        have_tf = False
    out = {"images": n, "batch": batch, "steps": n // batch,
           "network": "small_cnn" if quick else "resnet18"}
    if have_tf:
        from keras_adadim import training

        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "synthetic_cifar.npz")
        images = _images(n, 32)
        labels = np.arange(n) % 10
        np.savez(path, train_images=images, train_labels=labels,
                 test_images=images[:batch], test_labels=labels[:batch])
        import keras

        # Device views again, K steps per compiled call (one host read of
        # the logs per call; TF and JAX only): K divides the epoch's steps.
        k = max(d for d in range(1, 17) if (n // batch) % d == 0)
        runs = [("device", "device", 1), ("host", "host", 1)]
        if keras.backend.backend() != "torch" and k > 1:
            runs.append((f"device_steps_per_execution_{k}", "device", k))
        for name, where, per_call in runs:
            times = _StepTimes()
            t0 = time.perf_counter()
            training.pretrain(
                dataset=path, output=os.path.join(tmp, name), verbose=0,
                log=lambda *a: None, callbacks=[times],
                backbone="small_cnn" if quick else "resnet18",
                preset="baseline", method="adadim", epochs=1,
                **(dict(projector_hidden_dim=32, projector_dim=16)
                   if quick else {}),
                batch_size=batch, augment_on=where, image_size=32,
                augmentation="asymmetric", eval="none", monitor_every=0,
                steps_per_execution=per_call, seed=0)
            total = time.perf_counter() - t0
            # A callback's batch is one call: `per_call` steps.
            out[name] = _epoch_numbers(times.times, total, batch * per_call)
        out["driver"] = "training.pretrain (tf.data pipeline, run directory)"
        if out["host"]["images_per_s"]:
            out["device_over_host"] = (out["device"]["images_per_s"]
                                       / out["host"]["images_per_s"])
        return out
    import keras

    from keras_adadim.data.device_augment import device_augmentations
    from keras_adadim.models import AdaDimModel, projector, resnet18
    from keras_adadim.models.small_cnn import small_cnn_encoder

    encoder = (small_cnn_encoder((32, 32, 3), width=8) if quick
               else resnet18((32, 32, 3), stem="cifar"))
    model = AdaDimModel(
        encoder, projector("baseline", hidden_dim=32 if quick else 2048),
        method="adadim", augmentation=device_augmentations(
            "asymmetric", 32, seed=0))
    model.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9))
    images = _images(n, 32).astype("float32") / 255.0
    times = _StepTimes()
    t0 = time.perf_counter()
    model.fit(images, batch_size=batch, epochs=1, verbose=0,
              callbacks=[times])
    out["device"] = _epoch_numbers(times.times, time.perf_counter() - t0, batch)
    out["driver"] = ("AdaDimModel.fit on an in-memory array (TensorFlow is "
                     "not installed: no tf.data pipeline, no host path)")
    return out


def _epoch_numbers(times, total, batch):
    steady = times[1:]
    return {"seconds": total, "first_step_s": times[0] if times else None,
            "images_per_s": (len(steady) * batch / sum(steady)) if steady else None}


def worker(job):
    import keras

    fn = {"augment": augment_worker, "epoch": epoch_worker}[job["section"]]
    out = fn(job)
    out.update(backend=keras.backend.backend(), keras=keras.__version__,
               devices=_devices())
    print(MARKER + json.dumps(out), flush=True)


# ------------------------------------------------------------------ parent
def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.batch = min(args.batch, 32)
        args.epoch_images = min(args.epoch_images, 4 * args.batch)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    start = time.time()
    sections = args.sections.split(",")
    for s in sections:
        if s not in SECTIONS:
            raise SystemExit(f"--sections: unknown section {s!r}; known: "
                             f"{', '.join(SECTIONS)}")
    wanted = BACKENDS if args.backends == "available" else args.backends.split(",")
    report = {"machine": {"python": platform.python_version(),
                          "platform": platform.platform(),
                          "cpu_cores": os.cpu_count()},
              "settings": {k: v for k, v in vars(args).items() if k != "worker"},
              "backends": {}}
    backends = []
    for b in wanted:
        if b not in BACKENDS:
            raise SystemExit(f"--backends: unknown backend {b!r}")
        module = {"torch": "torch"}.get(b, b)
        if importable(module):
            backends.append(b)
        else:
            report["backends"][b] = {"skipped": f"{module} is not installed"}
    jobs = [(b, s) for s in sections for b in backends]
    for i, (backend, section) in enumerate(jobs):
        left = args.budget - (time.time() - start)
        share = left / (len(jobs) - i)
        entry = report["backends"].setdefault(backend, {})
        if share < 20:
            entry[section] = {"skipped": f"budget spent ({left:.0f} s left)"}
            continue
        print(f"[{time.time() - start:6.0f} s] {backend} {section} "
              f"(up to {share:.0f} s)", flush=True)
        t0 = time.time()
        try:
            if section == "step":
                entry[section] = step_section(args, backend, share)
            else:
                entry[section] = _worker_section(args, backend, section, share)
        except subprocess.TimeoutExpired:
            entry[section] = {"error": f"timed out after {share:.0f} s"}
        entry[section]["wall_s"] = time.time() - t0
        print(json.dumps(entry[section], default=str)[:600], flush=True)
        _write(args.out, report)  # after every section: a kill keeps the rest
    report["total_s"] = time.time() - start
    _write(args.out, report)
    print(f"wrote {args.out} ({report['total_s']:.0f} s)")
    return 0


def _write(path, report):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=str)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
