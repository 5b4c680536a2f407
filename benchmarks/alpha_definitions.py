"""AdaDim's adaptive alpha over training under four effective-rank definitions.

alpha = ER(Z) / min(2b, F), Z = concat(z1, z2) of one fixed held-out batch of
``b`` images (two augmented views, training-mode forward as AlphaUpdater,
inside a StatelessScope so no state changes). ER is taken under each of
``keras_adadim.metrics.spectrum.RANK_DEFINITIONS`` on the same Z:

    singular    singular values of raw Z (today's default, SPEC)
    squared     squared singular values (eigenvalues of Z Z^T)
    centered    singular values of Z minus its row mean
    normalized  singular values of Z with L2-normalised rows

and again on Z from an inference-mode forward (batch-norm running
statistics, Keras momentum 0.99) as a BN-mode check (``<definition>_infer``). The model trains with today's AdaDim (adaptive alpha from
``singular``, AlphaUpdater every epoch on 2 batches), so the trajectory of Z
is today's; only the measurement differs.

Run on demand (CPU: keep it small)::

    nice -n 19 python benchmarks/alpha_definitions.py --network small_cnn \\
        --train-size 10000 --epochs 5
    nice -n 19 python benchmarks/alpha_definitions.py --network resnet18 \\
        --train-size 5000 --epochs 4

Prints a table, writes ``<out>_<network>.json`` and, with ``--plot`` (or by
``--plot-only`` from the saved JSON files), ``<out>.png``: the four
trajectories side by side per network.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

DEFINITIONS = ("singular", "squared", "centered", "normalized")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", choices=("small_cnn", "resnet18", "resnet50"),
                   default="small_cnn")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--every", type=int, default=20,
                   help="measure alpha every this many steps")
    p.add_argument("--probe-images", type=int, default=128,
                   help="held-out images in the fixed batch (Z has twice as "
                        "many rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/alpha_definitions")
    p.add_argument("--plot", action="store_true",
                   help="plot every <out>_*.json after the run")
    p.add_argument("--plot-only", action="store_true")
    return p.parse_args(argv)


def config_for(args):
    from keras_adadim import presets

    overrides = dict(
        dataset=args.dataset, backbone=args.network,
        train_split=f"train[:{args.train_size}]", epochs=args.epochs,
        batch_size=args.batch_size, online_probe=False, seed=args.seed,
        alpha_every=1, alpha_batches=2,
    )
    if args.network != "small_cnn":
        # The paper's baseline projector: 3-layer MLP, 2048 wide (Table 7).
        overrides.update(projector="baseline", projector_hidden_dim=2048,
                         projector_dim=2048)
    return presets.resolve(preset="digits", **overrides)


def measure(model, views):
    """alpha under each definition, on training-mode Z and on
    inference-mode Z (``_infer``), from one forward pass per mode."""
    import keras
    from keras import ops

    from keras_adadim.metrics.spectrum import effective_rank_of

    out = {}
    for mode, training in (("train", True), ("infer", False)):
        with keras.StatelessScope():
            rows = model.step_rows(model(views, training=training),
                                   training=False)
        z = ops.concatenate([rows["z1"], rows["z2"]], axis=0)
        n, f = z.shape
        for d in DEFINITIONS:
            er = float(ops.convert_to_numpy(effective_rank_of(z, d)))
            key = d if training else f"{d}_infer"
            out[key] = er / min(n, f)
    out["rows"], out["features"] = int(n), int(f)
    return out


def run(args):
    import keras

    from keras_adadim import data as data_lib
    from keras_adadim import training
    from keras_adadim.callbacks import AlphaUpdater

    config = config_for(args)
    keras.utils.set_random_seed(args.seed)
    train = data_lib.load_dataset(args.dataset, split=config["train_split"])
    held = data_lib.load_dataset(args.dataset, split=f"test[:{args.probe_images}]")
    size = int(train.image_shape[0])
    shape = (size, size, int(train.image_shape[-1]))
    spe = data_lib.steps_per_epoch(train, args.batch_size)

    def stream(epoch, step=0):
        return data_lib.pretraining_dataset(
            train, image_size=size, batch_size=args.batch_size,
            seed=args.seed, with_labels=False, epoch=epoch, step=step)

    probe = data_lib.pretraining_dataset(
        held, image_size=size, batch_size=args.probe_images, seed=123,
        with_labels=False)
    views = tuple(np.asarray(v) for v in next(iter(probe.take(1)))[0])

    model = training.build_model(config, image_shape=shape)
    model.compile(optimizer=training.build_optimizer(config, spe))
    model(views)
    records = []
    t0 = time.time()

    class Measure(keras.callbacks.Callback):
        step = 0

        def _record(self):
            if keras.backend.backend() == "jax":
                self.model.jax_state_sync()
            alpha_used = float(keras.ops.convert_to_numpy(self.model.alpha))
            rec = {"step": self.step, "alpha_used": alpha_used,
                   **measure(self.model, views)}
            records.append(rec)
            print(f"step {self.step:5d} ({time.time() - t0:6.0f}s) "
                  + " ".join(f"{d}={rec[d]:.3f}" for d in DEFINITIONS)
                  + " | infer " + " ".join(f"{rec[d + '_infer']:.3f}"
                                           for d in DEFINITIONS)
                  + f" alpha_used={alpha_used:.3f}", flush=True)

        def on_train_begin(self, logs=None):
            self._record()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % args.every == 0:
                self._record()

        def on_train_end(self, logs=None):
            if records[-1]["step"] != self.step:
                self._record()

    updater = AlphaUpdater(every=1, batches=2, data=stream, verbose=0)
    model.fit(stream(0), steps_per_epoch=spe, epochs=args.epochs,
              callbacks=[updater, Measure()], verbose=0)
    result = {
        "network": args.network, "dataset": args.dataset,
        "backend": keras.backend.backend(),
        "projector": config["projector"],
        "projector_dim": config["projector_dim"],
        "train_size": args.train_size, "epochs": args.epochs,
        "batch_size": args.batch_size, "steps_per_epoch": spe,
        "probe_images": args.probe_images, "seconds": time.time() - t0,
        "command": "python " + " ".join(sys.argv),
        "alpha_updates": updater.updates, "records": records,
    }
    path = f"{args.out}_{args.network}.json"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print_table(result)
    print(f"wrote {path}")
    return result


def print_table(result):
    recs = result["records"]
    print(f"\n{result['network']} on {result['dataset']}, Z = "
          f"{recs[0]['rows']} x {recs[0]['features']}, "
          f"alpha = ER / {min(recs[0]['rows'], recs[0]['features'])}")
    cols = (*DEFINITIONS, *(f"{d}_infer" for d in DEFINITIONS), "alpha_used")
    print("  step  " + "  ".join(f"{c:>10s}" for c in
                                 (c.replace("normalized", "normed") for c in cols)))
    for r in recs:
        print(f"{r['step']:6d}  " + "  ".join(f"{r[c]:10.3f}" for c in cols))


def plot(out):
    import glob

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted(glob.glob(f"{out}_*.json"))
    results = [json.load(open(f)) for f in files]
    if not results:
        raise SystemExit(f"no {out}_*.json to plot")
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2),
                             squeeze=False)
    for ax, res in zip(axes[0], results):
        recs = res["records"]
        steps = [r["step"] for r in recs]
        for d in DEFINITIONS:
            ax.plot(steps, [r[d] for r in recs], marker="o", ms=3, label=d,
                    color=f"C{DEFINITIONS.index(d)}")
        for i, d in enumerate(DEFINITIONS):
            ax.plot(steps, [r[f"{d}_infer"] for r in recs], ls="--", lw=1,
                    color=f"C{i}", label=f"{d}, BN inference mode")
        ups = res["alpha_updates"]
        ax.step([u["epoch"] * res["steps_per_epoch"] for u in ups] + [steps[-1]],
                [u["alpha"] for u in ups] + [ups[-1]["alpha"]], where="post",
                ls=":", color="k",
                label="alpha trained with (AlphaUpdater, singular, per epoch)")
        for e in range(1, res["epochs"]):
            ax.axvline(e * res["steps_per_epoch"], color="k", lw=0.3)
        ax.set_ylim(0, 1)
        ax.set_xlabel("training step (b = %d; epoch lines)" % res["batch_size"])
        ax.set_ylabel("alpha = ER(concat(z1, z2)) / min(2b, F)")
        ax.set_title(f"{res['network']} + {res['projector']} projector "
                     f"(F = {recs[0]['features']}), {res['dataset']} "
                     f"[:{res['train_size']}]", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("AdaDim adaptive alpha under four effective-rank definitions "
                 "(same Z, fixed held-out batch)", fontsize=10)
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=110)
    print(f"wrote {out}.png")


def main(argv=None):
    args = parse_args(argv)
    if not args.plot_only:
        run(args)
    if args.plot or args.plot_only:
        plot(args.out)


if __name__ == "__main__":
    main()
