"""SwAV, DINO, ReSSL and DeepCluster v2 as methods, on the current backend:
each method's loss is its loss function of the model's own outputs and
state (recomputed in float64 NumPy), and the state behaves as the papers
say (frozen prototypes, queues, the centre, k-means). Training through
``fit``, the complete history and save -> load -> next step are in
test_methods.py (every registered method); the 4-device equality in
test_distributed.py."""

import keras
import numpy as np
import pytest

import reference_numpy as ref
from keras_adadim.methods import get_method
from method_outputs import make_model  # tests/method_outputs.py
from method_outputs import np_
from method_outputs import outputs
from simulated_kill import KillAfter  # tests/simulated_kill.py

B = 16


@pytest.fixture(scope="module")
def views():
    x1 = np.random.default_rng(0).random((2 * B, 8, 8, 1)).astype("float32")
    x2 = (np.roll(x1, 1, 2) + 0.05).astype("float32")
    return x1, x2


# ------------------------------------------------------------------ SwAV
def test_swav_loss_is_swapped_prediction_of_sinkhorn_codes(views):
    model = make_model("swav", num_prototypes=6, queue_size=0)
    v = (views[0][:B], views[1][:B])
    r, loss = outputs(model, v)
    # The scores are cosines of the embedding to the unit prototypes.
    c = ref.l2_normalize_rows(np_(model.method.prototypes.kernel))
    np.testing.assert_allclose(r["s1"], ref.l2_normalize_rows(r["z1"]) @ c.T,
                               rtol=1e-4, atol=1e-5)
    codes = [ref.sinkhorn_knopp(r[k], 0.05, 3) for k in ("s1", "s2")]
    assert loss == pytest.approx(ref.swav([r["s1"], r["s2"]], codes, 0.1), rel=1e-4)


def test_swav_codes_use_the_queue_from_its_start_epoch(views):
    """Before ``queue_start_epoch`` the codes are Sinkhorn of the batch;
    from it on, the batch's rows of Sinkhorn over [batch; queue scores].
    The queue takes each view's normalised embeddings of the step."""
    model = make_model("swav", num_prototypes=6, queue_size=2 * B,
                       queue_start_epoch=1)
    method = model.method
    v = (views[0][:B], views[1][:B])
    model.fit(v, batch_size=B, epochs=1, verbose=0)  # epoch 0: fills B rows
    r, loss = outputs(model, (views[0][B:], views[1][B:]))
    codes = [ref.sinkhorn_knopp(r[k]) for k in ("s1", "s2")]
    assert loss == pytest.approx(ref.swav([r["s1"], r["s2"]], codes, 0.1), rel=1e-4)
    method.on_epoch_begin(1)
    r, loss = outputs(model, (views[0][B:], views[1][B:]))
    c = ref.l2_normalize_rows(np_(method.prototypes.kernel))
    queues = [np_(q.queue).astype("float64") for q in method.queues]
    codes = [ref.sinkhorn_knopp(np.concatenate([r[k], q @ c.T]))[:B]
             for k, q in (("s1", queues[0]), ("s2", queues[1]))]
    assert loss == pytest.approx(ref.swav([r["s1"], r["s2"]], codes, 0.1), rel=1e-4)
    # The first fit pushed the normalised z of each view in front.
    for q in queues:
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(queues[0][:B], queues[1][:B])


def test_swav_prototypes_are_frozen_in_the_first_epoch(views):
    model = make_model("swav", num_prototypes=6, queue_size=0,
                       freeze_prototypes_epochs=1)  # default 2 (solo-learn)
    v = (views[0], views[1])
    model.fit(v, batch_size=B, epochs=1, verbose=0)
    kernel = model.method.prototypes.kernel
    before = np_(kernel).copy()
    encoder_before = np_(model.encoder.weights[0]).copy()
    model.fit(v, batch_size=B, epochs=1, verbose=0)  # epoch 0 again: frozen
    np.testing.assert_array_equal(np_(kernel), before)
    assert not np.allclose(np_(model.encoder.weights[0]), encoder_before)
    model.fit(v, batch_size=B, initial_epoch=1, epochs=2, verbose=0)
    assert not np.allclose(np_(kernel), before)
    assert int(np_(model.method.epoch)) == 1


