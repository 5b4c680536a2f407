"""The neural-network simulation of Appendix B.4 (Figure 11).

25-feature Gaussian blobs (1,000 samples, 5 centres, cluster std 0.01) are
the representation R. An MLP (5 layers of 20 units) followed by a projector
(2 layers of 5 units) maps them to Z (5-d) and is trained with NT-Xent
(SimCLR) or VICReg on two views made by adding Gaussian noise (std 0.5),
with Adam (learning rate 1e-4). After every epoch the closed-form Gaussian
I(R; Z) between the data and the network's output is measured.

The paper does not give the batch size; 250 (4 steps per epoch) is used.
Z is a deterministic function of R, so the joint covariance is regularised
as in the Gaussian simulation (``projection_mutual_information``).
"""

import keras


from keras_adadim.analysis.gaussian_simulation import (
    projection_mutual_information,
)
from keras_adadim.models.adadim_model import AdaDimModel

METHODS = ("simclr", "vicreg")


def _networks(n_features):
    encoder = keras.Sequential(
        [keras.Input((n_features,))]
        + [keras.layers.Dense(20, activation="relu") for _ in range(5)],
        name="mlp_encoder",
    )
    projector = keras.Sequential(
        [keras.layers.Dense(5, activation="relu"), keras.layers.Dense(5)],
        name="mlp_projector",
    )
    return encoder, projector


class _MutualInformationTracker(keras.callbacks.Callback):
    def __init__(self, data, ridge):
        super().__init__()
        self.data = data
        self.ridge = ridge
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        # A direct call: cheaper than `predict` for 1,000 small vectors.
        r = self.model.encoder(self.data, training=False)
        z = keras.ops.convert_to_numpy(self.model.projector(r, training=False))
        mi = projection_mutual_information(self.data, z, ridge=self.ridge)
        self.values.append(mi)
        if logs is not None:
            logs["mutual_information"] = mi


def nn_simulation(
    methods=METHODS,
    epochs=1000,
    n_samples=1000,
    n_features=25,
    centers=5,
    cluster_std=0.01,
    noise_std=0.5,
    learning_rate=1e-4,
    batch_size=250,
    ridge=1e-2,
    seed=0,
    verbose=1,
):
    """Train the B.4 networks with each method and track I(R; Z) per epoch.

    Returns:
        dict ``{"epoch": [1..epochs], method: [I(R; Z) per epoch], ...}``.
    """
    from sklearn.datasets import make_blobs

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(
            f"Unknown methods {sorted(unknown)}; choose from {METHODS}."
        )
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1; got {epochs}.")
    if n_samples % batch_size == 1 or batch_size < 2:
        raise ValueError(
            f"batch_size={batch_size} leaves a batch of one sample out of "
            f"{n_samples}; choose another batch size."
        )
    data, _ = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        random_state=seed,
    )
    data = data.astype("float32")
    result = {"epoch": list(range(1, epochs + 1))}
    for method in methods:
        keras.utils.set_random_seed(seed)
        encoder, projector = _networks(n_features)
        model = AdaDimModel(
            encoder,
            projector,
            method=method,
            augmentation=keras.layers.GaussianNoise(noise_std),
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        tracker = _MutualInformationTracker(data, ridge)
        progress = keras.utils.Progbar(epochs, unit_name="epoch")
        log_progress = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: progress.update(
                e + 1, [("I(R;Z)", logs["mutual_information"])]
            )
            if verbose
            else None
        )
        if verbose:
            print(f"B.4 simulation, {method}:")
        model.fit(
            data,
            batch_size=batch_size,
            epochs=epochs,
            callbacks=[tracker, log_progress],
            verbose=0,
        )
        result[method] = tracker.values
    return result


__all__ = ["nn_simulation", "METHODS"]
