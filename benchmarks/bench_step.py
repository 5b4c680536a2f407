"""Training-step cost of every registered method against SimCLR (AdaDim
against SimCLR and VICReg in particular), and the share of an epoch taken by
the adaptive-alpha update (``AlphaUpdater``).

Run on demand (it is not part of the tests)::

    python benchmarks/bench_step.py
    python benchmarks/bench_step.py --backends jax --out results.json
    python benchmarks/bench_step.py --methods adadim,simclr,vicreg
    python benchmarks/bench_step.py --image-size 32 --width 64 --batch 256   # GPU

For each backend a subprocess is started with ``KERAS_BACKEND`` set. It
builds the same encoder (``small_cnn_encoder``) and projector
(``mlp_projector(512, 256)``) for every method of the registry
(``keras_adadim.presets.METHODS``, so a newly registered method is timed
without editing this file; ``--methods`` picks some), each made with
``keras_adadim.methods.get_method`` and trained by ``AdaDimModel``:
``adadim`` with adaptive alpha and gamma = 1e-4 (so VICReg, InfoNCE and
L_mut are all computed), the other methods with their registry defaults,
except that every method with a predictor gets the same predictor width
(``--predictor-hidden``) and NNCLR a support set of ``--queue-size`` rows.
All start from identical encoder and projector weights, are compiled with
SGD and the model's default ``jit_compile``, and are timed on an in-memory
repeated batch of pre-made random views (``train_on_batch``, the methods
interleaved step by step; or ``--driver fit``: one ``fit`` call per method
and round, steps timed by a callback). Interleaving makes machine noise hit
all methods alike; the reported step time is the median per-step time of
each method, and every method's is given as a ratio to SimCLR's. It then
times one ``AlphaUpdater`` update (``batches`` batches through the AdaDim
model in training mode, as at the start of every ``every``-th epoch) and
expresses it as a share of ``every`` epochs of CIFAR-size training
(``--epoch-samples`` / ``--batch`` steps at the measured AdaDim step time).
``--loss-terms`` also times each method's loss alone (forward + backward
from fixed rows) and AdaDim's loss from the separate public functions, to
show what each term costs. See ``benchmarks/README.md``.
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

# The library (this checkout) first on the path, wherever we run from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from keras_adadim import presets as _presets  # noqa: E402  (no Keras import)

# Arguments that override a method's registry defaults (explicit, so that the
# benchmark keeps measuring the same thing if the registry's defaults change).
# AdaDim: adaptive alpha, so that VICReg, InfoNCE and L_mut are all computed.
METHOD_OVERRIDES = {
    "adadim": {"alpha": "adaptive", "gamma": 1e-4},
}
BASELINE = "simclr"  # every step time is also given as a ratio to this one
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
    p.add_argument("--methods", default="all",
                   help="comma-separated registered methods to time, or "
                        "'all' (every method of keras_adadim.presets."
                        f"METHODS); {BASELINE!r} is always added (the "
                        "ratios' baseline)")
    p.add_argument("--predictor-hidden", type=int, default=512,
                   help="hidden width of the predictor of every method that "
                        "has one (BYOL, SimSiam, MoCo v3, NNCLR); the same "
                        "for all, so the ratios compare the methods, not "
                        "their heads (the registry defaults are 512-4096)")
    p.add_argument("--queue-size", type=int, default=4096,
                   help="NNCLR's support-set size (rows); the paper presets "
                        "use 65,536")
    p.add_argument("--projector", default=f"{PROJECTOR_HIDDEN},{PROJECTOR_OUTPUT}",
                   help="projector widths HIDDEN,OUTPUT (the embedding size F "
                        "is OUTPUT; the paper's CIFAR head is 2048,2048)")
    p.add_argument("--batch", type=int, default=128, help="batch size b")
    p.add_argument("--image-size", type=int, default=32,
                   help="images are S x S x 3")
    p.add_argument("--width", type=int, default=32,
                   help="encoder width w (representation size 4w)")
    p.add_argument("--steps", type=int, default=30,
                   help="timed training steps per method (split over the "
                        "rounds)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds of interleaved methods")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps per method after compilation")
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
                   help="train_on_batch: methods interleaved step by step; "
                        "fit: one `fit` call per method and round, steps "
                        "timed by a callback")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per backend (intra- and inter-op); 0: "
                        "the backends' defaults (all cores). 1 makes CPU "
                        "timings far less sensitive to other processes")
    p.add_argument("--loss-terms", action="store_true",
                   help="also time each method's loss alone (forward + "
                        "backward from fixed embeddings, interleaved), and "
                        "AdaDim's three terms through the separate public "
                        "functions, as a share of SimCLR's step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write all numbers as JSON")
    p.add_argument("--timeout", type=int, default=1800,
                   help="seconds allowed per backend subprocess")
    # Internal: run the measurements for one backend in this process.
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch", "image_size", "width", "steps", "rounds",
                 "every", "alpha_batches", "alpha_repeats", "epoch_samples",
                 "predictor_hidden", "queue_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch < 2:
        p.error("--batch must be >= 2 (the losses need batch statistics)")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    try:
        args.projector_widths = projector_widths(args.projector)
    except ValueError as e:
        p.error(f"--projector: {e}")
    try:
        args.method_names = method_names(args.methods)
    except ValueError as e:
        p.error(f"--methods: {e}")
    return args


def projector_widths(spec):
    """``"HIDDEN,OUTPUT"`` as two positive ints."""
    parts = [p.strip() for p in str(spec).split(",")]
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(
            f"expected two positive integers HIDDEN,OUTPUT (e.g. 512,256); "
            f"got {spec!r}"
        )
    return [int(p) for p in parts]


def method_names(spec):
    """The methods to time, in registry order, SimCLR always among them."""
    if spec.strip() == "all":
        return list(_presets.METHODS)
    names = [m.strip() for m in spec.split(",") if m.strip()]
    for name in names:
        _presets.check_method_name(name)
    chosen = set(names) | {BASELINE}
    return [m for m in _presets.METHODS if m in chosen]


def method_kwargs(name, args):
    """``get_method(name, **kwargs)`` arguments of a timed method: the
    benchmark's overrides, the common predictor width and NNCLR's queue
    size (for the methods whose registry entry maps those run settings to
    a constructor argument) and the seed."""
    uses = _presets.METHODS[name]["uses"]
    kwargs = dict(METHOD_OVERRIDES.get(name, {}))
    for setting, value in (("predictor_hidden_dim", args.predictor_hidden),
                           ("queue_size", args.queue_size),
                           ("seed", args.seed)):
        if uses.get(setting) is not None:
            kwargs[uses[setting]] = value
    return kwargs


def settings_of(args):
    return {
        "batch": args.batch,
        "image_size": args.image_size,
        "width": args.width,
        "projector": list(args.projector_widths),
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
        "predictor_hidden": args.predictor_hidden,
        "queue_size": args.queue_size,
        "baseline": BASELINE,
        # get_method(name, **kwargs) of every timed method (the registry's
        # fixed arguments come on top).
        "methods": {
            name: method_kwargs(name, args) for name in args.method_names
        },
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
    from keras_adadim.methods import get_method
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

    names = list(args.method_names)
    models, compile_s, info = {}, {}, {}
    for name in names:
        keras.utils.set_random_seed(args.seed)  # same initial weights
        encoder = small_cnn_encoder((s, s, 3), args.width)
        projector = mlp_projector(*args.projector_widths)
        method = get_method(name, **method_kwargs(name, args))
        model = AdaDimModel(encoder, projector, method=method)
        kwargs = {}
        if args.jit_compile != "auto":
            kwargs["jit_compile"] = args.jit_compile == "true"
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
            **kwargs,
        )
        if getattr(model.method, "adaptive", False):
            # Mid-training value; all three terms are computed whatever
            # alpha is (the choice is static), this only keeps every term's
            # gradient non-zero.
            model.set_alpha(0.5)
        t0 = time.perf_counter()
        warm(model, 1)  # builds, traces and compiles the step
        compile_s[name] = time.perf_counter() - t0
        terms = _terms_computed(model.method)
        info[name] = {
            "method_class": type(model.method).__name__,
            "method_kwargs": method_kwargs(name, args),
            "terms_computed": terms,
            "jit_compile": bool(model.jit_compile),
            "params": int(model.count_params()),
            "trainable_params": int(
                sum(int(np.prod(w.shape)) for w in model.trainable_weights)
            ),
        }
        models[name] = model
        say(
            f"built + compiled {name} ({'+'.join(terms)}, "
            f"jit_compile={model.jit_compile}) in {compile_s[name]:.1f} s"
        )

    # Warm-up after every model is built: on TensorFlow, the next model's
    # `set_random_seed` makes each earlier model's step retrace once (~0.4 s
    # on the cheap encoder), which must not fall in a timed step.
    if args.warmup:
        for name in names:
            warm(models[name], args.warmup)

    n_methods = len(names)
    per_round = _steps_per_round(args)
    times = {name: [] for name in names}
    round_medians = {name: [] for name in names}
    # Per cycle (train_on_batch driver): method step / baseline step, for
    # steps run back to back.
    paired = {name: [] for name in names}
    paired_vicreg = []
    for r in range(args.rounds):
        round_times = {name: [] for name in names}
        if args.driver == "fit":
            # One `fit` call per method and round, the order rotated so that
            # no method always runs first or last.
            k = r % n_methods
            for name in names[k:] + names[:k]:
                round_times[name] = fit_steps(models[name], per_round)
        else:
            # Step by step: one step of every method, then the next cycle
            # in a rotated order, so that every method sees the same load.
            for i in range(per_round):
                k = (r * per_round + i) % n_methods
                for name in names[k:] + names[:k]:
                    round_times[name].append(batch_step(models[name]))
                base_t = round_times[BASELINE][-1]
                for name in names:
                    paired[name].append(round_times[name][-1] / base_t)
                if "adadim" in names and "vicreg" in names:
                    paired_vicreg.append(
                        round_times["adadim"][-1] / round_times["vicreg"][-1]
                    )
        for name in names:
            times[name].extend(round_times[name])
            round_medians[name].append(statistics.median(round_times[name]))
        say(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{n} {1e3 * round_medians[n][-1]:.1f} ms" for n in names
            )
        )

    steps = {}
    for name in names:
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

    def ratio(a, c, pairs):
        per = [
            x / y for x, y in zip(round_medians[a], round_medians[c])
        ]
        return {
            "of_medians": steps[a]["median_s"] / steps[c]["median_s"],
            "of_minima": steps[a]["min_s"] / steps[c]["min_s"],
            # Median over cycles of a / c for steps run back to back
            # (train_on_batch driver only).
            "paired_median": statistics.median(pairs) if pairs else None,
            "per_round": per,
            "per_round_min": min(per),
            "per_round_max": max(per),
        }

    # Every method over the baseline (SimCLR); AdaDim over VICReg as before.
    ratios = {
        "over_" + BASELINE: {
            name: ratio(name, BASELINE, paired[name]) for name in names
        }
    }
    if "adadim" in names:
        ratios["adadim_over_simclr"] = ratios["over_" + BASELINE]["adadim"]
        if "vicreg" in names:
            ratios["adadim_over_vicreg"] = ratio(
                "adadim", "vicreg", paired_vicreg
            )
    say(
        "over SimCLR: "
        + ", ".join(
            f"{n} {ratios['over_' + BASELINE][n]['of_medians']:.3f}x"
            for n in names if n != BASELINE
        )
    )
    if "adadim_over_vicreg" in ratios:
        say(
            f"AdaDim/VICReg {ratios['adadim_over_vicreg']['of_medians']:.3f}x"
        )
    result = {
        "backend": backend,
        "versions": _versions(backend),
        "devices": _devices(backend),
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
        },
        "methods": names,
        "steps": steps,
        "ratios": ratios,
        "alpha_update": None,
    }
    if args.loss_terms:
        result["loss_terms"] = time_losses(
            models, batch, steps[BASELINE]["median_s"], args, say)
    if "adadim" not in names:
        result["load_average"] = {"before": load_before, "after": _loadavg()}
        return result

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

    result["alpha_update"] = alpha
    result["load_average"] = {"before": load_before, "after": _loadavg()}
    return result


def time_losses(models, batch, baseline_step_s, args, say):
    """Forward + backward of each method's loss alone, from the rows
    (r, z, ...) of one training-mode forward pass of its model, held fixed:
    ``method.combine(method.loss_terms(rows))``, differentiated with respect
    to every row, compiled as the model's step is (jax.jit; tf.function,
    XLA only when the model's step uses it; eager torch). The methods are
    interleaved call by call. ``adadim (separate)`` is AdaDim's loss from
    the public functions, one call per term (``vicreg``, ``nt_xent``,
    ``mutual_information_term``: each normalises and multiplies on its own,
    and checks its inputs for NaN), i.e. without the shared Gram matrices
    of ``losses.adadim.adadim_terms``. Each median is also given as a share
    of SimCLR's step median (its loss included)."""
    import keras
    from keras import ops

    from keras_adadim.losses import combine_adadim
    from keras_adadim.losses import mutual_information_term
    from keras_adadim.losses import nt_xent
    from keras_adadim.losses import vicreg
    from keras_adadim.methods import Step

    backend = keras.backend.backend()
    fns, inputs = {}, {}
    for name, model in models.items():
        with keras.StatelessScope():
            rows = model.step_rows(model(batch, training=True), training=False)
        keys = sorted(rows)
        method = model.method

        def loss(*values, keys=keys, method=method):
            step = Step(False, ops.convert_to_tensor(0.0))
            terms = method.loss_terms(dict(zip(keys, values)), step)
            return method.combine(terms, step)

        fns[name] = (loss, model.jit_compile)
        inputs[name] = [ops.stop_gradient(rows[k]) for k in keys]
    if "adadim" in models:
        m = models["adadim"].method
        alpha = float(ops.convert_to_numpy(m.alpha))

        def separate(r1, r2, z1, z2):
            return combine_adadim(
                vicreg(z1, z2, m.sim_weight, m.var_weight, m.cov_weight),
                nt_xent(z1, z2, m.temperature),
                mutual_information_term(z1, z2, r1, r2, m.pairing,
                                        m.renyi_order),
                alpha, m.gamma * alpha)

        fns["adadim (separate)"] = (separate, models["adadim"].jit_compile)
        inputs["adadim (separate)"] = inputs["adadim"]

    def compiled(fn, n, jit):
        if backend == "jax":
            import jax

            g = jax.jit(jax.grad(fn, argnums=tuple(range(n))))
            return lambda xs: jax.block_until_ready(g(*xs))
        if backend == "tensorflow":
            import tensorflow as tf

            @tf.function(jit_compile=bool(jit))
            def g(*xs):
                with tf.GradientTape() as tape:
                    tape.watch(xs)
                    y = fn(*xs)
                # Rows a loss does not use (r for VICReg) have no gradient.
                return [t for t in tape.gradient(y, xs) if t is not None]

            return lambda xs: g(*xs)[0].numpy()
        import torch

        def g(xs):
            xs = [x.detach().requires_grad_(True) for x in xs]
            fn(*xs).backward()
            return xs[0].grad

        return g

    calls = {n: compiled(f, len(inputs[n]), jit) for n, (f, jit) in fns.items()}
    names = list(calls)
    for n in names:
        for _ in range(3):  # trace / compile, then warm
            calls[n](inputs[n])
    times = {n: [] for n in names}
    for i in range(max(20, args.steps)):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            calls[n](inputs[n])
            times[n].append(time.perf_counter() - t0)
    out = {}
    for n in names:
        med = statistics.median(times[n])
        out[n] = {"median_s": med, "min_s": min(times[n]),
                  "share_of_simclr_step": med / baseline_step_s,
                  "all_s": times[n]}
    base = out[BASELINE]["median_s"]
    for n in names:
        out[n]["minus_simclr_share"] = (
            (out[n]["median_s"] - base) / baseline_step_s)
    say("loss alone (fwd+bwd, ms; extra over SimCLR's loss as % of its "
        "step): " + ", ".join(
            f"{n} {1e3 * out[n]['median_s']:.2f} "
            f"({100 * out[n]['minus_simclr_share']:+.1f}%)" for n in names))
    return out


