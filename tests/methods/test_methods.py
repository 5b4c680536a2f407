"""Every registered method trains through ``fit`` on digits on the current
backend (the suite runs once per backend): a finite loss that falls, every
term and the representation diagnostics in the history; save -> load -> one
more step equals the uninterrupted model, method state included (teacher
weights, queues); a model saved under another backend loads here."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import keras_adadim as ka
from keras_adadim.data import load_digits
from keras_adadim.methods import get_method
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder
from host_reads import HostReads  # tests/host_reads.py

B = 32
EPOCHS = 4
# Small heads and queues: the networks here are tiny.
ARGS = {"byol": {"predictor_hidden_dim": 32},
        "simsiam": {"predictor_hidden_dim": 32},
        "mocov3": {"predictor_hidden_dim": 32},
        "nnclr": {"predictor_hidden_dim": 32, "queue_size": 96},
        "mocov2plus": {"queue_size": 96},
        # Prototypes frozen in epoch 0, the queue used from epoch 2.
        "swav": {"num_prototypes": 16, "queue_size": 64, "queue_start_epoch": 2},
        # Last layer frozen in epoch 0, T_t warmed up over the 4 epochs.
        "dino": {"num_prototypes": 16, "warmup_teacher_temperature_epochs": 4,
                 "base_momentum": 0.99},
        "ressl": {"queue_size": 96},
        # Its memory bank: one row per image of the 4 B fitted.
        "deepclusterv2": {"num_prototypes": (8, 6), "num_images": 4 * B}}
CASES = {name: (name, ARGS.get(name, {})) for name in ka.METHODS}
CASES["adadim+momentum"] = ("adadim", {"momentum": 0.99})


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def batch(model, x1, x2, start=0):
    """The views of images ``start, start + 1, ...``, with their indices
    for a method that keeps per-image state (DeepCluster v2)."""
    if model.method.needs_index:
        return {"views": (x1, x2), "index": np.arange(start, start + len(x1))}
    return (x1, x2)


def make_model(name):
    method, kwargs = CASES[name]
    keras.utils.set_random_seed(1)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=4),
        mlp_projector(hidden_dim=32, output_dim=16),
        method=get_method(method, **kwargs),
        num_classes=10,
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    return model


@pytest.fixture(scope="module")
def views():
    d = load_digits(seed=0)
    x = d["train_images"][:4 * B]
    rng = np.random.default_rng(0)
    x2 = np.roll(x, 1, axis=2) + 0.05 * rng.standard_normal(x.shape)
    return x, x2.astype("float32"), d["train_labels"][:4 * B], d["test_images"][:64]


@pytest.fixture(scope="module")
def trained(views):
    """Each method fitted for EPOCHS epochs (once per module)."""
    x1, x2, y, held_out = views
    out = {}
    for name in CASES:
        model = make_model(name)
        callbacks = [ka.RepresentationMonitor(held_out, every=EPOCHS)]
        if model.method.adaptive:
            callbacks.append(ka.AlphaUpdater(every=2, batches=2, verbose=0))
        history = model.fit(batch(model, x1, x2), y, batch_size=B, epochs=EPOCHS,
                            shuffle=False, verbose=0, callbacks=callbacks)
        out[name] = (model, history.history)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_method_trains_with_complete_history(trained, name):
    model, history = trained[name]
    method = model.method
    expected = {"loss", "probe_loss", "probe_accuracy", *method.term_names,
                *method.log_names}
    assert expected <= set(history), sorted(history)
    for key in expected:
        assert np.all(np.isfinite(history[key])), (key, history[key])
    # DeepCluster v2's first epoch only fills its memory bank: no image has
    # a cluster yet, so its loss is exactly 0; it falls from the second.
    first = 1 if method.needs_index else 0
    if first:
        assert history["deepclusterv2"][0] == 0.0, history["deepclusterv2"]
    assert history["loss"][-1] < history["loss"][first], history["loss"]
    # Unique variable paths: PyTorch tracks parameters by path, and a
    # duplicate (a teacher copy named like the online network) hides the
    # online weights from zero_grad.
    paths = [v.path for v in model.weights]
    assert len(set(paths)) == len(paths)
    # RepresentationMonitor measured H(R), I(R; Z), ER and uniformity.
    for key in ("r_entropy", "mutual_information", "r_effective_rank",
                "z_uniformity"):
        assert np.isfinite(history[key][-1]), key


def test_teacher_and_queue_are_updated_by_training(trained, views):
    """BYOL's teacher moved towards the online network by EMA; NNCLR's
    queue holds the last batches' z1, newest first."""
    x1, x2, y, _ = views
    byol, _ = trained["byol"]
    t = np_(byol.method.teacher.encoder.weights[0])
    o = np_(byol.encoder.weights[0])
    assert not np.allclose(t, o)
    # The optimizer never sees the teacher; in training the teacher's batch
    # norm uses batch statistics and keeps its own moving statistics (as in
    # BYOL and solo-learn: inference-mode batch norm lets BYOL collapse).
    optimized = {id(v) for v in byol.trainable_weights}
    assert not any(id(v) in optimized for v in byol.method.teacher.weights)
    # Adam: iterations, learning rate, and two slots per optimised weight.
    assert len(byol.optimizer.variables) == 2 * len(byol.trainable_weights) + 2
    bn = [v for v in byol.method.teacher.encoder.weights if "moving_mean" in v.path]
    assert bn and not np.allclose(np_(bn[0]), 0.0)
    nnclr, _ = trained["nnclr"]
    queue = np_(nnclr.method.support.queue)
    with keras.StatelessScope():
        z1 = np_(nnclr((x1[3 * B:], x2[3 * B:]), training=True)["z1"])
    # The last step's batch (the 4th, not shuffled) leads the queue. The
    # weights moved once after it, so compare directions loosely.
    cos = np.sum(queue[:B] * z1, 1) / np.linalg.norm(queue[:B], axis=1) / np.linalg.norm(z1, axis=1)
    assert np.mean(cos) > 0.9, cos


