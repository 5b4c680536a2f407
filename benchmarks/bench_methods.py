"""Every registered method at an equal budget on one dataset: the method
benchmark table (issue 12), with the paper's diagnostics.

Each cell (method, seed) is one `adadim pretrain` run directory under
``<out>/runs/<method>-seed<seed>``, with the same encoder, epochs, batch,
augmentation, optimizer and seed for every method (only ``--method``
differs; the methods' own predictor widths and queue are fixed by
``--predictor-hidden-dim`` / ``--queue-size``). Cells are independent and
resumable: run the whole table, or one cell at a time (``--only
byol:0``), in any order, in several sittings; a finished cell is only
read. ``--table`` (also done when the cells of an invocation have run)
aggregates the finished cells into ``<out>/table.md`` and
``<out>/table.json``: per method the mean ± std
over seeds of linear-probe top-1, kNN top-1, linear top-1 with
``--few-labels`` labels per class, and the last monitored ER(R), H(R),
I(R; Z), plus seconds per epoch; and the random-init encoder and raw pixels
(the runs' own baselines), each cell's command and the commit of the code
that ran it. ``adadim analyze <out>/runs/*`` then gives the
|Pearson r| table (Table 1) and the H(R)-I(R; Z) scatter (Figure 4d).

CPU table (the default, a few hours on 2 cores; small CNN, 10,000 training
images, 15 epochs, small enough for a laptop). The committed table
(``benchmarks/results/fashion_mnist_cpu``, ``--epochs 10``) separates
every method from the random-init encoder except BYOL and SimSiam, whose
predictor/EMA dynamics need more steps; ``--epochs 50`` (about 5x the
cost) is the budget to measure for them next (issue 12)::

    python benchmarks/bench_methods.py --out benchmarks/results/fashion_mnist_cpu

Full size on a GPU (60,000 images, ResNet-18, the baseline preset)::

    python benchmarks/bench_methods.py --out runs/bench-fmnist-r18 \\
        --train-split train --backbone resnet18 --preset baseline \\
        --epochs 100 --batch-size 256 --predictor-hidden-dim 4096 \\
        --queue-size 65536
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from keras_adadim import presets  # noqa: E402  (data only: no Keras)
from keras_adadim import run_directory  # noqa: E402  (no Keras either)

ENCODER = run_directory.ENCODER_KEY  # results.json key of the encoder
BASELINES = run_directory.BASELINE_KEYS
STAT_KEYS = ("r_effective_rank", "r_entropy", "mutual_information")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="benchmark directory")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--train-split", default="train[:10000]")
    p.add_argument("--test-split", default="test")
    p.add_argument("--preset", default="digits",
                   help="settings every method shares (adadim pretrain --preset)")
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--predictor-hidden-dim", type=int, default=256)
    p.add_argument("--queue-size", type=int, default=4096)
    p.add_argument("--num-prototypes", type=int, default=None,
                   help="SwAV / DINO / each DeepCluster v2 head (default: "
                   "the methods' own; fewer for a small dataset)")
    p.add_argument("--monitor-every", type=int, default=5)
    p.add_argument("--few-labels", type=int, default=10)
    p.add_argument("--methods", default="all",
                   help="comma-separated registered names, or 'all'")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--only", default=None,
                   help="one cell, METHOD:SEED (e.g. byol:0)")
    p.add_argument("--table", action="store_true",
                   help="only aggregate the finished cells")
    return p.parse_args(argv)


def cells(args):
    methods = (presets.method_names() if args.methods == "all"
               else args.methods.split(","))
    for m in methods:
        presets.check_method_name(m)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.only:
        method, seed = args.only.split(":")
        presets.check_method_name(method)
        return [(method, int(seed))]
    return [(m, s) for s in seeds for m in methods]


def command(args, method, seed):
    """The `adadim pretrain` command of one cell (recorded in table.json so
    that any cell can be re-run by hand)."""
    entry = presets.METHODS[method]
    cmd = [sys.executable, "-m", "keras_adadim.cli", "pretrain",
           "--dataset", args.dataset, "--train-split", args.train_split,
           "--test-split", args.test_split, "--preset", args.preset,
           "--backbone", args.backbone, "--method", method,
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--monitor-every", str(args.monitor_every), "--eval", "all",
           "--few-labels", str(args.few_labels), "--seed", str(seed),
           "--output", run_dir(args, method, seed), "--verbose", "2"]
    if entry["predictor"] == "yes":  # methods that always have one
        cmd += ["--predictor-hidden-dim", str(args.predictor_hidden_dim)]
    if "queue_size" in entry["uses"]:
        cmd += ["--queue-size", str(args.queue_size)]
    if args.num_prototypes and "num_prototypes" in entry["uses"]:
        cmd += ["--num-prototypes", str(args.num_prototypes)]
    return cmd


def run_dir(args, method, seed):
    return os.path.join(args.out, "runs", f"{method}-seed{seed}")


def run_cell(args, method, seed):
    d = run_dir(args, method, seed)
    if os.path.exists(os.path.join(d, "results.json")):
        return "finished"
    cmd = command(args, method, seed)
    print(f"[{time.strftime('%H:%M:%S')}] {method} seed {seed}: "
          + " ".join(cmd[1:]), flush=True)
    start = time.time()
    rc = subprocess.call(cmd, cwd=ROOT)
    print(f"  -> exit {rc} after {time.time() - start:.0f} s", flush=True)
    return "ran" if rc == 0 else f"failed ({rc})"


def _cell_numbers(d):
    with open(os.path.join(d, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(d, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    out = {}
    for name, ev in results["evaluation"].items():
        out[name] = {
            "linear": ev["all_labels"].get("linear_top1"),
            "knn": ev["all_labels"].get("knn_top1"),
            "few": (ev.get("few_label") or {}).get("linear_top1"),
        }
    monitored = [row for row in history if "r_entropy" in row]
    last = monitored[-1] if monitored else {}
    out[ENCODER].update({k: last.get(k) for k in STAT_KEYS})
    out[ENCODER]["sec_per_epoch"] = results["train_seconds"] / config["epochs"]
    return out


def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _cell_code(d):
    """The commit of the keras-adadim checkout that made the run
    (``versions.keras_adadim_commit``; None for runs from before it was
    recorded, or from a pip install): the command alone does not pin the
    numbers, the code's round-off does too."""
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        return (json.load(f).get("versions") or {}).get("keras_adadim_commit")


