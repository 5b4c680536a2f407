"""Write your own self-supervised method in a few dozen lines, and train it
with the same model, callbacks and runner machinery as the built-in ones.

The method here is Wang & Isola's (2020) alignment + uniformity objective::

    L = A(z1, z2) + lambda * [U(z1) + U(z2)] / 2

with A the mean squared distance of positive pairs on the hypersphere and U
the log mean Gaussian potential (``keras_adadim.metrics``).

    python examples/custom_method.py --epochs 20
"""

import argparse

import keras

import keras_adadim as ka
from keras_adadim import metrics
from keras_adadim.methods import Method
from keras_adadim.methods.base import two_views_online


@keras.saving.register_keras_serializable(package="my_methods")
class AlignUniform(Method):
    """Alignment + uniformity (Wang & Isola, 2020, Eq. 4 with alpha = 2,
    t = 2)."""

    term_names = ("alignment", "uniformity")  # logged, and summed by default

    def __init__(self, lambda_=1.0, **kwargs):
        super().__init__(**kwargs)
        self.lambda_ = float(lambda_)

    def forward(self, views, encoder, projector, training):
        # r1, r2, z1, z2: one row per image (the model gathers them over
        # replicas and the online probe reads r1, r2).
        return two_views_online(views, encoder, projector, None, training)

    def loss_terms(self, rows, step):
        z1, z2 = rows["z1"], rows["z2"]
        return {
            "alignment": metrics.alignment(z1, z2),
            "uniformity": self.lambda_ * 0.5 * (
                metrics.uniformity(z1) + metrics.uniformity(z2)),
        }

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--output", default=None,
                        help="save the trained model here (.keras)")
    args = parser.parse_args(argv)

    from keras_adadim.data import digits_views, load_digits, two_view_dataset
    from keras_adadim.evaluation import extract_features, linear_probe
    from keras_adadim.models.small_cnn import mlp_projector, small_cnn_encoder

    data = load_digits(seed=0)
    ds = two_view_dataset(data["train_images"], data["train_labels"],
                          augment=digits_views(), batch_size=128, seed=0)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=args.width),
        mlp_projector(hidden_dim=256, output_dim=128),
        method=AlignUniform(lambda_=1.0),
        num_classes=10,
    )
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    history = model.fit(ds, epochs=args.epochs, verbose=2).history
    print(f"alignment {history['alignment'][0]:.3f} -> "
          f"{history['alignment'][-1]:.3f}, uniformity "
          f"{history['uniformity'][0]:.3f} -> {history['uniformity'][-1]:.3f}")
    acc = linear_probe(
        extract_features(model.encoder, data["train_images"]),
        data["train_labels"],
        extract_features(model.encoder, data["test_images"]),
        data["test_labels"],
    )
    print(f"linear-probe accuracy of the encoder: {acc:.3f}")
    if args.output:
        model.save(args.output)
    return model, history


if __name__ == "__main__":
    main()