@pytest.mark.parametrize("name", ["byol", "mocov3", "nnclr", "simsiam", "barlow_twins",
                                  "mocov2plus", "swav", "dino", "ressl",
                                  "deepclusterv2"])
def test_save_load_next_step_equals_uninterrupted(trained, views, tmp_path, name):
    x1, x2, y, _ = views
    model, _ = trained[name]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.method) is type(model.method)
    settings = [{k: v for k, v in m.method.get_config().items() if k != "predictor"}
                for m in (model, restored)]
    assert settings[0] == settings[1]
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(np_(a), np_(b))
    logs = []
    for m in (model, restored):
        m.fit(batch(m, x1[:B], x2[:B]), y[:B], batch_size=B, epochs=1,
              shuffle=False, verbose=0)
        with keras.StatelessScope():
            out = m(batch(m, x1[B:2 * B], x2[B:2 * B], B), training=True)
            logs.append(float(np_(m.compute_loss(y_pred=out, training=False))))
    assert logs[1] == pytest.approx(logs[0], rel=1e-5)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(np_(a), np_(b), rtol=1e-5, atol=1e-6)


def test_mocov2plus_queues_take_the_normalised_keys_of_each_view(views):
    """One step of MoCo v2+: each view's queue gets that view's L2-normalised
    teacher keys (the teacher as moved by the step) in front, the older rows
    shifted back, newest first; the queries have no predictor."""
    x1, x2, y, _ = views
    model = make_model("mocov2plus")
    method = model.method
    assert getattr(method, "predictor", None) is None
    model((x1[:B], x2[:B]))  # build
    before = [np_(q.queue).copy() for q in (method.queue1, method.queue2)]
    assert before[0].shape == (96, 16)
    np.testing.assert_allclose(np.linalg.norm(before[0], axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(before[0], before[1])  # seeds seed, seed + 1
    model.fit((x1[:B], x2[:B]), y[:B], batch_size=B, epochs=1, shuffle=False, verbose=0)
    for old, queue, x in zip(before, (method.queue1, method.queue2), (x1, x2)):
        with keras.StatelessScope():  # the step's teacher, batch statistics
            _, z = method.teacher(x[:B], training=True)
        z = np_(z)
        now = np_(queue.queue)
        np.testing.assert_array_equal(now[B:], old[:-B])
        np.testing.assert_allclose(now[:B], z / np.linalg.norm(z, axis=1, keepdims=True),
                                   rtol=1e-4, atol=1e-5)


def test_methods_saved_under_another_backend_load_here(views, tmp_path):
    """BYOL (teacher) and NNCLR (queue) written by another backend load here
    with the same embeddings and state."""
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[keras.backend.backend()]
    x = str(tmp_path / "x.npy")
    np.save(x, views[0][:8])
    script = textwrap.dedent(f"""
        import numpy as np, keras, keras_adadim as ka
        from keras_adadim.models.small_cnn import small_cnn_encoder, mlp_projector
        x = np.load({x!r})
        for name, kw in (("byol", {{}}), ("nnclr", {{"queue_size": 16}})):
            keras.utils.set_random_seed(3)
            m = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16),
                               method=ka.methods.get_method(name, predictor_hidden_dim=8, **kw))
            m.compile(optimizer="adam")
            m.fit((x, x[:, ::-1]), batch_size=4, epochs=1, verbose=0)
            m.save({str(tmp_path)!r} + "/" + name + ".keras")
            np.save({str(tmp_path)!r} + "/" + name + ".p.npy", keras.ops.convert_to_numpy(m((x, x))["p1"]))
            state = m.method.teacher.encoder.weights[0] if name == "byol" else m.method.support.queue
            np.save({str(tmp_path)!r} + "/" + name + ".state.npy", keras.ops.convert_to_numpy(state))
    """)
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    xs = np.load(x)
    for name in ("byol", "nnclr"):
        model = keras.models.load_model(str(tmp_path / f"{name}.keras"))
        np.testing.assert_allclose(np_(model((xs, xs))["p1"]), np.load(tmp_path / f"{name}.p.npy"),
                                   rtol=1e-4, atol=1e-5)
        state = model.method.teacher.encoder.weights[0] if name == "byol" else model.method.support.queue
        np.testing.assert_allclose(np_(state), np.load(tmp_path / f"{name}.state.npy"), rtol=1e-6)


def test_method_losses_equal_their_formulas(views):
    """One forward pass: each method's loss is its loss function applied to
    the model's own outputs (recomputed in NumPy)."""
    import reference_numpy as ref

    x1, x2, _, _ = views
    v = (x1[:B], x2[:B])
    for name in ("byol", "simsiam", "barlow_twins", "mocov3", "nnclr", "mocov2plus"):
        model = make_model(name)
        with keras.StatelessScope():
            out = model(v, training=True)
            rows = model.step_rows(out, training=False)
            loss = float(np_(model.compute_loss(y_pred=out, training=False)))
        r = {k: np_(t) for k, t in rows.items()}
        expected = {
            "byol": lambda: 4 + 2 * (ref.negative_cosine_similarity(r["p1"], r["z2t"])
                                     + ref.negative_cosine_similarity(r["p2"], r["z1t"])),
            "simsiam": lambda: 0.5 * (ref.negative_cosine_similarity(r["p1"], r["z2"])
                                      + ref.negative_cosine_similarity(r["p2"], r["z1"])),
            "barlow_twins": lambda: ref.barlow_twins(r["z1"], r["z2"], 0.0051, 0.1),
            "mocov3": lambda: 0.4 * (ref.info_nce(r["p1"], r["z2t"], 0.2)
                                     + ref.info_nce(r["p2"], r["z1t"], 0.2)),
            "nnclr": lambda: ref.nnclr(r["z1"], r["z2"], r["p1"], r["p2"],
                                       np_(model.method.support.queue), 0.2),
            "mocov2plus": lambda: ref.mocov2plus(
                r["z1"], r["z2"], r["z1t"], r["z2t"], np_(model.method.queue1.queue),
                np_(model.method.queue2.queue), 0.2),
        }[name]()
        assert loss == pytest.approx(expected, rel=1e-4, abs=1e-6), name


def test_bad_method_arguments_are_refused():
    enc, proj = small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16)
    with pytest.raises(ValueError, match="'simclr' does not take `alpha`.*fixes alpha"):
        ka.AdaDimModel(enc, proj, method="simclr", alpha=0.3)
    with pytest.raises(ValueError, match="'barlow_twins' does not take `temperature`"):
        ka.AdaDimModel(enc, proj, method="barlow_twins", temperature=0.2)
    with pytest.raises(ValueError, match="set them on the method itself"):
        ka.AdaDimModel(enc, proj, method=get_method("byol"), gamma=0.1)
    with pytest.raises(ValueError, match="`queue_size` must be >= 1; got 0"):
        get_method("nnclr", queue_size=0)
    with pytest.raises(ValueError, match="'mocov2plus' does not take `predictor_hidden_dim`"):
        get_method("mocov2plus", predictor_hidden_dim=32)
    model = ka.AdaDimModel(enc, proj, method=get_method("byol", predictor_hidden_dim=8))
    with pytest.raises(AttributeError, match="alpha and beta belong to AdaDim"):
        model.set_alpha(0.5)
    with pytest.raises(ValueError, match="its method has no alpha"):
        model.compile(optimizer="sgd")
        x = np.zeros((8, 8, 8, 1), "float32")
        model.fit((x, x), batch_size=4, callbacks=[ka.AlphaUpdater()], verbose=0)


@pytest.mark.parametrize("method,kwargs,message", [
    ("adadim", {"temperature": 0.0}, "`temperature` must be > 0; got 0.0"),
    ("adadim", {"gamma": 1.0}, r"`gamma` must be in \[0.0, 1.0\); got 1.0"),
    ("adadim", {"alpha": float("nan")}, r"`alpha` must be in \[0.0, 1.0\]"),
    ("barlow_twins", {"lambda_": -1}, "`lambda_` must be >= 0; got -1"),
    ("byol", {"base_momentum": 1.5}, r"`base_momentum` must be in \[0, 1\]"),
    ("mocov2plus", {"temperature": "warm"},
     "`temperature` must be a number; got 'warm'"),
    ("mocov2plus", {"queue_size": 0}, "`queue_size` must be >= 1; got 0"),
    ("ressl", {"teacher_temperature": -0.1}, "`teacher_temperature` must be > 0"),
    ("swav", {"sinkhorn_iterations": 2.5},
     "`sinkhorn_iterations` must be an integer; got 2.5"),
    ("dino", {"center_momentum": True}, "`center_momentum` must be a number"),
    ("deepclusterv2", {"kmeans_iterations": 0}, "`kmeans_iterations` must be >= 1"),
])
def test_out_of_range_method_arguments_name_the_argument(method, kwargs, message):
    """Every constructor checks its numbers with one rule
    (`_validation.check_number`): the error names the argument, the range
    and the value given."""
    with pytest.raises(ValueError, match=message):
        get_method(method, **kwargs)


# ------------------------------------------------- the shared method parts
# The teacher / predictor / forward / targets code BYOL, MoCo v3, NNCLR,
# SimSiam and AdaDim share lives in `Method` (keras_adadim.methods.base);
# these pin what each method computed with its own copy of it before.
SNAPSHOT = {"byol": ("byol", {"predictor_hidden_dim": 32}),
            "mocov3": ("mocov3", {"predictor_hidden_dim": 32}),
            "nnclr": ("nnclr", {"predictor_hidden_dim": 32, "queue_size": 48}),
            "simsiam": ("simsiam", {"predictor_hidden_dim": 32}),
            "barlow_twins": ("barlow_twins", {}),
            "adadim+momentum": ("adadim", {"momentum": 0.99, "alpha": 0.5})}
# Losses of the snapshot models on fixed inputs, recorded on TensorFlow
# (CPU) with the methods' code before the shared parts were factored out:
# (untrained, after 2 epochs of 2 steps).
RECORDED = {"byol": (4.058689117431641, 4.0083465576171875),
            "mocov3": (2.238734483718872, 2.20654034614563),
            "nnclr": (3.176985502243042, 3.058905839920044),
            "simsiam": (-0.0440860390663147, -0.12802162766456604),
            "barlow_twins": (1.1609501838684082, 0.6305080652236938),
            "adadim+momentum": (31.126554489135742, 29.112796783447266)}
# get_config keys and the method's saved sub-layers (by attribute name in
# model.weights.h5).
CONFIG_KEYS = {
    "byol": {"base_momentum", "final_momentum", "predictor_hidden_dim", "predictor"},
    "mocov3": {"temperature", "base_momentum", "final_momentum",
               "predictor_hidden_dim", "predictor"},
    "nnclr": {"temperature", "queue_size", "seed", "predictor_hidden_dim", "predictor"},
    "simsiam": {"predictor_hidden_dim", "predictor"},
    "barlow_twins": {"lambda_", "scale"},
}
SAVED_PARTS = {"byol": {"predictor", "teacher"}, "mocov3": {"predictor", "teacher"},
               "nnclr": {"predictor", "support"}, "simsiam": {"predictor"},
               "barlow_twins": set(), "adadim+momentum": {"teacher"}}


def snapshot_model(name):
    method, kwargs = SNAPSHOT[name]
    keras.utils.set_random_seed(1)
    model = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16),
                           method=get_method(method, **kwargs), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def snapshot_views():
    x1 = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    return x1, np.roll(x1, 1, 2), np.arange(16) % 10