def test_swav_rejects_bad_settings():
    for kwargs, match in (({"num_prototypes": 0}, "num_prototypes"),
                          ({"sinkhorn_epsilon": 0.0}, "sinkhorn_epsilon"),
                          ({"queue_size": -1}, "queue_size"),
                          ({"temperature": 0.0}, "temperature")):
        with pytest.raises(ValueError, match=match):
            get_method("swav", **kwargs)


# ------------------------------------------------------------------ DINO
def test_dino_loss_is_centred_sharpened_cross_entropy(views):
    model = make_model("dino", num_prototypes=6)
    method = model.method
    v = (views[0][:B], views[1][:B])
    model((v[0][:2], v[1][:2]))  # build
    method.center.assign(np.linspace(-0.2, 0.2, 6).astype("float32"))
    r, loss = outputs(model, v)
    # Student and teacher heads: cosines to their unit prototypes; the
    # teacher's head starts equal to the student's.
    np.testing.assert_array_equal(np_(method.teacher_head.kernel), np_(method.head.kernel))
    c = ref.l2_normalize_rows(np_(method.head.kernel))
    np.testing.assert_allclose(r["s2"], ref.l2_normalize_rows(r["z2"]) @ c.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["t1"], ref.l2_normalize_rows(r["z1t"]) @ c.T, rtol=1e-4, atol=1e-5)
    want = ref.dino([r["s1"], r["s2"]], [r["t1"], r["t2"]], np_(method.center), 0.1, 0.04)
    assert loss == pytest.approx(want, rel=1e-4)


def test_dino_centre_teacher_temperature_and_frozen_head(views):
    """One step: the centre becomes m c + (1 - m) mean of the step's teacher
    logits of both views, and the teacher head moves by the EMA. The
    teacher temperature warms up linearly by epoch; the head gets no
    gradient in the first epoch, then does."""
    model = make_model("dino", num_prototypes=6, warmup_teacher_temperature_epochs=3,
                       base_momentum=0.9)
    method = model.method
    v = (views[0][:B], views[1][:B])
    model(v)  # build
    head0 = np_(method.head.kernel).copy()
    model.fit(v, batch_size=B, epochs=1, verbose=0)
    np.testing.assert_array_equal(np_(method.head.kernel), head0)  # frozen
    # The step's teacher (moved before use), batch statistics.
    with keras.StatelessScope():
        t = [np_(method.teacher_head(method.teacher(x, training=True)[1])) for x in v]
    mean = np.concatenate(t).mean(0)
    np.testing.assert_allclose(np_(method.center), 0.1 * mean, rtol=1e-4, atol=1e-6)
    tt = [float(np_(method.teacher_temperature_now()))]
    for epoch in (1, 2, 5):
        method.on_epoch_begin(epoch)
        tt.append(float(np_(method.teacher_temperature_now())))
    np.testing.assert_allclose(tt, [0.04, 0.055, 0.07, 0.07], rtol=1e-5)
    model.fit(v, batch_size=B, initial_epoch=1, epochs=2, verbose=0)
    assert not np.allclose(np_(method.head.kernel), head0)
    # The teacher head followed by EMA (not equal to the student head).
    assert not np.allclose(np_(method.teacher_head.kernel), np_(method.head.kernel))
    assert not any(id(w) in {id(u) for u in model.trainable_weights}
                   for w in method.teacher_head.weights + [method.center])


