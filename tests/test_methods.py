"""Every registered method trains through ``fit`` on digits on the current
backend (the suite runs once per backend): a finite loss that falls, every
term and the representation diagnostics in the history; save -> load -> one
more step equals the uninterrupted model, method state included (teacher
weights, queue); a model saved under another backend loads here."""

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

B = 32
EPOCHS = 4
# Small heads and queues: the networks here are tiny.
ARGS = {"byol": {"predictor_hidden_dim": 32},
        "simsiam": {"predictor_hidden_dim": 32},
        "mocov3": {"predictor_hidden_dim": 32},
        "nnclr": {"predictor_hidden_dim": 32, "queue_size": 96}}
CASES = {name: (name, ARGS.get(name, {})) for name in ka.METHODS}
CASES["adadim+momentum"] = ("adadim", {"momentum": 0.99})


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


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
        history = model.fit((x1, x2), y, batch_size=B, epochs=EPOCHS,
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
    assert history["loss"][-1] < history["loss"][0], history["loss"]
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


@pytest.mark.parametrize("name", ["byol", "mocov3", "nnclr", "simsiam", "barlow_twins"])
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
        m.fit((x1[:B], x2[:B]), y[:B], batch_size=B, epochs=1, shuffle=False, verbose=0)
        with keras.StatelessScope():
            out = m((x1[B:2 * B], x2[B:2 * B]), training=True)
            logs.append(float(np_(m.compute_loss(y_pred=out, training=False))))
    assert logs[1] == pytest.approx(logs[0], rel=1e-5)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(np_(a), np_(b), rtol=1e-5, atol=1e-6)


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
    for name in ("byol", "simsiam", "barlow_twins", "mocov3", "nnclr"):
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
    with pytest.raises(ValueError, match="queue `size`"):
        get_method("nnclr", queue_size=0)
    model = ka.AdaDimModel(enc, proj, method=get_method("byol", predictor_hidden_dim=8))
    with pytest.raises(AttributeError, match="alpha and beta belong to AdaDim"):
        model.set_alpha(0.5)
    with pytest.raises(ValueError, match="its method has no alpha"):
        model.compile(optimizer="sgd")
        x = np.zeros((8, 8, 8, 1), "float32")
        model.fit((x, x), batch_size=4, callbacks=[ka.AlphaUpdater()], verbose=0)
