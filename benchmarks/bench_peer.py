"""keras-adadim side by side with its peer, lightly (PyTorch): the same
network, batch and optimizer, timed in one run, interleaved.

Contestants (``--contestants``; names ``<family>/<backend or loss>[+knob]``):

* ``lightly/simclr``, ``lightly/vicreg``: lightly's ``NTXentLoss`` /
  ``VICRegLoss`` on torchvision's ResNet-18 with the CIFAR stem (3x3 conv,
  stride 1, no max-pool, no ``fc``) and lightly's ``VICRegProjectionHead``
  (512 -> 2048 -> 2048 -> 2048, BN + ReLU after the hidden layers), plain
  PyTorch training loop. They run in the *peer* environment
  (``--peer-python``), never in the package's.
* ``keras/<backend>``: bare Keras: a plain ``keras.Model`` holding the same
  encoder and projector, the SimCLR loss written inline in ``compute_loss``,
  trained with ``train_on_batch``. It shows what the library adds to Keras's
  own step.
* ``adadim-simclr/<backend>``: keras-adadim's ``AdaDimModel`` with the
  registered ``simclr`` method (NT-Xent, tau 0.1).
* ``adadim/<backend>``: ``AdaDimModel`` with AdaDim (alpha 0.5, gamma 1e-4:
  VICReg, NT-Xent and L_mut are all computed every step).

Every Keras contestant uses ``keras_adadim.models.resnet18(stem="cifar")`` and
``keras_adadim.models.projector("baseline")`` (3-layer, 2048 wide: the same
parameter counts as the lightly network, checked and printed). Optimizer:
SGD (learning rate 1e-3, momentum 0.9) everywhere. Data: one in-memory batch
of ``--batch`` pairs of random 32x32x3 views, repeated (the input pipeline
is measured by ``bench_pipeline.py``). images/s = ``--batch`` / step time
(each image is two views: 2 x batch forward and backward passes per step).

Knobs (``--knobs``; each adds variants of the default contestants, timed in
the same run): ``xla`` (TensorFlow ``jit_compile=True``), ``compile``
(PyTorch backend ``jit_compile=True``, i.e. ``torch.compile`` of Keras's
train step), ``channels_last`` (lightly's model and inputs in
``torch.channels_last`` memory format; Keras's PyTorch backend already runs
its convolutions in that format).

How it runs: one persistent worker subprocess per contestant (the Keras ones
with ``KERAS_BACKEND`` set, in this interpreter; lightly's in
``--peer-python``). Workers are started one at a time; each builds its model
once, times its first (compiling) step, runs ``--warmup`` untimed steps and
waits. Then for each of ``--rounds`` rounds the parent asks every worker in
turn (order rotated each round) for ``--steps`` timed steps over a pipe; only
one worker computes at a time, and machine noise falls on all alike. All
workers run with the same thread settings (``--threads``, default 1:
intra-op and inter-op threads, OMP/MKL and XLA's CPU threads). Reported:
median images/s per contestant, ratio to lightly (SimCLR-family contestants
to ``lightly/simclr``, AdaDim to ``lightly/vicreg``, as issue 14), the
per-round paired ratios, and the ratio to bare Keras on the same backend;
the same again from each worker's CPU time (``time.process_time``), the
steadier estimate on a machine whose cores are oversubscribed. A worker
keeps ~2-3 GB at the default size (all eleven: ~25 GB); on a smaller
machine time groups of contestants, each with the lightly references.

The peer environment (not a dependency of keras-adadim; ~5 GB, PyTorch with
CUDA libraries)::

    python3 -m venv /work/peerenv
    /work/peerenv/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly

Run (from the repository root, package environment active)::

    python benchmarks/bench_peer.py --peer-python /work/peerenv/bin/python
    python benchmarks/bench_peer.py --knobs xla,compile,channels_last --out peer.json
    python benchmarks/bench_peer.py --contestants keras/torch,adadim/torch   # no lightly

See benchmarks/README.md ("bench_peer.py").
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The peer environment beside the checkout (/work/peerenv for /work/main).
DEFAULT_PEER_PYTHON = os.path.join(os.path.dirname(ROOT), "peerenv", "bin", "python")
PEER_INSTALL = ("python3 -m venv /work/peerenv && /work/peerenv/bin/pip install "
                "torch==2.14.1 torchvision==0.29.1 lightly")
BACKENDS = ("tensorflow", "jax", "torch")
KERAS_FAMILIES = ("keras", "adadim-simclr", "adadim")
LIGHTLY_LOSSES = ("simclr", "vicreg")
KNOBS = ("xla", "compile", "channels_last")
# Which contestants each knob applies to.
KNOB_TARGETS = {"xla": ("tensorflow",), "compile": ("torch",),
                "channels_last": ("lightly",)}
DEFAULT_CONTESTANTS = (
    [f"lightly/{loss}" for loss in LIGHTLY_LOSSES]
    + [f"{fam}/{b}" for fam in KERAS_FAMILIES for b in BACKENDS])
TEMPERATURE = 0.1
LEARNING_RATE, MOMENTUM = 1e-3, 0.9
ADADIM_KWARGS = {"alpha": 0.5, "gamma": 1e-4}  # every AdaDim term computed
TARGET = 1.0  # best-backend keras-adadim / lightly on this CPU


# ============================================================ contestants
def parse_contestant(name):
    """``family/what[+knob]`` -> dict(name, family, backend, loss, knob);
    ValueError naming the flag and the valid names otherwise."""
    base, _, knob = name.partition("+")
    family, _, what = base.partition("/")
    valid = (f"--contestants: {name!r} is not a contestant. Valid: "
             f"{', '.join(DEFAULT_CONTESTANTS)}, each optionally with "
             f"+{'/+'.join(KNOBS)} where the knob applies (+xla: TensorFlow, "
             "+compile: torch, +channels_last: lightly).")
    if family == "lightly":
        if what not in LIGHTLY_LOSSES:
            raise ValueError(valid)
        spec = {"family": family, "backend": "lightly", "loss": what}
    elif family in KERAS_FAMILIES and what in BACKENDS:
        spec = {"family": family, "backend": what,
                "loss": "vicreg" if family == "adadim" else "simclr"}
    else:
        raise ValueError(valid)
    if knob:
        if knob not in KNOBS or spec["backend"] not in KNOB_TARGETS[knob]:
            raise ValueError(valid)
    spec["knob"] = knob or None
    spec["name"] = name
    return spec


def contestant_names(spec, knobs):
    """The contestants to time: ``spec`` ("default" or a comma list) plus
    a variant of each matching contestant per knob."""
    names = (list(DEFAULT_CONTESTANTS) if spec.strip() == "default"
             else [n.strip() for n in spec.split(",") if n.strip()])
    out = []
    for n in names:
        parse_contestant(n)
        if n not in out:
            out.append(n)
    for knob in knobs:
        for n in list(out):
            c = parse_contestant(n)
            if c["knob"] is None and c["backend"] in KNOB_TARGETS[knob]:
                variant = f"{n}+{knob}"
                if variant not in out:
                    out.append(variant)
    return out


def reference_of(contestant):
    """The lightly contestant a contestant is compared with: AdaDim with
    lightly's VICReg (as issue 14), everything else with lightly's SimCLR."""
    c = parse_contestant(contestant)
    return f"lightly/{c['loss']}"


def bare_of(contestant):
    """Bare Keras on the same backend (None for lightly and bare Keras)."""
    c = parse_contestant(contestant)
    if c["family"] in ("lightly", "keras"):
        return None
    return f"keras/{c['backend']}" + (f"+{c['knob']}" if c["knob"] else "")


# ======================================================== the arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--contestants", default="default",
                   help="comma-separated contestants, or 'default': "
                        + ", ".join(DEFAULT_CONTESTANTS))
    p.add_argument("--knobs", default="",
                   help=f"comma-separated knobs ({', '.join(KNOBS)}): each "
                        "adds a variant of every contestant it applies to")
    p.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON,
                   help="Python of the peer environment (lightly, torch); "
                        f"make it with: {PEER_INSTALL}")
    p.add_argument("--batch", type=int, default=64, help="pairs of views per step")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--width-multiplier", type=float, default=1.0,
                   help="ResNet-18 channel widths x this (Keras contestants "
                        "only; lightly's torchvision ResNet-18 has 1.0). "
                        "Small values make a tiny network for tests")
    p.add_argument("--encoder", default="resnet18",
                   choices=("resnet18", "small_cnn"),
                   help="small_cnn (keras_adadim.models.small_cnn_encoder, "
                        "width 8 x --width-multiplier): a network that builds "
                        "and compiles in a second, for the tests; Keras "
                        "contestants only")
    p.add_argument("--projector-dim", type=int, default=2048,
                   help="projector hidden and output width")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=1,
                   help="timed steps per contestant and round")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed steps after the first (compiling) one")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of every worker (intra-op; inter-op 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write every number as JSON")
    p.add_argument("--log-dir", default=None,
                   help="workers' stderr logs (default: a temporary folder, "
                        "kept when a worker fails)")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds a worker may take for one request")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    for name in ("batch", "image_size", "projector_dim", "rounds", "steps",
                 "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got "
                             f"{getattr(args, name)}.")
    if args.batch < 2:
        raise ValueError("--batch must be >= 2 (the losses need batch statistics).")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0; got {args.warmup}.")
    if not args.width_multiplier > 0:
        raise ValueError(f"--width-multiplier must be > 0; got {args.width_multiplier}.")
    knobs = [k.strip() for k in args.knobs.split(",") if k.strip()]
    for k in knobs:
        if k not in KNOBS:
            raise ValueError(f"--knobs: unknown knob {k!r}; choose from {', '.join(KNOBS)}.")
    args.knob_list = knobs
    args.names = contestant_names(args.contestants, knobs)
    lightly = [n for n in args.names if n.startswith("lightly/")]
    if lightly and (args.width_multiplier != 1.0 or args.encoder != "resnet18"):
        raise ValueError(
            "--width-multiplier and --encoder apply to the Keras contestants "
            "only (lightly runs torchvision's resnet18): leave them at 1.0 "
            f"and resnet18, or drop {', '.join(lightly)} from --contestants.")
    return args


def check_peer(python):
    """The peer's versions (torch, torchvision, lightly), or a ValueError
    saying how to make the peer environment."""
    code = ("import json, lightly, torch, torchvision; print(json.dumps("
            "{'torch': torch.__version__, 'torchvision': torchvision.__version__, "
            "'lightly': lightly.__version__}))")
    problem = None
    if not os.path.exists(python):
        problem = f"{python} does not exist"
    else:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        problem = ("it cannot import lightly, torch and torchvision ("
                   + (proc.stderr.strip().splitlines() or ["?"])[-1] + ")")
    raise ValueError(
        f"--peer-python {python}: {problem}. The lightly contestants run in "
        f"their own environment; make it with `{PEER_INSTALL}` and pass "
        "--peer-python /work/peerenv/bin/python, or time the Keras "
        "contestants only, e.g. --contestants "
        + ",".join(n for n in DEFAULT_CONTESTANTS if not n.startswith("lightly/"))
        + ".")


# ============================================================ the parent
class Worker:
    """One contestant's persistent subprocess; JSON lines over a pipe."""

    def __init__(self, name, args, log_dir):
        self.name = name
        self.spec = parse_contestant(name)
        self.log_path = os.path.join(log_dir, name.replace("/", "_") + ".log")
        env = dict(os.environ)
        n = str(args.threads)
        env.update({"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
                    "TF_CPP_MIN_LOG_LEVEL": "3",
                    "PYTHONPATH": os.pathsep.join(
                        [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))})
        # XLA's CPU threads (JAX; TensorFlow with jit_compile).
        env["XLA_FLAGS"] = " ".join(filter(None, [
            env.get("XLA_FLAGS"),
            f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}",
            f"intra_op_parallelism_threads={n}"]))
        if self.spec["backend"] == "lightly":
            python = args.peer_python
            env.pop("PYTHONPATH")  # nothing of this checkout in the peer
        else:
            python = sys.executable
            env["KERAS_BACKEND"] = self.spec["backend"]
        job = {**self.spec, "batch": args.batch, "image_size": args.image_size,
               "width_multiplier": args.width_multiplier, "encoder": args.encoder,
               "projector_dim": args.projector_dim, "threads": args.threads,
               "warmup": args.warmup, "seed": args.seed}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", json.dumps(job)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=env, text=True, bufsize=1)
        self.timeout = args.timeout

    def _reply(self):
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(self.timeout):
            self.proc.kill()
            raise RuntimeError(f"{self.name}: no reply in {self.timeout} s; "
                               f"log: {self.log_path}")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.flush()
            with open(self.log_path) as f:
                tail = "".join(f.readlines()[-15:])
            raise RuntimeError(f"{self.name}: worker exited (rc "
                               f"{self.proc.returncode}); log {self.log_path}:\n{tail}")
        return json.loads(line)

    def ready(self):
        return self._reply()

    def round(self, steps):
        self.proc.stdin.write(json.dumps({"op": "round", "steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run(args, say=print):
    """Start the workers, run the interleaved rounds; the results dict."""
    peer = None
    if any(n.startswith("lightly/") for n in args.names):
        peer = check_peer(args.peer_python)  # before any worker starts
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    keep_logs = args.log_dir is not None
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="bench_peer_")
    os.makedirs(log_dir, exist_ok=True)
    workers, info = [], {}
    t_start = time.perf_counter()
    failed = False
    try:
        # One at a time: a starting worker (imports, model build, compile,
        # warm-up) is the only one computing.
        for name in args.names:
            w = Worker(name, args, log_dir)
            workers.append(w)
            info[name] = w.ready()
            r = info[name]
            say(f"{name:32s} ready: {r['params']['encoder']:,} + "
                f"{r['params']['projector']:,} trainable parameters, first "
                f"step {r['first_step_s']:.1f} s, warm-up "
                f"{', '.join(f'{t:.2f}' for t in r['warmup_s']) or '-'} s, "
                f"loss {r['loss']:.4f}, {r['max_rss_mb']} MB")
        counts = {n: (i["params"]["encoder"], i["params"]["projector"])
                  for n, i in info.items()}
        if len(set(counts.values())) > 1:
            raise RuntimeError(f"Not the same network: trainable parameters "
                               f"(encoder, projector) differ: {counts}")
        times = {n: [] for n in args.names}
        cpu_times = {n: [] for n in args.names}
        loads = []
        for r in range(args.rounds):
            order = workers[r % len(workers):] + workers[:r % len(workers)]
            for w in order:
                reply = w.round(args.steps)
                times[w.name].append(reply["times"])
                cpu_times[w.name].append(reply["cpu_times"])
            loads.append(_loadavg())
            say(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {args.batch / statistics.median(times[n][-1]):.1f}"
                for n in args.names) + f" images/s (load {loads[-1]})")
    except BaseException:
        failed = True
        raise
    finally:
        for w in workers:
            w.close()
        if failed:
            say(f"worker logs kept in {log_dir}")
        elif not keep_logs:
            for w in workers:
                os.remove(w.log_path)
            os.rmdir(log_dir)
    results = summarize(args.names, times, args.batch)
    cpu = summarize(args.names, cpu_times, args.batch)
    results["cpu"] = {"contestants": cpu["contestants"], "best": cpu["best"]}
    return {
        "started": started, "command": [sys.executable, *sys.argv],
        "machine": machine(), "code": code_version(), "peer_versions": peer,
        "settings": {k: getattr(args, k) for k in (
            "batch", "image_size", "encoder", "width_multiplier", "projector_dim",
            "rounds", "steps", "warmup", "threads", "seed", "knob_list",
            "peer_python")},
        "optimizer": f"SGD(learning_rate={LEARNING_RATE}, momentum={MOMENTUM})",
        "workers": info, "load_per_round": loads, "wall_s":
            round(time.perf_counter() - t_start, 1), **results}


def summarize(names, times, batch):
    """Per contestant: median images/s over every timed step, the per-round
    medians; ratios to the lightly reference and to bare Keras, as ratios
    of medians and as medians of per-round paired ratios."""
    per = {}
    for n in names:
        steps = [t for rnd in times[n] for t in rnd]
        rounds = [statistics.median(rnd) for rnd in times[n]]
        per[n] = {"median_step_s": statistics.median(steps),
                  "images_per_s": batch / statistics.median(steps),
                  "min_step_s": min(steps),
                  "round_images_per_s": [batch / t for t in rounds],
                  "all_step_s": steps}

    def ratio(n, ref):
        if ref is None or ref not in per or ref == n:
            return None
        paired = [a / b for a, b in zip(per[n]["round_images_per_s"],
                                        per[ref]["round_images_per_s"])]
        return {"of": ref,
                "median": per[n]["images_per_s"] / per[ref]["images_per_s"],
                "paired": statistics.median(paired),
                "rounds": [min(paired), max(paired)]}

    for n in names:
        per[n]["vs_lightly"] = ratio(n, reference_of(n))
        per[n]["vs_bare_keras"] = ratio(n, bare_of(n))
    best = {}
    for loss, families in (("simclr", ("adadim-simclr",)), ("vicreg", ("adadim",))):
        cands = [n for n in names if parse_contestant(n)["family"] in families]
        ref = f"lightly/{loss}"
        if cands:
            top = max(cands, key=lambda n: per[n]["images_per_s"])
            best[loss] = {"contestant": top,
                          "images_per_s": per[top]["images_per_s"],
                          "vs_lightly": per[top]["vs_lightly"]}
            if ref not in per:
                best[loss]["vs_lightly"] = None
    return {"contestants": per, "best": best}


def table(res):
    """A Markdown table of the results: wall-clock images/s and ratios, and
    the same from each worker's CPU time (``time.process_time``), which a
    loaded machine disturbs far less (a worker waiting for a core is not
    charged)."""
    def fmt(r):
        if r is None:
            return "-"
        return (f"{r['median']:.2f} ({r['paired']:.2f}; "
                f"{r['rounds'][0]:.2f}–{r['rounds'][1]:.2f})")

    cpu = res.get("cpu", {}).get("contestants", {})
    rows = ["| contestant | images/s | ms/step | × lightly (paired; rounds) | "
            "× bare Keras (paired) | CPU images/s | × lightly, CPU (paired; rounds) |",
            "|---|---|---|---|---|---|---|"]
    for n, c in res["contestants"].items():
        lt, bk = c["vs_lightly"], c["vs_bare_keras"]
        cc = cpu.get(n)
        rows.append(
            f"| {n} | {c['images_per_s']:.1f} | {1000 * c['median_step_s']:.0f} | "
            + (f"{fmt(lt)} vs {lt['of']}" if lt else "-") + " | "
            + (f"{bk['median']:.2f} ({bk['paired']:.2f})" if bk else "-") + " | "
            + (f"{cc['images_per_s']:.1f} | {fmt(cc['vs_lightly'])}" if cc else "- | -")
            + " |")
    return "\n".join(rows)


def code_version():
    """The checkout's commit and whether library files had local changes
    (the working tree is shared: say what was measured)."""
    def git(*cmd):
        proc = subprocess.run(["git", "-C", ROOT, *cmd], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None
    changed = git("status", "--porcelain", "--", "keras_adadim")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "library_changes": changed.splitlines() if changed else []}


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu_model": cpu,
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    if argv is None:
        import signal

        # `kill` of the parent: run's `finally` closes the workers.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"bench_peer: {len(args.names)} contestants, batch {args.batch} x 2 "
          f"views of {args.image_size}x{args.image_size}, {args.rounds} rounds "
          f"x {args.steps} step(s), {args.threads} thread(s) per worker",
          flush=True)
    res = run(args, say=lambda m: print(m, flush=True))
    print()
    print(table(res))
    for clock, summary in (("wall", res), ("CPU", res["cpu"])):
        for loss, b in summary["best"].items():
            r = b["vs_lightly"]
            line = (f"best keras-adadim ({'SimCLR' if loss == 'simclr' else 'AdaDim'}, "
                    f"{clock} time): {b['contestant']} {b['images_per_s']:.1f} images/s")
            if r:
                line += (f" = {r['median']:.2f}x {r['of']} (paired {r['paired']:.2f}x); "
                         f"target >= {TARGET}: "
                         f"{'met' if r['median'] >= TARGET else 'NOT met'}")
            print(line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.out}")
    return res