def _terms_computed(method):
    """The loss terms a method computes in its step: AdaDim's static choice
    (SimCLR never pays for VICReg or L_mut), else its declared terms."""
    uses = getattr(method, "_uses", None)
    if uses is not None:
        return [t for t, on in zip(method.term_names, uses()) if on]
    return list(method.term_names)


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
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
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
    names = r["methods"]
    jit = r["steps"][BASELINE]["jit_compile"]
    print(
        f"\n== {r['backend']} {bv} (keras {v['keras']}; "
        f"jit_compile={jit}; devices {','.join(r['devices'])}) =="
    )
    print(
        f"b={settings['batch']}, {settings['image_size']}x"
        f"{settings['image_size']}x3, width={settings['width']}, projector "
        f"{settings['projector'][0]}-{settings['projector'][1]}, predictor hidden "
        f"{settings['predictor_hidden']}, NNCLR queue "
        f"{settings['queue_size']}; {r['steps'][BASELINE]['n']} timed steps "
        f"per method over {settings['rounds']} rounds"
    )
    over = r["ratios"]["over_" + BASELINE]
    print(
        f"{'method':<14} {'terms':<16} {'median ms':>10} {'p25-p75 ms':>15} "
        f"{'min ms':>8} {'/SimCLR':>8} {'paired':>7} {'rounds':>12}  "
        "round medians (ms)"
    )
    for name in names:
        st, q = r["steps"][name], over[name]
        rounds = " ".join(f"{1e3 * x:.0f}" for x in st["round_medians_s"])
        paired = (
            "-" if q["paired_median"] is None
            else f"{q['paired_median']:.3f}"
        )
        spread = f"{q['per_round_min']:.2f}-{q['per_round_max']:.2f}"
        print(
            f"{name:<14} {'+'.join(st['terms_computed'] or ['?']):<16} "
            f"{1e3 * st['median_s']:>10.1f} "
            f"{1e3 * st['p25_s']:>7.1f}-{1e3 * st['p75_s']:<7.1f} "
            f"{1e3 * st['min_s']:>8.1f} {q['of_medians']:>7.3f}x "
            f"{paired:>7} {spread:>12}  {rounds}"
        )
    for key, label, target in (
        ("adadim_over_simclr", "AdaDim/SimCLR", STEP_TARGET),
        ("adadim_over_vicreg", "AdaDim/VICReg", None),
    ):
        q = r["ratios"].get(key)
        if q is None:
            continue
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
    lt = r.get("loss_terms")
    if lt:
        base = lt[BASELINE]["median_s"]
        print("loss alone (forward + backward from fixed rows):")
        print(f"  {'method':<18} {'median ms':>9} {'min ms':>7} "
              f"{'% of SimCLR step':>16} {'extra vs SimCLR loss':>21}")
        for name, q in lt.items():
            print(
                f"  {name:<18} {1e3 * q['median_s']:>9.2f} "
                f"{1e3 * q['min_s']:>7.2f} "
                f"{100 * q['share_of_simclr_step']:>15.1f}% "
                f"{1e3 * (q['median_s'] - base):>+9.2f} ms "
                f"({100 * q['minus_simclr_share']:+.1f}% of step)"
            )
    a = r["alpha_update"]
    if a is not None:
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
    load = r.get("load_average") or {}
    if load.get("before") and load.get("after"):
        print(
            f"  (1-min load average {load['before'][0]:.1f} -> "
            f"{load['after'][0]:.1f})"
        )
    print(f"  (backend wall time {r['wall_s']:.0f} s)")


