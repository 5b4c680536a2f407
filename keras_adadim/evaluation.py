"""Evaluation of frozen encoders: features, linear probe, weighted kNN.

* ``extract_features``: inference-mode encoder outputs as NumPy.
* ``linear_probe``: the paper's offline linear evaluation (Table 8).
* ``knn_classify``: weighted k-nearest-neighbour scores on cosine similarity
  (InstDisc, Wu et al. 2018; solo-learn's ``WeightedKNNClassifier``).
* ``top_k_accuracy``; ``evaluate_features`` runs both protocols, optionally
  with few labels (``per_class``).

Features are NumPy arrays here (``extract_features`` returns NumPy), so the
results are identical on every Keras backend; only the linear probe trains a
Keras model.
"""

import warnings

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


def _check_features(features, name):
    x = np.asarray(features, dtype="float32")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array (samples, features); got shape "
            f"{x.shape}. Flatten or pool the features first."
        )
    # A float64 sum propagates NaN/Inf and cannot overflow for float32
    # inputs, without a bank-sized boolean temporary.
    if not np.isfinite(np.sum(x, dtype="float64")):
        bad = int(np.sum(~np.isfinite(x).all(axis=1)))
        raise ValueError(
            f"`{name}` contains NaN or Inf values in {bad} of {len(x)} rows; "
            "check the encoder (a diverged model) or the input data."
        )
    return x


def _check_labels(labels, name, n, features_name):
    y = np.asarray(labels).reshape(-1)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"`{name}` must hold integer class ids.")
    y = y.astype("int64")
    if len(y) != n:
        raise ValueError(
            f"`{features_name}` has {n} rows but `{name}` has {len(y)} labels; "
            "they must have the same length."
        )
    if y.size and y.min() < 0:
        raise ValueError(f"`{name}` must be non-negative class ids; got {y.min()}.")
    return y


def _check_split(train_features, train_labels, test_features, test_labels=None):
    xtr = _check_features(train_features, "train_features")
    xte = _check_features(test_features, "test_features")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"Train features have {xtr.shape[1]} dimensions but test features "
            f"have {xte.shape[1]}."
        )
    if len(xtr) == 0:
        raise ValueError("`train_features` is empty.")
    ytr = _check_labels(train_labels, "train_labels", len(xtr), "train_features")
    yte = None
    if test_labels is not None:
        yte = _check_labels(test_labels, "test_labels", len(xte), "test_features")
    return xtr, ytr, xte, yte


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
    return_scores=False,
):
    """Top-1 accuracy of a linear softmax classifier on frozen features.

    The paper's offline probe: Adam, learning rate decayed exponentially from
    1e-2 to 1e-6 over training, weight decay 5e-6. Features are standardised
    with the training split's mean and standard deviation.

    With ``return_scores=True`` returns ``(accuracy, logits)`` where
    ``logits`` is the (n_test, num_classes) float32 output of the probe on
    the test features (for top-5 accuracy, see ``top_k_accuracy``).
    """
    xtr, ytr, xte, yte = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    ytr, yte = ytr.astype("int32"), yte.astype("int32")
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    num_classes = int(max(ytr.max(), yte.max(initial=0))) + 1
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
    logits = np.asarray(probe.predict(xte, batch_size=1024, verbose=0), "float32")
    pred = np.argmax(logits, axis=-1)
    accuracy = float(np.mean(pred == yte))
    if return_scores:
        return accuracy, logits
    return accuracy