# ============================================================ the workers
def worker(job):
    """Build one contestant, report, then serve rounds of timed steps."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to the log, not the pipe
    sys.stdout = sys.stderr
    import numpy as np

    rng = np.random.default_rng(job["seed"])
    s, b = job["image_size"], job["batch"]
    x1, x2 = (rng.random((b, s, s, 3), dtype=np.float32) for _ in range(2))
    build = _lightly_step if job["backend"] == "lightly" else _keras_step
    step, params, versions = build(job, x1, x2)

    def timed():
        c0, t0 = time.process_time(), time.perf_counter()
        loss = step()  # a Python float: the step has finished
        return time.perf_counter() - t0, time.process_time() - c0, loss

    first, _, loss = timed()
    warm = [timed()[0] for _ in range(job["warmup"])]
    proto.write(json.dumps({
        "params": params, "first_step_s": first, "warmup_s": warm,
        "loss": loss, "versions": versions, "pid": os.getpid(),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        ts = [timed()[:2] for _ in range(cmd["steps"])]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        proto.write(json.dumps({"times": [t for t, _ in ts],
                                "cpu_times": [c for _, c in ts],
                                "max_rss_mb": rss}) + "\n")
    return None


def _lightly_step(job, x1, x2):
    import lightly
    import torch
    import torchvision
    from lightly.loss import NTXentLoss, VICRegLoss
    from lightly.models.modules.heads import VICRegProjectionHead
    from torch import nn

    if job["threads"]:
        torch.set_num_threads(job["threads"])
        torch.set_num_interop_threads(1)
    torch.manual_seed(job["seed"])
    backbone = torchvision.models.resnet18()
    # CIFAR stem, as keras_adadim.models.resnet18(stem="cifar").
    backbone.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    backbone.maxpool = nn.Identity()
    backbone.fc = nn.Identity()
    dim = job["projector_dim"]
    head = VICRegProjectionHead(input_dim=512, hidden_dim=dim, output_dim=dim,
                                num_layers=3)
    model = nn.Sequential(backbone, head)
    crit = NTXentLoss(temperature=TEMPERATURE) if job["loss"] == "simclr" else VICRegLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    v1, v2 = (torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in (x1, x2))
    if job["knob"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
    model.train()

    def step():
        opt.zero_grad()
        loss = crit(model(v1), model(v2))
        loss.backward()
        opt.step()
        return float(loss.item())

    def count(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "lightly": lightly.__version__, "torch_threads": torch.get_num_threads()}
    return step, {"encoder": count(backbone), "projector": count(head)}, versions


def _keras_step(job, x1, x2):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    n = job["threads"]
    # threads 0: leave the backend as it is (a worker run in-process by the
    # tests, where the threading can no longer be changed).
    if backend == "tensorflow":
        import tensorflow as tf

        if n:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        if n:
            torch.set_num_threads(n)
            torch.set_num_interop_threads(1)
    import keras
    import numpy as np
    from keras import ops

    backend = keras.backend.backend()

    from keras_adadim.methods import get_method
    from keras_adadim.models import AdaDimModel
    from keras_adadim.models import projector as make_projector
    from keras_adadim.models import resnet18
    from keras_adadim.models.small_cnn import small_cnn_encoder

    keras.utils.set_random_seed(job["seed"])
    s, dim, w = job["image_size"], job["projector_dim"], job["width_multiplier"]
    if job["encoder"] == "small_cnn":
        encoder = small_cnn_encoder((s, s, 3), width=max(1, round(8 * w)))
    else:
        encoder = resnet18((s, s, 3), stem="cifar", width_multiplier=w)
    head = make_projector("baseline", input_dim=encoder.output_shape[-1],
                          hidden_dim=dim, output_dim=dim)
    if job["family"] == "keras":
        model = _bare_simclr(keras, ops, encoder, head)
    else:
        method = (get_method("simclr") if job["family"] == "adadim-simclr"
                  else get_method("adadim", **ADADIM_KWARGS))
        model = AdaDimModel(encoder, head, method=method)
    jit = True if job["knob"] in ("xla", "compile") else "auto"
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
                  jit_compile=jit)
    batch = (ops.convert_to_tensor(x1), ops.convert_to_tensor(x2))

    def step():
        out = model.train_on_batch(batch)
        return float(np.asarray(out[0] if isinstance(out, list) else out))

    def count(m):
        return int(sum(np.prod(v.shape) for v in m.trainable_weights))

    versions = {"keras": keras.__version__, "backend": backend,
                "numpy": np.__version__}
    if backend == "tensorflow":
        versions["tensorflow"] = tf.__version__
    elif backend == "torch":
        versions["torch"] = torch.__version__
        versions["torch_threads"] = torch.get_num_threads()
    else:
        import jax

        versions["jax"] = jax.__version__
    # "auto" is resolved by compile(): JAX jit-compiles, TensorFlow on a CPU
    # does not (plain tf.function), PyTorch runs eagerly.
    versions["jit_compile"] = bool(model.jit_compile)
    return step, {"encoder": count(encoder), "projector": count(head)}, versions


def _bare_simclr(keras, ops, encoder, head):
    """Bare Keras: the encoder and projector in a plain ``keras.Model``,
    SimCLR's NT-Xent inline (tau 0.1, 2b anchors, the positive in the
    denominator, the anchor excluded: keras_adadim.losses.nt_xent)."""

    class BareSimCLR(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.head = encoder, head

        def call(self, inputs, training=False):
            return [self.head(self.encoder(x, training=training), training=training)
                    for x in inputs]

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            z = ops.concatenate(y_pred, axis=0)
            z = z / ops.sqrt(ops.sum(z * z, axis=1, keepdims=True) + 1e-12)
            n = ops.shape(z)[0]
            logits = ops.matmul(z, ops.transpose(z)) / TEMPERATURE
            logits = logits - 1e9 * ops.eye(n)
            positive = (ops.arange(n) + n // 2) % n
            return ops.mean(ops.logsumexp(logits, axis=1)
                            - ops.take_along_axis(logits, positive[:, None], axis=1)[:, 0])

    return BareSimCLR()


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:
        sys.exit(f"bench_peer.py: error: {e}")
