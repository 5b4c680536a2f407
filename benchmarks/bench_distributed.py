"""Training-step time of ``AdaDimModel`` on 1 vs N devices, per backend.

Run on demand (it is not part of the tests)::

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --backends jax --devices 8 --batch 512

For each backend a subprocess is started with the device count set before
the backend initialises (JAX: ``XLA_FLAGS=--xla_force_host_platform_device_count``;
TensorFlow: N logical CPU devices) -- or, with ``--gpus``, on the machine's
real accelerators. In that process two models with identical weights train
on the same global batch: one on a single device, one distributed
(JAX: ``keras.distribution.DataParallel``; TF: ``MirroredStrategy``). Steps
are timed with ``train_on_batch`` (synchronous: it returns the loss), the two
models interleaved round by round so machine noise hits both alike; the
reported time is the median step. PyTorch trains on one device only
(``docs/distributed.md``), so it has no N-device number.

**Virtual CPU devices share the same cores**: N of them do not add compute,
so on a CPU the ratio measures the overhead of distribution (collectives,
per-replica tracing, smaller per-device matmuls), not a speed-up.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MARKER = "BENCH_DISTRIBUTED_JSON:"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backends", default="tensorflow,jax,torch",
                   help="comma-separated Keras backends")
    p.add_argument("--devices", type=int, default=4,
                   help="devices of the distributed run")
    p.add_argument("--gpus", action="store_true",
                   help="use the machine's GPUs instead of virtual CPUs")
    p.add_argument("--batch", type=int, default=128,
                   help="global batch (per view)")
    p.add_argument("--image-size", type=int, default=16,
                   help="images are S x S x 3")
    p.add_argument("--width", type=int, default=16,
                   help="encoder width w (representation size 4w)")
    p.add_argument("--steps", type=int, default=20,
                   help="timed steps per model (split over the rounds)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps per model after compilation")
    p.add_argument("--out", help="also write the results to this JSON file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ worker
def _setup_devices(backend, args):
    if backend == "tensorflow" and not args.gpus:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
        )


def _build(args):
    import keras

    import keras_adadim as ka
    from keras_adadim.models.small_cnn import mlp_projector
    from keras_adadim.models.small_cnn import small_cnn_encoder

    keras.utils.set_random_seed(0)
    s = args.image_size
    model = ka.AdaDimModel(
        small_cnn_encoder((s, s, 3), width=args.width),
        mlp_projector(256, 128),
        alpha=0.5,  # fixed: VICReg and InfoNCE both computed
        gamma=1e-4,  # and L_mut
        num_classes=10,  # and the online probe
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    views = [keras.KerasTensor((args.batch, s, s, 3)) for _ in range(2)]
    model(views)
    return model


def worker(backend, args):
    import numpy as np

    _setup_devices(backend, args)
    import keras

    rng = np.random.default_rng(0)
    s, b = args.image_size, args.batch
    x1 = rng.random((b, s, s, 3), dtype=np.float32)
    x2 = np.clip(x1 + 0.1 * rng.standard_normal(x1.shape), 0, 1).astype(
        "float32"
    )
    y = rng.integers(0, 10, size=b).astype("int32")

    single = _build(args)
    weights = single.get_weights()
    runs = {"1": (single, _null())}
    if backend == "tensorflow":
        import tensorflow as tf

        kind = "GPU" if args.gpus else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        strategy = tf.distribute.MirroredStrategy(devices[: args.devices])
        with strategy.scope():
            multi = _build(args)
            local = _build(args)
        runs["N"] = (multi, _null())
        # Breakdown: the same strategy with the all-gather switched off
        # (per-replica statistics: the wrong method, timed only to show
        # what exact global statistics cost on top of MirroredStrategy).
        runs["N_local"] = (local, _local_statistics)
        n = strategy.num_replicas_in_sync
    elif backend == "jax":
        import jax

        devices = jax.devices()[: args.devices]
        dist = keras.distribution.DataParallel(devices=devices)
        with dist.scope():
            multi = _build(args)
        runs["N"] = (multi, dist.scope)
        n = len(devices)
    else:
        n = 1  # PyTorch: single device only
    for model, _ in runs.values():
        model.set_weights(weights)

    def step(name):
        model, scope = runs[name]
        with scope():
            t0 = time.perf_counter()
            logs = model.train_on_batch((x1, x2), y, return_dict=True)
            float(logs["loss"])  # synchronise
            return time.perf_counter() - t0

    compile_s, times = {}, {name: [] for name in runs}
    for name in runs:
        compile_s[name] = step(name)
        for _ in range(args.warmup):
            step(name)
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for name in runs:
            times[name] += [step(name) for _ in range(per_round)]
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    res = {
        "backend": backend,
        "devices": n,
        "device_kind": "GPU" if args.gpus else "virtual CPU",
        "step_ms_1": med["1"],
        "compile_s_1": compile_s["1"],
        "steps_timed": len(times["1"]),
    }
    if "N" in med:
        res.update(step_ms_n=med["N"], compile_s_n=compile_s["N"],
                   ratio=med["N"] / med["1"])
    if "N_local" in med:
        res.update(step_ms_n_local=med["N_local"])
    print(MARKER + json.dumps(res))


def _local_statistics():
    import contextlib

    from keras_adadim import distribute

    @contextlib.contextmanager
    def scope():
        distribute.set_global_batch_statistics(False)
        try:
            yield
        finally:
            distribute.set_global_batch_statistics(True)

    return scope()


def _null():
    import contextlib

    return contextlib.nullcontext


# ------------------------------------------------------------------ driver
def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker, args)
    results = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend,
                   TF_CPP_MIN_LOG_LEVEL="3")
        if backend == "jax" and not args.gpus:
            env["XLA_FLAGS"] = (
                f"--xla_force_host_platform_device_count={args.devices}")
            env["JAX_PLATFORMS"] = "cpu"
        if not args.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, os.path.abspath(__file__), "--worker",
               backend, *(argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines()
                 if ln.startswith(MARKER)]
        if proc.returncode or not lines:
            print(f"{backend}: failed\n{proc.stderr[-3000:]}")
            continue
        results.append(json.loads(lines[-1][len(MARKER):]))

    print(f"\nAdaDimModel step, global batch {args.batch} x 2 views, "
          f"{args.image_size}x{args.image_size}x3, width {args.width}; "
          f"{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'backend':<11} {'devices':>7} {'1 device':>10} "
          f"{'N devices':>10} {'N / 1':>7}")
    for r in results:
        if "ratio" in r:
            print(f"{r['backend']:<11} {r['devices']:>7} "
                  f"{r['step_ms_1']:>8.1f}ms {r['step_ms_n']:>8.1f}ms "
                  f"{r['ratio']:>6.2f}x")
            if "step_ms_n_local" in r:
                print(f"{'':<11} {'':>7} {'':>10} {r['step_ms_n_local']:>8.1f}ms"
                      f" {r['step_ms_n_local'] / r['step_ms_1']:>6.2f}x  "
                      "(all-gather off: per-replica statistics, wrong)")
        else:
            print(f"{r['backend']:<11} {1:>7} {r['step_ms_1']:>8.1f}ms "
                  f"{'n/a':>10} {'n/a':>7}  (single-device only)")
    if results and results[0]["device_kind"] == "virtual CPU":
        print("Virtual CPU devices share the same cores: the ratio is the "
              "overhead of distribution, not a speed-up.")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
