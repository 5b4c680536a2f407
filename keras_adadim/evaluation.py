"""Evaluation of frozen encoders: feature extraction and the linear probe."""

import keras
import numpy as np


def extract_features(encoder, images, batch_size=256):
    """Frozen (inference-mode) encoder outputs as a float32 NumPy array."""
    feats = encoder.predict(np.asarray(images), batch_size=batch_size, verbose=0)
    return np.asarray(feats, dtype="float32").reshape(len(images), -1)


def per_class_subset(labels, per_class, seed=0):
    """Indices of ``per_class`` randomly chosen samples of every class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError(
                f"Class {c} has {len(idx)} samples, fewer than "
                f"per_class={per_class}."
            )
        picks.append(rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    epochs=100,
    batch_size=256,
    learning_rate=1e-2,
    final_learning_rate=1e-6,
    weight_decay=5e-6,
    seed=0,
):
    """Top-1 accuracy of a linear softmax classifier on frozen features.

    The paper's offline probe: Adam, learning rate decayed exponentially from
    1e-2 to 1e-6 over training, weight decay 5e-6. Features are standardised
    with the training split's mean and standard deviation.
    """
    xtr = np.asarray(train_features, "float32")
    xte = np.asarray(test_features, "float32")
    ytr = np.asarray(train_labels).astype("int32").reshape(-1)
    yte = np.asarray(test_labels).astype("int32").reshape(-1)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError("Features and labels must have the same length.")
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    num_classes = int(max(ytr.max(), yte.max())) + 1
    keras.utils.set_random_seed(seed)
    # Few-label subsets would get one step per epoch at the paper's batch
    # size; keep at least 8 steps per epoch so the probe converges.
    batch_size = int(min(batch_size, max(1, np.ceil(len(xtr) / 8))))
    steps = epochs * int(np.ceil(len(xtr) / batch_size))
    schedule = keras.optimizers.schedules.ExponentialDecay(
        learning_rate, steps, final_learning_rate / learning_rate
    )
    probe = keras.Sequential(
        [keras.Input((xtr.shape[1],)), keras.layers.Dense(num_classes)]
    )
    probe.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    probe.fit(xtr, ytr, batch_size=batch_size, epochs=epochs, verbose=0)
    pred = np.argmax(probe.predict(xte, batch_size=1024, verbose=0), axis=-1)
    return float(np.mean(pred == yte))