def print_summary(results, names):
    """One row per method: ms per step and ratio to SimCLR per backend."""
    ok = [r for r in results if "error" not in r]
    print("\nSummary: median ms per step (x SimCLR, paired in brackets "
          "where measured)")
    print(f"{'method':<14} " + " ".join(
        f"{r['backend']:>24}" for r in ok
    ))
    for name in names:
        cells = []
        for r in ok:
            st = r["steps"][name]
            q = r["ratios"]["over_" + BASELINE][name]
            paired = (
                "" if q["paired_median"] is None
                else f" ({q['paired_median']:.2f})"
            )
            cells.append(
                f"{1e3 * st['median_s']:.1f} ms {q['of_medians']:.2f}x"
                + paired
            )
        print(f"{name:<14} " + " ".join(f"{c:>24}" for c in cells))
    if any(r.get("alpha_update") for r in ok):
        print(f"{'alpha %':<14} " + " ".join(
            f"{r['alpha_update']['share_pct']:>24.3f}"
            if r.get("alpha_update") else f"{'-':>24}"
            for r in ok
        ))
    for r in results:
        if "error" in r:
            print(f"{r['backend']}: failed: {r['error']}")


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
        f"S={args.image_size} w={args.width} | "
        f"{len(args.method_names)} methods ({', '.join(args.method_names)}) "
        f"| {args.rounds} rounds x {_steps_per_round(args)} steps per "
        f"method | "
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
    print_summary(results, args.method_names)
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
