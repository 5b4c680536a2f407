"""Weighted kNN, top-k accuracy and evaluate_features."""

import numpy as np
import pytest

from keras_adadim.data import load_digits
from keras_adadim.evaluation import evaluate_features
from keras_adadim.evaluation import knn_classify
from keras_adadim.evaluation import linear_probe
from keras_adadim.evaluation import top_k_accuracy


def _brute_force_knn(xtr, ytr, xte, k, temperature, num_classes):
    """One query at a time, float64, full sort."""
    out = np.zeros((len(xte), num_classes))
    for i, q in enumerate(xte):
        sims = []
        for j, t in enumerate(xtr):
            sims.append(float(np.dot(q, t) / (np.linalg.norm(q) * np.linalg.norm(t))))
        order = sorted(range(len(xtr)), key=lambda j: -sims[j])[:k]
        for j in order:
            out[i, ytr[j]] += np.exp(sims[j] / temperature)
    return out


@pytest.fixture(scope="module")
def digits_pixels():
    d = load_digits(seed=0)
    return (
        d["train_images"].reshape(len(d["train_images"]), -1),
        d["train_labels"],
        d["test_images"].reshape(len(d["test_images"]), -1),
        d["test_labels"],
    )


@pytest.mark.parametrize("k,temperature,batch_size", [(7, 0.07, 5), (1, 0.5, 1024), (60, 0.2, 16)])
def test_knn_matches_brute_force(rng, k, temperature, batch_size):
    xtr = rng.normal(size=(60, 6)).astype("float32")
    ytr = rng.integers(0, 4, size=60)
    xte = rng.normal(size=(13, 6)).astype("float32")
    got = knn_classify(xtr, ytr, xte, k=k, temperature=temperature, num_classes=5,
                       batch_size=batch_size)
    want = _brute_force_knn(xtr, ytr, xte, k, temperature, 5)
    assert got.shape == (13, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.all(got[:, 4] == 0)  # class 4 has no training sample


def test_knn_hand_made_case():
    xtr = np.array([[1, 0], [0, 1], [-1, 0], [0.8, 0.6]], "float32")
    ytr = np.array([0, 1, 1, 2])
    xte = np.array([[2, 0], [0, -3]], "float32")  # norms do not matter
    got = knn_classify(xtr, ytr, xte, k=2, temperature=0.5)
    # query 1: neighbours [1, 0] (s = 1, class 0) and [0.8, 0.6] (s = 0.8, class 2)
    # query 2: neighbours [1, 0] and [-1, 0] (s = 0), ties broken either way -> the
    # two best of s in {0, -1, 0, -0.6} are 0 and 0: classes 0 and 1
    np.testing.assert_allclose(got[0], [np.exp(2.0), 0.0, np.exp(1.6)], rtol=1e-6)
    np.testing.assert_allclose(got[1], [1.0, 1.0, 0.0], rtol=1e-6)
    assert top_k_accuracy(got[:1], [0], 1) == 1.0


def test_knn_clamps_k_and_checks_inputs(rng):
    xtr, ytr = rng.normal(size=(5, 3)), np.array([0, 1, 0, 1, 2])
    xte = rng.normal(size=(4, 3))
    with pytest.warns(UserWarning, match="k=20"):
        clamped = knn_classify(xtr, ytr, xte, k=20)
    np.testing.assert_allclose(clamped, knn_classify(xtr, ytr, xte, k=5), rtol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        knn_classify(xtr, ytr[:4], xte, k=3)
    bad = xte.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_classify(xtr, ytr, bad, k=3)
    with pytest.raises(ValueError, match="dimensions"):
        knn_classify(xtr, ytr, xte[:, :2], k=3)
    with pytest.raises(ValueError, match="num_classes"):
        knn_classify(xtr, ytr, xte, num_classes=2, k=3)
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(xtr, ytr, xte, temperature=0, k=3)


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.2, 0.5], [0.2, 0.2, 0.6], [0.0, 0.0, 1.0]])
    labels = np.array([1, 0, 0, 0])
    assert top_k_accuracy(scores, labels, 1) == 0.25
    # row 3: class 0 ties with class 1 behind class 2 -> 2 rivals: not top-2
    # row 4: same; ties count against the prediction
    assert top_k_accuracy(scores, labels, 2) == 0.5
    assert top_k_accuracy(scores, labels, 3) == 1.0
    with pytest.raises(ValueError):
        top_k_accuracy(scores, labels, 4)
    with pytest.raises(ValueError):
        top_k_accuracy(scores, labels[:3], 1)
    with pytest.raises(ValueError):
        top_k_accuracy(scores, [0, 1, 2, 3], 1)


def test_linear_probe_return_scores(rng):
    x = rng.normal(size=(80, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0)
    acc, logits = linear_probe(x[:60], y[:60], x[60:], y[60:], epochs=3, return_scores=True)
    assert logits.shape == (20, 4)
    assert acc == pytest.approx(np.mean(logits.argmax(1) == y[60:]))
    assert acc == linear_probe(x[:60], y[:60], x[60:], y[60:], epochs=3)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        linear_probe(bad[:60], y[:60], x[60:], y[60:], epochs=1)


def test_evaluate_features_on_digits_pixels(digits_pixels):
    xtr, ytr, xte, yte = digits_pixels
    res = evaluate_features(xtr, ytr, xte, yte, probe_epochs=20)
    assert set(res) >= {"linear_top1", "linear_top5", "knn_top1", "knn_top5", "num_train"}
    assert res["num_train"] == len(xtr) and res["num_classes"] == 10 and res["knn_k"] == 20
    assert res["knn_top1"] > 0.9
    assert res["linear_top1"] > 0.8  # 20 probe epochs; ~0.95 with the default 100
    assert res["knn_top1"] <= res["knn_top5"] <= 1.0
    assert res["linear_top1"] <= res["linear_top5"] <= 1.0

    few = evaluate_features(xtr, ytr, xte, yte, per_class=3, probe_epochs=5, seed=1)
    assert few["num_train"] == 30 and few["knn_k"] == 20
    assert 0.5 < few["knn_top1"] <= res["knn_top1"] + 0.05
    assert 0.1 < few["linear_top1"] <= few["linear_top5"]  # above chance (5 epochs)

    keep_tr, keep_te = ytr < 4, yte < 4  # 4 classes: no top-5
    with pytest.warns(UserWarning, match="knn_k"):
        small = evaluate_features(xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te],
                                  per_class=2, probe_epochs=2)
    assert small["linear_top5"] is None and small["knn_top5"] is None
    assert small["knn_k"] == small["num_train"] == 8

    with pytest.raises(ValueError, match="fewer than"):
        evaluate_features(xtr, ytr, xte, yte, per_class=10_000)
    with pytest.raises(ValueError, match="same length"):
        evaluate_features(xtr, ytr[:-1], xte, yte)
    nan = xte.copy()
    nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_features(xtr, ytr, nan, yte)
