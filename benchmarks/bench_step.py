"""Training-step cost of AdaDim against SimCLR and VICReg, and the share of
an epoch taken by the adaptive-alpha update (``AlphaUpdater``).

Run on demand (it is not part of the tests)::

    python benchmarks/bench_step.py
    python benchmarks/bench_step.py --backends jax --out results.json
    python benchmarks/bench_step.py --image-size 32 --width 64 --batch 256   # GPU

For each backend a subprocess is started with ``KERAS_BACKEND`` set. It
builds the same encoder (``small_cnn_encoder``) and projector
(``mlp_projector(512, 256)``) for three presets of ``AdaDimModel``
(``adadim``: adaptive alpha and gamma = 1e-4, so VICReg, InfoNCE and L_mut
are all computed; ``simclr``; ``vicreg``), with identical initial weights,
compiles them with SGD and the model's default ``jit_compile``, and times
training steps on an in-memory repeated batch of pre-made random views
(``train_on_batch``, the presets interleaved step by step; or
``--driver fit``: one ``fit`` call per preset and round, steps timed by a
callback). Interleaving makes machine noise hit all three alike; the
reported step time is the median per-step time of each preset. It then
times one ``AlphaUpdater`` update (``batches`` batches through the model in
training mode, as at the start of every ``every``-th epoch) and expresses
it as a share of ``every`` epochs of CIFAR-size training
(``--epoch-samples`` / ``--batch`` steps at the measured AdaDim step time).
See ``benchmarks/README.md``.
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

PRESETS = ("adadim", "simclr", "vicreg")
# Model arguments of each preset (explicit, so that the benchmark keeps
# measuring the same thing if the library's presets change).
PRESET_ARGS = {
    "adadim": {"method": "adadim", "alpha": "adaptive", "gamma": 1e-4},
    "simclr": {"method": "simclr"},
    "vicreg": {"method": "vicreg"},
}
PROJECTOR_HIDDEN = 512
PROJECTOR_OUTPUT = 256
STEP_TARGET = 1.05  # AdaDim step <= 1.05 x SimCLR step
SHARE_TARGET_PCT = 1.0  # alpha update <= 1% of `every` epochs


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backends", default="tensorflow,jax,torch",
                   help="comma-separated Keras backends")
    p.add_argument("--batch", type=int, default=128, help="batch size b")
    p.add_argument("--image-size", type=int, default=32,
                   help="images are S x S x 3")
    p.add_argument("--width", type=int, default=32,
                   help="encoder width w (representation size 4w)")
    p.add_argument("--steps", type=int, default=30,
                   help="timed training steps per preset (split over the "
                        "rounds)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds of interleaved presets")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps per preset after compilation")
    p.add_argument("--every", type=int, default=20,
                   help="AlphaUpdater `every` (epochs between updates)")
    p.add_argument("--alpha-batches", type=int, default=10,
                   help="AlphaUpdater `batches` (batches per update)")
    p.add_argument("--alpha-repeats", type=int, default=2,
                   help="timed alpha updates (after one untimed)")
    p.add_argument("--epoch-samples", type=int, default=50000,
                   help="training-set size defining an epoch (CIFAR: 50000)")
    p.add_argument("--jit-compile", default="auto",
                   choices=("auto", "true", "false"),
                   help="`jit_compile` of `compile` (auto: the model's "
                        "default; Keras resolves it per backend/device)")
    p.add_argument("--driver", default="train_on_batch",
                   choices=("train_on_batch", "fit"),
                   help="train_on_batch: presets interleaved step by step; "
                        "fit: one `fit` call per preset and round, steps "
                        "timed by a callback")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per backend (intra- and inter-op); 0: "
                        "the backends' defaults (all cores). 1 makes CPU "
                        "timings far less sensitive to other processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write all numbers as JSON")
    p.add_argument("--timeout", type=int, default=1800,
                   help="seconds allowed per backend subprocess")
    # Internal: run the measurements for one backend in this process.
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch", "image_size", "width", "steps", "rounds",
                 "every", "alpha_batches", "alpha_repeats", "epoch_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch < 2:
        p.error("--batch must be >= 2 (the losses need batch statistics)")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    return args


def settings_of(args):
    return {
        "batch": args.batch,
        "image_size": args.image_size,
        "width": args.width,
        "projector": [PROJECTOR_HIDDEN, PROJECTOR_OUTPUT],
        "steps": args.steps,
        "rounds": args.rounds,
        "steps_per_round": _steps_per_round(args),
        "warmup": args.warmup,
        "every": args.every,
        "alpha_batches": args.alpha_batches,
        "alpha_repeats": args.alpha_repeats,
        "epoch_samples": args.epoch_samples,
        "jit_compile": args.jit_compile,
        "driver": args.driver,
        "threads": args.threads,
        "seed": args.seed,
        "optimizer": "SGD(learning_rate=1e-3, momentum=0.9)",
        "presets": PRESET_ARGS,
    }


def _steps_per_round(args):
    return max(1, -(-args.steps // args.rounds))


# =================================================================== worker
def worker(args):
    """Measure one backend (KERAS_BACKEND is set by the parent)."""
    import warnings

    import numpy as np
    import tensorflow as tf

    if args.threads:
        # Before any TensorFlow op runs (JAX: XLA_FLAGS, set by the parent).
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        if os.environ.get("KERAS_BACKEND") == "torch":
            import torch

            torch.set_num_threads(args.threads)
            torch.set_num_interop_threads(args.threads)

    import keras
    from keras_adadim.callbacks.alpha_updater import AlphaUpdater
    from keras_adadim.models.adadim_model import AdaDimModel
    from keras_adadim.models.small_cnn import mlp_projector
    from keras_adadim.models.small_cnn import small_cnn_encoder

    backend = keras.backend.backend()
    tag = f"[{backend}]"

    def say(msg):
        print(f"{tag} {msg}", flush=True)

    # No AlphaUpdater while timing steps (its cost is measured separately):
    # silence the model's reminder about it.
    warnings.filterwarnings("ignore", message="alpha='adaptive' but no")
    # PyTorch: AdaDimModel.embedding_rank_ratio runs its forward pass with
    # autograd recording and reads the result with float(); reported in
    # benchmarks/README.md, silenced here to keep the output readable.
    warnings.filterwarnings(
        "ignore", message="Converting a tensor with requires_grad=True"
    )
    load_before = _loadavg()
    b, s = args.batch, args.image_size
    rng = np.random.default_rng(args.seed)

    def views():
        return tuple(
            rng.random((b, s, s, 3), dtype=np.float32) for _ in range(2)
        )

    x1, x2 = views()
    # One batch of pre-made views, repeated: ((x1, x2),) as the library's
    # two_view_dataset yields it, so no input-pipeline work is timed
    # beyond handing the batch to the step.
    dataset = tf.data.Dataset.from_tensors(((x1, x2),)).repeat()

    class StepTimer(keras.callbacks.Callback):
        """Wall time between consecutive ends of training batches: the
        whole per-step cost of `fit` (data hand-over, compiled step,
        callbacks). The loss is read on the host, so asynchronous backends
        have finished the step when the clock is read."""

        def __init__(self):
            super().__init__()
            self.times = []
            self._last = None

        def on_train_begin(self, logs=None):
            self._last = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None:
                float(keras.ops.convert_to_numpy(loss))
            now = time.perf_counter()
            if self._last is not None:
                self.times.append(now - self._last)
            self._last = now

    # The same views as backend tensors, for `train_on_batch`: converted
    # once, so each step only runs the compiled step.
    batch = (keras.ops.convert_to_tensor(x1), keras.ops.convert_to_tensor(x2))

    def fit_steps(model, n):
        """`n` timed intervals of `fit` (n + 1 steps; the first only starts
        the clock, as it also creates the data iterator)."""
        timer = StepTimer()
        model.fit(
            dataset, epochs=1, steps_per_epoch=n + 1, verbose=0,
            shuffle=False, callbacks=[timer],
        )
        return timer.times

    def batch_step(model):
        """One `train_on_batch` step; it returns the loss as a Python float,
        so the step has finished when the clock is read."""
        t0 = time.perf_counter()
        model.train_on_batch(batch)
        return time.perf_counter() - t0

    def warm(model, n):
        if args.driver == "fit":
            fit_steps(model, n)
        else:
            for _ in range(n):
                batch_step(model)

    models, compile_s, info = {}, {}, {}
    for name in PRESETS:
        keras.utils.set_random_seed(args.seed)  # same initial weights
        encoder = small_cnn_encoder((s, s, 3), args.width)
        projector = mlp_projector(PROJECTOR_HIDDEN, PROJECTOR_OUTPUT)
        model = AdaDimModel(encoder, projector, **PRESET_ARGS[name])
        kwargs = {}
        if args.jit_compile != "auto":
            kwargs["jit_compile"] = args.jit_compile == "true"
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
            **kwargs,
        )
        if name == "adadim":
            # Mid-training value; all three terms are computed whatever
            # alpha is (the choice is static), this only keeps every term's
            # gradient non-zero.
            model.set_alpha(0.5)
        t0 = time.perf_counter()
        warm(model, 1)  # builds, traces and compiles the step
        compile_s[name] = time.perf_counter() - t0
        if args.warmup:
            warm(model, args.warmup)
        uses = getattr(model, "_uses", None)
        terms = None
        if uses is not None:
            terms = [
                t for t, on in zip(("vicreg", "nce", "mut"), uses()) if on
            ]
        info[name] = {
            "terms_computed": terms,
            "jit_compile": bool(model.jit_compile),
            "params": int(model.count_params()),
        }
        models[name] = model
        say(
            f"built + compiled {name} ({'+'.join(terms or ['?'])}, "
            f"jit_compile={model.jit_compile}) in {compile_s[name]:.1f} s"
        )

    per_round = _steps_per_round(args)
    times = {name: [] for name in PRESETS}
    round_medians = {name: [] for name in PRESETS}
    paired = {"simclr": [], "vicreg": []}
    for r in range(args.rounds):
        round_times = {name: [] for name in PRESETS}
        if args.driver == "fit":
            # One `fit` call per preset and round, the order rotated so that
            # no preset always runs first or last.
            order = PRESETS[r % 3:] + PRESETS[: r % 3]
            for name in order:
                round_times[name] = fit_steps(models[name], per_round)
        else:
            # Step by step: adadim, simclr, vicreg, then the next cycle in a
            # rotated order, so that every preset sees the same load.
            for i in range(per_round):
                k = (r * per_round + i) % 3
                for name in PRESETS[k:] + PRESETS[:k]:
                    round_times[name].append(batch_step(models[name]))
                for other in paired:
                    paired[other].append(
                        round_times["adadim"][-1] / round_times[other][-1]
                    )
        for name in PRESETS:
            times[name].extend(round_times[name])
            round_medians[name].append(statistics.median(round_times[name]))
        say(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{n} {1e3 * round_medians[n][-1]:.1f} ms" for n in PRESETS
            )
        )

    steps = {}
    for name in PRESETS:
        t = sorted(times[name])
        steps[name] = {
            "median_s": statistics.median(t),
            "p25_s": _quantile(t, 0.25),
            "p75_s": _quantile(t, 0.75),
            "min_s": t[0],
            "mean_s": statistics.fmean(t),
            "n": len(t),
            "round_medians_s": round_medians[name],
            "compile_s": compile_s[name],
            "all_s": times[name],
            **info[name],
        }

    def ratio(a, c):
        per = [
            x / y for x, y in zip(round_medians[a], round_medians[c])
        ]
        return {
            "of_medians": steps[a]["median_s"] / steps[c]["median_s"],
            "of_minima": steps[a]["min_s"] / steps[c]["min_s"],
            # Median over cycles of adadim / other for steps run back to
            # back (train_on_batch driver only).
            "paired_median": (
                statistics.median(paired[c]) if paired[c] else None
            ),
            "per_round": per,
            "per_round_min": min(per),
            "per_round_max": max(per),
        }

    ratios = {
        "adadim_over_simclr": ratio("adadim", "simclr"),
        "adadim_over_vicreg": ratio("adadim", "vicreg"),
    }
    say(
        f"AdaDim/SimCLR {ratios['adadim_over_simclr']['of_medians']:.3f}x, "
        f"AdaDim/VICReg {ratios['adadim_over_vicreg']['of_medians']:.3f}x"
    )

    # ------------------------------------------------------- alpha update
    model = models["adadim"]
    # As fit would draw them from a two-view dataset: ((x1, x2),) elements.
    batches = [(views(),) for _ in range(args.alpha_batches)]
    updater = AlphaUpdater(
        every=args.every, batches=args.alpha_batches, data=batches,
        verbose=0,
    )
    updater.set_model(model)
    updater.on_train_begin()
    t0 = time.perf_counter()
    updater.on_epoch_begin(0)  # untimed: first eager run of each op
    first_update_s = time.perf_counter() - t0
    update_times = []
    for _ in range(args.alpha_repeats):
        t0 = time.perf_counter()
        updater.on_epoch_begin(0)
        update_times.append(time.perf_counter() - t0)
    update_s = statistics.median(update_times)
    steps_per_epoch = args.epoch_samples // b
    epoch_s = steps_per_epoch * steps["adadim"]["median_s"]
    share_pct = 100.0 * update_s / (args.every * epoch_s)
    alpha = {
        "update_s": update_s,
        "update_all_s": update_times,
        "first_update_s": first_update_s,
        "per_batch_s": update_s / args.alpha_batches,
        "per_batch_over_step": (
            update_s / args.alpha_batches / steps["adadim"]["median_s"]
        ),
        "steps_per_epoch": steps_per_epoch,
        "epoch_s": epoch_s,
        "every": args.every,
        "share_pct": share_pct,
        "share_of_one_epoch_pct": 100.0 * update_s / epoch_s,
        "alpha_after": updater.updates[-1]["alpha"],
    }
    say(
        f"alpha update ({args.alpha_batches} batches) {update_s:.3f} s; "
        f"epoch of {steps_per_epoch} steps {epoch_s:.1f} s; share at "
        f"every={args.every}: {share_pct:.3f}%"
    )

    return {
        "backend": backend,
        "versions": _versions(backend),
        "devices": _devices(backend),
        "load_average": {"before": load_before, "after": _loadavg()},
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
        },
        "steps": steps,
        "ratios": ratios,
        "alpha_update": alpha,
    }


def _quantile(sorted_values, q):
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (
        sorted_values[hi] - sorted_values[lo]
    )


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


def _versions(backend):
    import keras
    import numpy as np

    out = {"keras": keras.__version__, "numpy": np.__version__}
    import tensorflow as tf

    out["tensorflow"] = tf.__version__
    if backend == "jax":
        import jax
        import jaxlib

        out["jax"] = jax.__version__
        out["jaxlib"] = jaxlib.__version__
    elif backend == "torch":
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    return out


def _devices(backend):
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.device_type for d in tf.config.list_physical_devices()]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "torch":
            import torch

            return ["cuda"] * torch.cuda.device_count() or ["cpu"]
    except Exception as e:  # pragma: no cover - diagnostics only
        return [f"unknown ({e})"]
    return []


# =================================================================== parent
def machine():
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on every platform
        affinity = None
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "python": platform.python_version(),
    }


def run_backend(backend, args, argv):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if args.threads:
        n = str(args.threads)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = n
        multi = "true" if args.threads > 1 else "false"
        env["XLA_FLAGS"] = " ".join(filter(None, [
            env.get("XLA_FLAGS"),
            f"--xla_cpu_multi_thread_eigen={multi}",
            f"intra_op_parallelism_threads={n}",
        ]))
    # The library (this checkout) first on the path, wherever we run from.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [
            sys.executable, os.path.abspath(__file__), *argv,
            "--worker", backend, "--worker-out", out,
        ]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        wall = time.perf_counter() - t0
        if rc == 0 and os.path.exists(out):
            with open(out) as f:
                result = json.load(f)
        else:
            result = {"backend": backend, "error": f"worker exit {rc}"}
        result["wall_s"] = wall
        return result


def _strip_parent_only(argv):
    """The parent's argv minus the options the worker must not see."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--backends", "--out"):
            skip = True
            continue
        if a.startswith(("--backends=", "--out=")):
            continue
        out.append(a)
    return out