def knn_classify(
    train_features,
    train_labels,
    test_features,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=1024,
):
    """Class scores of a weighted k-nearest-neighbour classifier.

    The protocol of InstDisc (Wu et al., 2018, "Unsupervised feature learning
    via non-parametric instance discrimination", Sec. 3.4) as implemented by
    solo-learn's ``WeightedKNNClassifier`` (cosine distance, defaults k = 20,
    T = 0.07): features are L2-normalised, each test sample takes its ``k``
    training samples of highest cosine similarity ``s_i`` and each class ``c``
    scores ``sum_{i in top-k, y_i = c} exp(s_i / T)``. The prediction is the
    arg-max class.

    Computed in NumPy (float32 similarities, float64 accumulation) over
    chunks of ``batch_size`` test rows, so memory is
    O(batch_size * n_train) and an ImageNet-size bank (1.28M x 2048) fits;
    NumPy rather than ``keras.ops`` because the features live on the host
    (``extract_features`` returns NumPy), the result is then identical on
    every backend, and a multi-GB bank never has to fit on an accelerator.

    Args:
        train_features: (n_train, d) feature bank.
        train_labels: (n_train,) integer labels.
        test_features: (n_test, d) queries.
        k: neighbours per query. A ``k`` larger than the bank is clamped to
            ``n_train`` with a warning (as solo-learn clamps; a hard error
            would break few-label runs with fewer than 20 labelled samples).
        temperature: T > 0 of the weights ``exp(s / T)``.
        num_classes: number of classes C; defaults to ``max(train_labels) + 1``.
        batch_size: test rows per chunk.

    Returns:
        (n_test, C) float32 array of class scores (0 for classes with no
        neighbour among the top ``k``).
    """
    xtr, ytr, xte, _ = _check_split(train_features, train_labels, test_features)
    k = int(k)
    if k < 1:
        raise ValueError(f"`k` must be >= 1; got {k}.")
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature}.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    if k > len(xtr):
        warnings.warn(
            f"k={k} is larger than the {len(xtr)} training samples; using "
            f"k={len(xtr)}.",
            stacklevel=2,
        )
        k = len(xtr)
    if num_classes is None:
        num_classes = int(ytr.max()) + 1
    num_classes = int(num_classes)
    if ytr.max() >= num_classes:
        raise ValueError(
            f"`train_labels` hold class {ytr.max()} but num_classes={num_classes}."
        )

    def normalise(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    xtr, xte = normalise(xtr), normalise(xte)
    scores = np.zeros((len(xte), num_classes), "float32")
    for start in range(0, len(xte), int(batch_size)):
        sim = xte[start : start + int(batch_size)] @ xtr.T  # (b, n_train)
        rows = len(sim)
        if k < sim.shape[1]:
            nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        else:
            nn = np.broadcast_to(np.arange(sim.shape[1]), (rows, k))
        nn_sim = np.take_along_axis(sim, nn, axis=1).astype("float64")
        weights = np.exp(nn_sim / temperature)
        cells = np.arange(rows)[:, None] * num_classes + ytr[nn]
        block = np.bincount(
            cells.ravel(), weights=weights.ravel(), minlength=rows * num_classes
        )
        scores[start : start + rows] = block.reshape(rows, num_classes)
    return scores


def top_k_accuracy(scores, labels, k=1):
    """Share of rows whose true label is among the ``k`` highest scores.

    Ties count against the prediction: a row is correct when fewer than ``k``
    *other* classes score at least as high as the true class. (With the
    arg-max/arg-sort convention a tie would be broken by class order; the
    conservative rule matters for kNN, where classes without neighbours all
    score 0.) ``k`` must be between 1 and the number of classes.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1).astype("int64")
    if scores.ndim != 2:
        raise ValueError(f"`scores` must be (n, num_classes); got {scores.shape}.")
    if len(scores) != len(labels):
        raise ValueError(
            f"`scores` has {len(scores)} rows but `labels` has {len(labels)}."
        )
    num_classes = scores.shape[1]
    k = int(k)
    if not 1 <= k <= num_classes:
        raise ValueError(f"`k` must be in [1, {num_classes}]; got {k}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"`labels` must be class ids in [0, {num_classes}).")
    if np.isnan(scores).any():
        raise ValueError("`scores` contains NaN values.")
    if len(labels) == 0:
        return float("nan")
    true = np.take_along_axis(scores, labels[:, None], axis=1)
    rivals = np.sum(scores >= true, axis=1) - 1
    return float(np.mean(rivals < k))


def evaluate_features(
    train_features,
    train_labels,
    test_features,
    test_labels,
    per_class=None,
    knn_k=20,
    probe_epochs=100,
    seed=0,
    knn_temperature=0.07,
):
    """Linear-probe and weighted-kNN top-1/top-5 accuracy of frozen features.

    Args:
        train_features, train_labels, test_features, test_labels: arrays.
        per_class: ``None`` (all training labels) or ``n``: both the probe
            and the kNN bank use only ``n`` randomly chosen (``seed``)
            labelled samples per class (``per_class_subset``), the
            few-label protocol. ``n`` larger than the smallest class raises.
        knn_k, knn_temperature: ``knn_classify`` settings (clamped to the
            number of training samples with a warning).
        probe_epochs: epochs of ``linear_probe``.
        seed: subset and probe seed.

    Returns:
        dict with ``linear_top1``, ``linear_top5``, ``knn_top1``,
        ``knn_top5`` (floats; the top-5 entries are ``None`` when there are
        5 classes or fewer), ``num_train`` (training samples used),
        ``num_classes`` and ``knn_k`` (the ``k`` actually used).
    """
    xtr, ytr, xte, yte = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    if per_class is not None:
        per_class = int(per_class)
        if per_class < 1:
            raise ValueError(f"`per_class` must be >= 1 or None; got {per_class}.")
        idx = per_class_subset(ytr, per_class, seed=seed)
        xtr, ytr = xtr[idx], ytr[idx]
    num_classes = int(max(ytr.max(), yte.max(initial=0))) + 1
    _, logits = linear_probe(
        xtr, ytr, xte, yte, epochs=probe_epochs, seed=seed, return_scores=True
    )
    k = int(knn_k)
    if k > len(xtr):
        warnings.warn(
            f"knn_k={k} is larger than the {len(xtr)} training samples; using "
            f"k={len(xtr)}.",
            stacklevel=2,
        )
        k = len(xtr)
    knn_scores = knn_classify(
        xtr, ytr, xte, k=k, temperature=knn_temperature, num_classes=num_classes
    )
    top5 = num_classes > 5
    return {
        "linear_top1": top_k_accuracy(logits, yte, 1),
        "linear_top5": top_k_accuracy(logits, yte, 5) if top5 else None,
        "knn_top1": top_k_accuracy(knn_scores, yte, 1),
        "knn_top5": top_k_accuracy(knn_scores, yte, 5) if top5 else None,
        "num_train": int(len(xtr)),
        "num_classes": num_classes,
        "knn_k": k,
    }
