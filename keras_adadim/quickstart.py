"""The main job: a short AdaDim pre-training on the bundled digits data.

    python -m keras_adadim.quickstart [--epochs 60] [--batch-size 128] ...

Pre-trains a small CNN with AdaDim (alpha updated by the effective rank,
printed at every update), then compares linear probes on frozen features of
the pre-trained encoder, of a randomly initialised encoder of the same
architecture, and of the raw pixels, with all labels and with 10 per class.
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import keras_adadim as ka
from keras_adadim.data import digits_views
from keras_adadim.data import load_digits
from keras_adadim.data import two_view_dataset
from keras_adadim.evaluation import extract_features
from keras_adadim.evaluation import linear_probe
from keras_adadim.evaluation import per_class_subset
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--alpha-every", type=int, default=10, help="e_alpha")
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--method", default="adadim", choices=sorted(ka.METHODS))
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument(
        "--monitor-every", type=int, default=5,
        help="epochs between H(R) / I(R; Z) measurements on the test split",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output", default="runs/quickstart",
        help="where the encoder, results.json and the dynamics plot go",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    data = load_digits(seed=args.seed)
    train = two_view_dataset(
        data["train_images"],
        data["train_labels"],
        augment=digits_views(),
        batch_size=args.batch_size,
        seed=args.seed,
    )
    encoder = small_cnn_encoder((8, 8, 1), width=args.width)
    random_encoder = keras.models.clone_model(encoder)  # fresh random init
    model = ka.AdaDimModel(
        encoder,
        mlp_projector(hidden_dim=256, output_dim=128),
        method=args.method,
        num_classes=10,
    )
    model.compile(optimizer=keras.optimizers.AdamW(args.learning_rate, 1e-4))
    monitor = ka.RepresentationMonitor(
        data["test_images"], every=args.monitor_every
    )
    callbacks = [monitor]
    if model.alpha_mode == "adaptive":
        callbacks.append(ka.AlphaUpdater(every=args.alpha_every))
    print(
        f"AdaDim pre-training on digits ({len(data['train_images'])} train "
        f"images), backend {keras.backend.backend()}, {args.epochs} epochs, "
        f"batch {args.batch_size} per view"
    )
    start = time.time()
    history = model.fit(
        train, epochs=args.epochs, callbacks=callbacks, verbose=2
    )
    train_seconds = time.time() - start

    results = {}
    few = per_class_subset(data["train_labels"], 10, seed=args.seed)
    for name, feats in (
        ("AdaDim encoder", lambda x: extract_features(encoder, x)),
        ("random-init encoder", lambda x: extract_features(random_encoder, x)),
        ("raw pixels", lambda x: x.reshape(len(x), -1)),
    ):
        ftr, fte = feats(data["train_images"]), feats(data["test_images"])
        full = linear_probe(
            ftr, data["train_labels"], fte, data["test_labels"],
            epochs=args.probe_epochs, seed=args.seed,
        )
        ten = linear_probe(
            ftr[few], data["train_labels"][few], fte, data["test_labels"],
            epochs=args.probe_epochs, seed=args.seed,
        )
        results[name] = {"all_labels": full, "10_per_class": ten}

    print(f"\nPre-training took {train_seconds:.0f} s.")
    dynamics = {
        key: [r[key] for r in monitor.records]
        for key in ("epoch", "r_effective_rank", "r_entropy",
                    "mutual_information", "r_uniformity")
    }
    dynamics["alpha"] = [history.history["alpha"][e] for e in dynamics["epoch"]]
    print("\nTraining dynamics on the test split (R = encoder output)")
    print(f"{'epoch':>6}{'alpha':>8}{'ER(R)':>8}{'H2(R)':>8}{'I(R;Z)':>8}")
    for i, epoch in enumerate(dynamics["epoch"]):
        print(
            f"{epoch + 1:>6}{dynamics['alpha'][i]:>8.3f}"
            f"{dynamics['r_effective_rank'][i]:>8.2f}"
            f"{dynamics['r_entropy'][i]:>8.3f}"
            f"{dynamics['mutual_information'][i]:>8.3f}"
        )
    print("\nLinear-probe top-1 accuracy on the digits test split (360 images)")
    print(f"{'features':<22}{'all labels':>12}{'10 per class':>14}")
    for name, r in results.items():
        print(f"{name:<22}{r['all_labels']:>12.3f}{r['10_per_class']:>14.3f}")
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        encoder.save(os.path.join(args.output, "encoder.keras"))
        try:
            from keras_adadim.analysis.plots import training_dynamics

            plot = {**dynamics, "epoch": [e + 1 for e in dynamics["epoch"]]}
            _, paths = training_dynamics(
                plot, path=os.path.join(args.output, "training_dynamics")
            )
            print(f"plotted the dynamics to {paths[0]}")
        except ImportError:  # matplotlib is optional ([plot] extra)
            print("install matplotlib to plot the training dynamics")
        with open(os.path.join(args.output, "results.json"), "w") as f:
            json.dump(
                {"probe": results, "dynamics": dynamics, "history": {
                    k: [float(v) for v in vs]
                    for k, vs in history.history.items()
                }, "args": vars(args)},
                f,
                indent=2,
            )
    return results


if __name__ == "__main__":
    main()