def print_table(r, settings):
    if "error" in r:
        print(f"\n{r['backend']}: FAILED ({r['error']})")
        return
    v = r["versions"]
    bv = v.get(r["backend"], "")
    jit = r["steps"]["adadim"]["jit_compile"]
    print(
        f"\n== {r['backend']} {bv} (keras {v['keras']}; "
        f"jit_compile={jit}; devices {','.join(r['devices'])}) =="
    )
    print(
        f"b={settings['batch']}, {settings['image_size']}x"
        f"{settings['image_size']}x3, width={settings['width']}, projector "
        f"{PROJECTOR_HIDDEN}-{PROJECTOR_OUTPUT}; "
        f"{r['steps']['adadim']['n']} timed steps per preset over "
        f"{settings['rounds']} rounds"
    )
    print(
        f"{'preset':<8} {'terms':<16} {'median ms':>10} {'p25-p75 ms':>15} "
        f"{'min ms':>8}  round medians (ms)"
    )
    for name in PRESETS:
        st = r["steps"][name]
        rounds = " ".join(f"{1e3 * x:.0f}" for x in st["round_medians_s"])
        print(
            f"{name:<8} {'+'.join(st['terms_computed'] or ['?']):<16} "
            f"{1e3 * st['median_s']:>10.1f} "
            f"{1e3 * st['p25_s']:>7.1f}-{1e3 * st['p75_s']:<7.1f} "
            f"{1e3 * st['min_s']:>8.1f}  {rounds}"
        )
    for key, label, target in (
        ("adadim_over_simclr", "AdaDim/SimCLR", STEP_TARGET),
        ("adadim_over_vicreg", "AdaDim/VICReg", None),
    ):
        q = r["ratios"][key]
        verdict = ""
        if target is not None:
            ok = q["of_medians"] <= target
            verdict = f"  target <= {target:.2f}: {'met' if ok else 'NOT met'}"
        paired = (
            "" if q["paired_median"] is None
            else f"paired {q['paired_median']:.3f}x, "
        )
        print(
            f"{label}: {q['of_medians']:.3f}x ({paired}minima "
            f"{q['of_minima']:.3f}x, rounds "
            f"{q['per_round_min']:.3f}-{q['per_round_max']:.3f}){verdict}"
        )
    a = r["alpha_update"]
    ok = a["share_pct"] <= SHARE_TARGET_PCT
    print(
        f"AlphaUpdater: one update ({settings['alpha_batches']} batches) "
        f"{a['update_s']:.3f} s = {1e3 * a['per_batch_s']:.1f} ms/batch "
        f"({a['per_batch_over_step']:.2f} AdaDim steps per batch)"
    )
    print(
        f"  epoch = {a['steps_per_epoch']} steps x "
        f"{1e3 * r['steps']['adadim']['median_s']:.1f} ms = "
        f"{a['epoch_s']:.1f} s; share of every={a['every']} epochs: "
        f"{a['share_pct']:.3f}%  target <= {SHARE_TARGET_PCT:g}%: "
        f"{'met' if ok else 'NOT met'}"
    )
    print(f"  (backend wall time {r['wall_s']:.0f} s)")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        result = worker(args)
        with open(args.worker_out, "w") as f:
            json.dump(result, f)
        return 0

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"tensorflow", "jax", "torch"}
    if unknown:
        print(f"Unknown backend(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    settings = settings_of(args)
    info = machine()
    print(
        f"bench_step: {', '.join(backends)} | b={args.batch} "
        f"S={args.image_size} w={args.width} | {args.rounds} rounds x "
        f"{_steps_per_round(args)} steps per preset | "
        f"{info['cpus_available'] or info['cpu_count']} CPUs",
        flush=True,
    )
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    worker_argv = _strip_parent_only(argv)
    results = []
    for backend in backends:
        print(f"[{backend}] starting subprocess", flush=True)
        results.append(run_backend(backend, args, worker_argv))
    for r in results:
        print_table(r, settings)
    if len(results) > 1:
        print("\nSummary")
        print(
            f"{'backend':<11} {'adadim ms':>9} {'simclr ms':>9} "
            f"{'vicreg ms':>9} {'A/SimCLR':>9} {'A/VICReg':>9} {'alpha %':>8}"
        )
        for r in results:
            if "error" in r:
                print(f"{r['backend']:<11} failed: {r['error']}")
                continue
            st, q = r["steps"], r["ratios"]
            print(
                f"{r['backend']:<11} "
                + " ".join(
                    f"{1e3 * st[n]['median_s']:>9.1f}" for n in PRESETS
                )
                + f" {q['adadim_over_simclr']['of_medians']:>9.3f}"
                f" {q['adadim_over_vicreg']['of_medians']:>9.3f}"
                f" {r['alpha_update']['share_pct']:>8.3f}"
            )
    if args.out:
        payload = {
            "started": started,
            "command": " ".join(
                ["python", "benchmarks/bench_step.py", *argv]
            ),
            "machine": info,
            "settings": settings,
            "targets": {
                "adadim_over_simclr_max": STEP_TARGET,
                "alpha_share_max_pct": SHARE_TARGET_PCT,
            },
            "results": results,
        }
        with open(args.out, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"\nwrote {args.out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