# ------------------------------------------------------------------ ReSSL
def test_ressl_teacher_sees_the_weak_view_and_fills_the_queue(views):
    """The loss is ReSSL's relational loss of the student's z2 (strong
    view) and the teacher's z1t (weak view) against the queue; one step
    pushes the normalised teacher embeddings of view 1 in front."""
    model = make_model("ressl", queue_size=2 * B)
    method = model.method
    v = (views[0][:B], views[1][:B])
    r, loss = outputs(model, v)
    assert set(r) >= {"z1t", "r1t"} and "z2t" not in r
    queue = np_(method.queue.queue).astype("float64")
    assert loss == pytest.approx(ref.ressl([r["z2"]], r["z1t"], queue, 0.1, 0.04), rel=1e-4)
    model.fit(v, batch_size=B, epochs=1, shuffle=False, verbose=0)
    with keras.StatelessScope():  # the step's (moved) teacher on view 1
        _, z = method.teacher(v[0], training=True)
    now = np_(method.queue.queue)
    np.testing.assert_allclose(now[:B], ref.l2_normalize_rows(np_(z)), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(now[B:], queue[:B].astype("float32"))


# -------------------------------------------------------- DeepCluster v2
def numpy_kmeans(x, k, iterations, seed):
    """Spherical k-means in float64 (loops over clusters)."""
    x = ref.l2_normalize_rows(x)
    start = np.sort(np.random.default_rng(seed).choice(len(x), size=k, replace=False))
    c = x[start]
    for i in range(iterations + 1):
        a = np.argmax(x @ c.T, axis=1)
        if i == iterations:
            return c, a
        for j in range(k):
            if np.any(a == j):
                m = x[a == j].sum(0)
                c[j] = m / np.linalg.norm(m)


def test_spherical_kmeans_matches_numpy(rng):
    from keras_adadim.methods.clustering import spherical_kmeans

    centres = rng.normal(size=(4, 5))
    x = np.concatenate([c + 0.3 * rng.normal(size=(20, 5)) for c in centres])
    got_c, got_a = spherical_kmeans(x.astype("float32"), 4, 10, seed=[1, 2])
    want_c, want_a = numpy_kmeans(x, 4, 10, [1, 2])
    np.testing.assert_allclose(np_(got_c), want_c, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np_(got_a), want_a)
    # k-means never lowers its objective (mean cosine to the assigned
    # centroid) from one iteration count to a larger one.
    xn = ref.l2_normalize_rows(x)
    objective = []
    for iterations in (0, 1, 3, 10):
        c, a = spherical_kmeans(x.astype("float32"), 4, iterations, seed=[1, 2])
        objective.append(np.mean(np.sum(xn * np_(c)[np_(a)], axis=1)))
    assert np.all(np.diff(objective) >= -1e-6) and objective[-1] > objective[0], objective
    with pytest.raises(ValueError, match="at most as many clusters as rows"):
        spherical_kmeans(x[:3].astype("float32"), 4)


def indexed(x1, x2, index):
    return {"views": (x1, x2), "index": np.asarray(index, "int64")}


def test_deepclusterv2_clusters_its_bank_each_epoch_and_classifies(views):
    """Each image's normalised embeddings go into the memory banks under
    its index; the first epoch has no clusters (loss exactly 0). Before
    the next epoch each head's prototypes become the k-means centroids of
    the embedded images of its view's bank, and every embedded image gets
    its cluster (the others -1), fixed for the epoch (a repeated epoch
    index, as in a resumed run, keeps them); the loss is the cross-entropy
    of both views' scores with the image's cluster, looked up by index."""
    n = 3 * B
    model = make_model("deepclusterv2", num_prototypes=(5, 4), num_images=n,
                       kmeans_iterations=3)
    method = model.method
    first = np.arange(2 * B, B, -1) - 1  # images 2B-1 .. B, out of order
    v = indexed(views[0][:B], views[1][:B], first)
    model(v)  # build
    with keras.StatelessScope():  # the step's embeddings (before it trains)
        z = [np_(model.projector(model.encoder(x, training=True), training=True))
             for x in v["views"]]
    history = model.fit(v, batch_size=B, epochs=1, shuffle=False, verbose=0)
    assert history.history["deepclusterv2"] == [0.0]  # epoch 0: no clusters
    banks = [np_(b.rows).astype("float64") for b in method.banks]
    for bank, zv in zip(banks, z):
        np.testing.assert_allclose(bank[first], ref.l2_normalize_rows(zv), rtol=1e-4, atol=1e-5)
    filled = np.zeros(n)
    filled[first] = 1
    for bank in method.banks:
        np.testing.assert_array_equal(np_(bank.filled), filled)
    method.on_epoch_begin(1)
    rows = np.sort(first)  # k-means over the embedded images, in index order
    assigned = np_(method.assigned)
    for h, k in enumerate((5, 4)):
        want_c, want_a = numpy_kmeans(banks[h % 2][rows], k, 3, [0, 1, h])
        np.testing.assert_allclose(np_(method.heads[h].kernel), want_c, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(assigned[h, rows], want_a)
        assert np.all(assigned[h, filled == 0] == -1)
    kept = [np_(head.kernel).copy() for head in method.heads]
    method.on_epoch_begin(1)  # the same epoch again: no new clustering
    for head, k in zip(method.heads, kept):
        np.testing.assert_array_equal(np_(head.kernel), k)
    np.testing.assert_array_equal(np_(method.assigned), assigned)
    # Half the batch clustered, half never embedded (-1: left out).
    index = np.concatenate([first[: B // 2], np.arange(B // 2)])
    r, loss = outputs(model, indexed(views[0][B:], views[1][B:], index))
    scores = [[r[f"s1_{h}"], r[f"s2_{h}"]] for h in range(2)]
    labels = [assigned[h, index] for h in range(2)]
    c0 = ref.l2_normalize_rows(kept[0])
    np.testing.assert_allclose(r["s2_0"], ref.l2_normalize_rows(r["z2"]) @ c0.T, rtol=1e-4, atol=1e-5)
    assert loss > 0
    assert loss == pytest.approx(ref.deepclusterv2(scores, labels, 0.1), rel=1e-4)
    # The prototypes are never trained.
    trained = {id(w) for w in model.trainable_weights}
    assert not any(id(head.kernel) in trained for head in method.heads)


def test_deepclusterv2_needs_image_indices_in_range(views):
    """Without indices the model says how to feed them; an index outside
    the bank stops training with the guard's error and writes nothing."""
    model = make_model("deepclusterv2", num_prototypes=(4,), num_images=B)
    x1, x2 = views[0][:B], views[1][:B]
    with pytest.raises(ValueError, match="needs each image's index.*with_index=True"):
        model((x1, x2))
    with pytest.raises(ValueError, match="vector of integer image indices"):
        model({"views": (x1, x2), "index": np.zeros((B, 1), "int64")})
    with pytest.raises(ValueError, match="`index` has 3 entries for a batch of 16"):
        model(indexed(x1, x2, np.arange(3)))
    model(indexed(x1, x2, np.arange(B)))  # build
    with pytest.raises(ValueError, match="non-finite loss"):
        model.fit(indexed(x1, x2, np.arange(B) + 1), batch_size=B, epochs=1,
                  shuffle=False, verbose=0)
    for bank in model.method.banks:
        assert not np.any(np_(bank.filled)) and not np.any(np_(bank.rows))
    with pytest.raises(ValueError, match="needs the training set's size.*num_images"):
        make_model("deepclusterv2", num_prototypes=(4,))(indexed(x1, x2, np.arange(B)))


def test_deepclusterv2_refuses_fewer_images_than_prototypes():
    with pytest.raises(ValueError, match="50 training images into 100 clusters.*--num-prototypes"):
        get_method("deepclusterv2", num_prototypes=(100,), num_images=50)


def test_deepclusterv2_one_prototype_count_is_per_head():
    """An int K (what --num-prototypes gives) keeps the method's heads:
    ``num_heads`` (3) heads of K prototypes; a sequence sets each head."""
    method = get_method("deepclusterv2", num_prototypes=5, num_images=20)
    assert method.get_config()["num_prototypes"] == [5, 5, 5]
    method = get_method("deepclusterv2", num_prototypes=5, num_heads=2,
                        num_images=20)
    assert method.get_config()["num_prototypes"] == [5, 5]
    method = get_method("deepclusterv2", num_prototypes=(7, 4), num_images=20)
    assert method.get_config()["num_prototypes"] == [7, 4]


# ------------------------------------------------------- the command line
@pytest.mark.parametrize("method,attribute", [
    ("swav", "num_prototypes"), ("dino", "num_prototypes"),
    ("deepclusterv2", "num_prototypes")])
def test_cli_num_prototypes_reaches_the_method(method, attribute):
    """`--num-prototypes K` sets SwAV's and DINO's prototypes and each
    DeepCluster v2 head's (for datasets smaller than the defaults' 3000 /
    4096), and a method without prototypes refuses the flag."""
    from keras_adadim import cli
    from keras_adadim import presets

    config = cli.pretrain_config(cli.build_parser().parse_args(
        ["pretrain", "--method", method, "--num-prototypes", "40"]))
    config_out = get_method(method, **presets.method_arguments(config)).get_config()
    expected = [40, 40, 40] if method == "deepclusterv2" else 40
    assert config_out[attribute] == expected
    assert cli.main(["pretrain", "--method", "byol", "--num-prototypes", "40",
                     "--print-config"]) == 2
@pytest.mark.parametrize("method", ["swav", "dino", "ressl", "deepclusterv2"])
def test_cli_accepts_the_method(method):
    """`adadim pretrain --method M` resolves to M with its registry
    settings, and the method builds from the run's arguments."""
    from keras_adadim import cli
    from keras_adadim import presets

    config = cli.pretrain_config(cli.build_parser().parse_args(
        ["pretrain", "--method", method]))
    assert config["method"] == method
    if method == "swav":  # its own queue over the digits preset's
        assert config["queue_size"] == 3840
    built = get_method(method, **presets.method_arguments(config))
    assert type(built).__name__ == presets.METHODS[method]["class"].rpartition(".")[2]
    # A flag it does not use is refused (exit status 2, the error named).
    assert cli.main(["pretrain", "--method", method, "--alpha", "0.5",
                     "--print-config"]) == 2


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the runner's code path is the same on every backend; "
                    "one end-to-end run, in the TF pass")
def test_deepclusterv2_cli_run_resumes_with_its_prototypes(tmp_path):
    """`adadim pretrain --method deepclusterv2` on digits (k-means before
    each epoch through the runner); killed in its second epoch and resumed,
    it ends with the uninterrupted run's prototypes, banks and weights: the
    resumed epoch is not clustered again."""
    import json
    import os

    from keras_adadim import cli
    from keras_adadim import training

    flags = ["pretrain", "--method", "deepclusterv2", "--epochs", "2",
             "--batch-size", "256", "--width", "8", "--projector-hidden-dim", "32",
             "--projector-dim", "16", "--eval", "none", "--monitor-every", "2",
             "--monitor-samples", "128", "--checkpoint-every", "2", "--seed", "0"]
    # The default 3 x 3000 prototypes exceed digits' 1,437 images: refused
    # before training, naming the flag.
    assert cli.main([*flags, "--output", str(tmp_path / "refused"), "--verbose", "0"]) == 2
    assert not os.path.exists(tmp_path / "refused" / "checkpoints")
    flags += ["--num-prototypes", "40"]
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    assert cli.main([*flags, "--output", full, "--verbose", "0"]) == 0
    history = json.load(open(os.path.join(full, "history.json")))
    # Epoch 0 fills the bank (no clusters yet); epoch 1 classifies.
    assert [r["deepclusterv2"] == 0 for r in history] == [True, False]
    assert np.isfinite(history[1]["deepclusterv2"])
    with pytest.raises(KeyboardInterrupt):  # epoch 1, step 3; checkpoint at step 2
        config = cli.pretrain_config(cli.build_parser().parse_args([*flags, "--output", killed]))
        training.pretrain(config, output=killed, verbose=0, log=lambda *a: None,
                          callbacks=[KillAfter(8)])
    assert cli.main([*flags, "--output", killed, "--verbose", "0"]) == 0
    models = [keras.saving.load_model(os.path.join(d, "model.keras")) for d in (full, killed)]
    assert int(np_(models[0].method.epoch)) == 1
    # Every image the pipeline gave in epoch 0 (5 batches of 256 of the
    # 1,437: the remainder is dropped) was clustered by its index.
    assigned = np_(models[0].method.assigned)
    assert assigned.shape == (3, 1437)
    assert np.sum(assigned[0] >= 0) == 5 * 256 and assigned.max() < 40
    for a, b in zip(*(m.method.weights for m in models)):
        np.testing.assert_allclose(np_(a), np_(b), rtol=1e-3, atol=1e-4, err_msg=a.path)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_spherical_kmeans_in_chunks_equals_one_pass(rng, monkeypatch):
    """The assignment step scores the rows in chunks (a whole-dataset bank
    would not fit in memory at once); chunks of 7 rows give the one-pass
    result."""
    from keras_adadim.methods import clustering

    x = rng.normal(size=(40, 5)).astype("float32")
    whole = [np_(t) for t in clustering.spherical_kmeans(x, 4, 5, seed=[3])]
    monkeypatch.setattr(clustering, "KMEANS_CHUNK", 7)
    chunked = [np_(t) for t in clustering.spherical_kmeans(x, 4, 5, seed=[3])]
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)