def snapshot_loss(model, v):
    with keras.StatelessScope():
        out = model(v, training=True)
        return float(np_(model.compute_loss(y_pred=out, training=False)))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="recorded on TensorFlow (initial weights are per backend)")
@pytest.mark.parametrize("name", list(SNAPSHOT))
def test_shared_parts_give_the_losses_recorded_before(name):
    x1, x2, y = snapshot_views()
    model = snapshot_model(name)
    before, after = RECORDED[name]
    assert snapshot_loss(model, (x1, x2)) == pytest.approx(before, rel=1e-5)
    model.fit((x1, x2), y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert snapshot_loss(model, (x1, x2)) == pytest.approx(after, rel=1e-4)


@pytest.mark.parametrize("name", list(SNAPSHOT))
def test_shared_parts_keep_config_keys_and_saved_layout(name, tmp_path):
    import zipfile

    import h5py

    model = snapshot_model(name)
    model(snapshot_views()[:2])
    keys = set(model.method.get_config()) - {"name", "trainable", "dtype"}
    if name in CONFIG_KEYS:
        assert keys == CONFIG_KEYS[name]
    model.optimizer.build(model.trainable_variables)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
    # Keras saves the method under its class name in snake case.
    key = {"BYOL": "byol", "MoCoV3": "mo_co_v3", "NNCLR": "nnclr", "SimSiam": "sim_siam",
           "BarlowTwins": "barlow_twins", "AdaDim": "ada_dim"}[type(model.method).__name__]
    with h5py.File(tmp_path / "w.h5", "r") as f:
        parts = {k for k in f["layers"][key] if k != "vars"}
    assert parts == SAVED_PARTS[name]  # the method's attribute names
    restored = keras.models.load_model(path)
    assert restored.method.get_config().keys() == model.method.get_config().keys()


@pytest.mark.parametrize("name", ["byol", "mocov3", "adadim+momentum"])
def test_shared_teacher_targets_are_the_moved_teacher_on_the_views(name):
    """In training, `targets` moves the teacher by one EMA step (momentum on
    the cosine schedule) and returns its stop-gradient (r, z) of each view;
    `forward` runs the predictor on the online embedding."""
    from keras_adadim.methods.components import cosine_momentum

    x1, x2, _ = snapshot_views()
    model = snapshot_model(name)
    method, teacher = model.method, model.method.teacher
    out = model((x1, x2), training=True)
    online = [np_(w).copy() for w in model.encoder.trainable_weights]
    target = [np_(w).copy() for w in teacher.encoder.trainable_weights]
    progress = model.progress()
    rows = model.step_rows(out, training=True)
    tau = float(np_(cosine_momentum(teacher.base_momentum, teacher.final_momentum, progress)))
    assert tau == pytest.approx(teacher.base_momentum)
    for o, t, now in zip(online, target, teacher.encoder.trainable_weights):
        np.testing.assert_allclose(np_(now), tau * t + (1 - tau) * o, rtol=1e-5, atol=1e-7)
    for i, x in ((1, x1), (2, x2)):
        with keras.StatelessScope():  # leave the batch-norm statistics alone
            r = teacher.encoder(x, training=True)
            z = teacher.projector(r, training=True)
        np.testing.assert_allclose(np_(rows[f"r{i}t"]), np_(r), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np_(rows[f"z{i}t"]), np_(z), rtol=1e-5, atol=1e-6)
    if method.predictor is not None:
        with keras.StatelessScope():
            p = method.predictor(out["z1"], training=True)
        np.testing.assert_allclose(np_(out["p1"]), np_(p), rtol=1e-5, atol=1e-6)
    if "momentum" in method.log_names:
        logged = method.logs(ka.methods.Step(True, progress))["momentum"]
        assert float(np_(logged)) == pytest.approx(tau)


def test_cosine_decay_factor_is_the_one_cosine_schedule():
    from keras_adadim.methods.components import cosine_decay_factor
    from keras_adadim.methods.components import cosine_momentum

    for p in (0.0, 0.25, 0.5, 0.9, 1.0):
        f = float(np_(cosine_decay_factor(ops.convert_to_tensor(p, "float32"))))
        assert f == pytest.approx((np.cos(np.pi * p) + 1) / 2, abs=1e-6)
        assert float(np_(cosine_momentum(0.99, 1.0, p))) == pytest.approx(
            1.0 - 0.01 * f, abs=1e-6)
    method = ka.methods.AdaDim(alpha="cosine")
    method.combine({"vicreg": 0.0, "nce": 0.0, "mut": 0.0},
                   ka.methods.Step(True, ops.convert_to_tensor(0.25, "float32")))
    assert float(np_(method.alpha)) == pytest.approx((1 - np.cos(np.pi / 4)) / 2, abs=1e-6)


def test_teacher_variables_stay_out_of_the_optimizer_with_the_kept_set():
    """The model keeps the set of teacher variables (it is read every step
    on PyTorch) and drops it once after the first call, which builds the
    teacher copies of networks that had no input shape: the optimizer then
    gets exactly the online variables, as when the set was recomputed on
    every access."""
    from keras_adadim.models import heads

    keras.utils.set_random_seed(2)
    encoder = keras.Sequential([keras.layers.Conv2D(4, 3),
                                keras.layers.BatchNormalization(),
                                keras.layers.GlobalAveragePooling2D()])
    projector = keras.Sequential([keras.layers.Dense(8)])
    method = ka.methods.BYOL(predictor=heads.predictor(hidden_dim=8, output_dim=8))
    model = ka.AdaDimModel(encoder, projector, method=method)
    teacher = method.teacher
    assert teacher.variables == []  # nothing to copy yet
    assert model.trainable_variables == []  # (computed before the first call)
    calls = []
    real = method.frozen_variables

    def counted():
        calls.append(1)
        return real()

    method.frozen_variables = counted
    x1, x2, _ = snapshot_views()
    model((x1[:8], x2[:8]))
    assert teacher.variables  # built by the first call

    def recomputed(attr):  # what the properties gave before the set was kept
        frozen = {id(v) for v in real()}
        every = getattr(keras.Model, attr).fget(model)
        if attr.startswith("non_"):
            return [v for v in (model.weights if attr.endswith("weights") else model.variables)
                    if not v.trainable or id(v) in frozen]
        return [v for v in every if id(v) not in frozen]

    for attr in ("trainable_variables", "trainable_weights",
                 "non_trainable_variables", "non_trainable_weights"):
        assert [v.path for v in getattr(model, attr)] == [v.path for v in recomputed(attr)], attr
    teacher_ids = {id(v) for v in teacher.variables}
    assert not teacher_ids & {id(v) for v in model.trainable_variables}
    assert teacher_ids <= {id(v) for v in model.non_trainable_variables}
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit((x1, x2), batch_size=8, epochs=2, verbose=0, steps_per_epoch=2)
    assert len(model.optimizer.variables) == 2 * len(model.trainable_variables) + 2
    assert len(calls) == 1, "the set was recomputed after the first call"
    # The teacher moved only by EMA: still not equal to the online weights.
    assert not np.allclose(np_(teacher.encoder.weights[0]), np_(model.encoder.weights[0]))


# On PyTorch every method's step runs eagerly, so each is checked for host
# reads; on TF and JAX a read cannot happen in the compiled step, and the
# retrace check matters where Python reads a changing setting (alpha).
STEP_CASES = (list(CASES) if keras.backend.backend() == "torch"
              else ["adadim", "adadim+momentum"])


@pytest.mark.parametrize("name", STEP_CASES)
def test_training_step_reads_nothing_on_the_host(name, views):
    """No host sync in the training step of any method: on PyTorch (eager)
    no tensor is read by Python during `train_function` (it would stall a
    GPU's queue; the losses' NaN checks are off in the step, the model's
    guard reports a bad batch), and the patched counter does see a read; on
    TensorFlow and JAX the step is traced once, also when alpha changes (a
    data-dependent Python branch would fail or retrace there)."""
    model = make_model(name)
    x = batch(model, views[0][:8], views[1][:8])
    model.train_on_batch(x)  # builds and traces
    if keras.backend.backend() == "torch":
        import torch

        data = [(keras.tree.map_structure(torch.tensor, x),)]
        with HostReads() as reads:
            logs = model.train_function(data)
        assert sum(reads.counts.values()) == 0, dict(reads.counts)
        with HostReads() as reads:  # the counter works
            float(logs["loss"])
        assert reads.counts["__float__"] == 1
    else:
        # Python code of the step runs only while it is traced.
        traced = []
        loss_terms = model.method.loss_terms

        def counted(rows, step=None):
            traced.append(1)
            return loss_terms(rows, step)

        model.method.loss_terms = counted
        for alpha in (0.2, 0.7):
            if getattr(model.method, "adaptive", False):
                model.set_alpha(alpha)  # a variable: no retrace
            model.train_on_batch(x)
        assert traced == []