def aggregate(args):
    rows, commands, code = {}, {}, {}
    for method, seed in cells(argparse.Namespace(**{**vars(args), "only": None})):
        d = run_dir(args, method, seed)
        commands[f"{method}:{seed}"] = " ".join(command(args, method, seed)[1:])
        if not os.path.exists(os.path.join(d, "results.json")):
            continue
        code[f"{method}:{seed}"] = _cell_code(d)
        numbers = _cell_numbers(d)
        rows.setdefault(method, []).append(numbers[ENCODER])
        for base in BASELINES:
            if base in numbers:
                rows.setdefault(base, []).append(numbers[base])
    columns = ("linear", "knn", "few", *STAT_KEYS, "sec_per_epoch")
    table = {name: {"seeds": len(cell_rows),
                    **{c: _mean_std([r.get(c) for r in cell_rows])
                       for c in columns}}
             for name, cell_rows in rows.items()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": {k: v for k, v in vars(args).items()
                                if k not in ("only", "table")},
                   "table": table, "commands": commands, "code": code},
                  f, indent=2)
    md = _markdown(table, args)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(md)
    print(md)


def _fmt(pair, digits=3):
    mean, std = pair
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _markdown(table, args):
    head = (f"{args.dataset} ({args.train_split}), {args.backbone}, "
            f"{args.epochs} epochs, batch {args.batch_size}, preset "
            f"{args.preset}; mean ± std over seeds\n\n")
    lines = ["| method | seeds | linear top-1 | kNN top-1 | "
             f"{args.few_labels}/class top-1 | ER(R) | H(R) | I(R; Z) | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in table.items():
        lines.append(
            f"| {name} | {r['seeds']} | {_fmt(r['linear'])} | {_fmt(r['knn'])}"
            f" | {_fmt(r['few'])} | {_fmt(r['r_effective_rank'], 1)} | "
            f"{_fmt(r['r_entropy'])} | {_fmt(r['mutual_information'])} | "
            f"{_fmt(r['sec_per_epoch'], 1)} |")
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if not args.table:
        for method, seed in cells(args):
            status = run_cell(args, method, seed)
            if status.startswith("failed"):
                print(f"{method} seed {seed}: {status}", file=sys.stderr)
    aggregate(args)


if __name__ == "__main__":
    main()
