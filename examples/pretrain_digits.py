"""Pre-train an encoder with AdaDim on scikit-learn's digits and save it.

    python examples/pretrain_digits.py --epochs 60 --output runs/digits

The same as the README snippet, spelled out: a two-view tf.data pipeline, an
AdaDimModel with the online probe, AlphaUpdater, and a linear probe at the end.
Works on any backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import argparse
import os

import keras

import keras_adadim as ka
from keras_adadim.data import digits_views, load_digits, two_view_dataset
from keras_adadim.evaluation import extract_features, linear_probe
from keras_adadim.models.small_cnn import mlp_projector, small_cnn_encoder


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--alpha-every", type=int, default=10)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--output", default="runs/digits")
    args = p.parse_args(argv)

    keras.utils.set_random_seed(0)
    data = load_digits()
    train = two_view_dataset(
        data["train_images"], data["train_labels"], augment=digits_views(),
        batch_size=args.batch_size,
    )
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=args.width),
        mlp_projector(hidden_dim=256, output_dim=128),
        num_classes=10,
    )
    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-4))
    model.fit(
        train, epochs=args.epochs, verbose=2,
        callbacks=[ka.AlphaUpdater(every=args.alpha_every)],
    )
    os.makedirs(args.output, exist_ok=True)
    model.save(os.path.join(args.output, "adadim.keras"))  # resumable
    model.encoder.save(os.path.join(args.output, "encoder.keras"))
    acc = linear_probe(
        extract_features(model.encoder, data["train_images"]),
        data["train_labels"],
        extract_features(model.encoder, data["test_images"]),
        data["test_labels"],
    )
    print(f"linear-probe accuracy on the test split: {acc:.3f}")
    return acc


if __name__ == "__main__":
    main()
