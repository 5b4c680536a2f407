"""AdaDimModel and AlphaUpdater on the current backend (run once per backend)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import keras_adadim as ka
from keras_adadim.data import digits_views
from keras_adadim.data import load_digits
from keras_adadim.data import two_view_dataset
from keras_adadim.losses import mutual_information_term
from keras_adadim.losses import nt_xent
from keras_adadim.losses import vicreg
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder

B = 32  # per-view batch


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def make_model(width=4, **kwargs):
    kwargs.setdefault("num_classes", 10)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=width),
        mlp_projector(hidden_dim=32, output_dim=16),
        **kwargs,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    return model


def fixed_views(digits, n=4 * B, seed=1):
    """Deterministic pre-made views: the image and a shifted, noisy copy."""
    x = digits["train_images"][:n]
    rng = np.random.default_rng(seed)
    x2 = np.roll(x, 1, axis=2) + 0.05 * rng.standard_normal(x.shape)
    return x, x2.astype("float32"), digits["train_labels"][:n]


def train_outputs(model, views):
    """Training-mode forward pass that leaves every variable untouched."""
    with keras.StatelessScope():
        return model(views, training=True)


def loss_of(model, views):
    """The loss of a training-mode forward pass (batch statistics, as in a
    train step) that leaves every variable untouched."""
    with keras.StatelessScope():
        out = model(views, training=True)
        return float(np_(model.compute_loss(y_pred=out, training=False)))


# ------------------------------------------------------------------ training
def test_fit_with_alpha_updater_on_digits(digits):
    """alpha is recomputed at every epoch, stays in [0, 1]; the history has
    every component; the loss at a fixed alpha falls; the probe learns."""
    ds = two_view_dataset(
        digits["train_images"],
        digits["train_labels"],
        augment=digits_views(),
        batch_size=64,
        seed=0,
    )
    model = make_model(width=8, probe_learning_rate=0.5)
    (v1, v2), _ = next(iter(ds.as_numpy_iterator()))
    model((v1, v2))  # build, so `weights` lists the same variables after fit
    before = [np_(w).copy() for w in model.weights]
    updater = ka.AlphaUpdater(every=1, batches=3, verbose=0)
    history = model.fit(ds, epochs=3, callbacks=[updater], verbose=0).history

    assert [u["epoch"] for u in updater.updates] == [0, 1, 2]
    alphas = [u["alpha"] for u in updater.updates]
    assert all(0.0 <= a <= 1.0 for a in alphas)
    np.testing.assert_allclose(history["alpha"], alphas, rtol=1e-5)
    np.testing.assert_allclose(
        history["beta"], [1e-4 * a for a in alphas], rtol=1e-4
    )
    for key in ("loss", "vicreg", "nce", "mut", "probe_loss", "probe_accuracy"):
        assert key in history and np.all(np.isfinite(history[key])), key
    assert history["vicreg"][-1] < history["vicreg"][0]
    assert history["nce"][-1] < history["nce"][0]
    # 10 classes: chance is 0.1; the probe learns from the first epoch on.
    assert history["probe_accuracy"][-1] > max(0.2, history["probe_accuracy"][0])

    # The total loss mixes terms with a changing alpha, so compare it at one
    # alpha: the trained weights must beat the initial ones on a batch.
    after_loss = loss_of(model, (v1, v2))
    trained = [np_(w).copy() for w in model.weights]
    alpha = float(np_(model.alpha))
    for w, value in zip(model.weights, before):
        w.assign(value)
    model.set_alpha(alpha)
    initial_loss = loss_of(model, (v1, v2))
    assert after_loss < initial_loss
    for w, value in zip(model.weights, trained):
        w.assign(value)


def test_alpha_updater_matches_numpy_effective_rank(digits):
    """alpha = mean over batches of ER(concat(z1, z2)) / min(2b, F), with
    the effective rank recomputed by NumPy SVD; updates on epoch % every."""
    x1, x2, _ = fixed_views(digits)
    model = make_model(num_classes=None)
    # Batches as `fit` reads them: a 1-tuple holding the pair of views.
    batches = [((x1[i : i + B], x2[i : i + B]),) for i in range(0, 2 * B, B)]
    expected = []
    with keras.StatelessScope():
        for (views,) in batches:
            out = model(views, training=True)
            z = np.concatenate([np_(out["z1"]), np_(out["z2"])]).astype("f8")
            s = np.linalg.svd(z, compute_uv=False)
            p = s / s.sum()
            p = p[p > 0]
            expected.append(np.exp(-(p * np.log(p)).sum()) / min(2 * B, 16))
    updater = ka.AlphaUpdater(every=2, batches=2, data=batches, verbose=0)
    updater.set_model(model)
    updater.on_train_begin()
    updater.on_epoch_begin(0)
    assert float(np_(model.alpha)) == pytest.approx(np.mean(expected), 1e-4)
    assert float(np_(model.beta)) == pytest.approx(1e-4 * np.mean(expected), 1e-3)
    for epoch in (1, 2, 3, 4, 5):
        updater.on_epoch_begin(epoch)
    assert [u["epoch"] for u in updater.updates] == [0, 2, 4]


def test_rank_estimate_leaves_state_untouched(digits):
    """Measuring alpha runs a training-mode pass without moving batch-norm
    statistics or any other variable."""
    x1, x2, _ = fixed_views(digits)
    model = make_model()
    model((x1[:B], x2[:B]))
    before = [np_(v).copy() for v in model.variables]
    model.embedding_rank_ratio((x1[:B], x2[:B]))
    for v, old in zip(model.variables, before):
        np.testing.assert_array_equal(np_(v), old)


def test_alpha_updater_requires_adaptive_alpha(digits):
    x1, x2, y = fixed_views(digits)
    model = make_model(method="simclr")
    with pytest.raises(ValueError, match="alpha='adaptive'"):
        model.fit((x1, x2), y, batch_size=B, callbacks=[ka.AlphaUpdater()],
                  verbose=0)


# -------------------------------------------------------------- the loss
def test_methods_reduce_to_their_losses(digits):
    """VICReg preset (alpha=0, beta=0) is exactly VICReg; SimCLR preset
    (alpha=1, beta=0) exactly NT-Xent; AdaDim combines them per the SPEC."""
    x1, x2, _ = fixed_views(digits)
    views = (x1[:B], x2[:B])
    for method, reference in (
        ("vicreg", lambda o: vicreg(o["z1"], o["z2"])),
        ("simclr", lambda o: nt_xent(o["z1"], o["z2"], 0.1)),
    ):
        model = make_model(method=method)
        out = train_outputs(model, views)
        np.testing.assert_allclose(
            loss_of(model, views), float(np_(reference(out))), rtol=1e-6
        )
    model = make_model(alpha=0.3, beta=0.2)
    out = train_outputs(model, views)
    v = float(np_(vicreg(out["z1"], out["z2"])))
    n = float(np_(nt_xent(out["z1"], out["z2"], 0.1)))
    m = float(np_(mutual_information_term(out["z1"], out["z2"], out["r1"], out["r2"])))
    expected = 0.8 * (0.7 * v + 0.3 * n) - 0.2 * m
    np.testing.assert_allclose(loss_of(model, views), expected, rtol=1e-5)


def test_plus_lambda_baseline_adds_mutual_information(digits):
    x1, x2, _ = fixed_views(digits)
    views = (x1[:B], x2[:B])
    model = make_model(method="simclr+lambda")
    out = train_outputs(model, views)
    n = float(np_(nt_xent(out["z1"], out["z2"], 0.1)))
    m = float(np_(mutual_information_term(out["z1"], out["z2"], out["r1"], out["r2"])))
    np.testing.assert_allclose(loss_of(model, views), n + 1e-4 * m, rtol=1e-6)


def test_alpha_schedules_follow_training_progress(digits):
    """cosine and linear alpha go 0 -> 1 over the planned steps."""
    x1, x2, y = fixed_views(digits)
    for mode, expect in (("linear", lambda p: p), ("cosine", lambda p: (1 - np.cos(np.pi * p)) / 2)):
        model = make_model(alpha=mode)
        hist = model.fit((x1, x2), y, batch_size=B, epochs=2, verbose=0).history
        steps = 4  # 128 samples / 32
        # alpha used at step t is set from t completed steps out of 8
        per_epoch = [np.mean([expect(t / (2 * steps)) for t in range(e * steps, (e + 1) * steps)]) for e in range(2)]
        np.testing.assert_allclose(hist["alpha"], per_epoch, rtol=1e-5, atol=1e-6)
        assert int(np_(model.train_steps)) == 8


def test_momentum_encoder_and_predictor(digits):
    """Momentum variant: EMA targets move toward the online weights with the
    cosine momentum; the loss uses the predictor and stop-gradient targets."""
    x1, x2, y = fixed_views(digits)
    model = make_model(momentum=0.9, predictor=mlp_projector(32, 16, num_layers=2, name="predictor"))
    model((x1[:B], x2[:B]))
    teacher = model.method.teacher
    online0 = np_(model.encoder.weights[0]).copy()
    target0 = np_(teacher.encoder.weights[0]).copy()
    assert not np.allclose(online0, target0)  # independent initialisation
    hist = model.fit((x1, x2), y, batch_size=B, epochs=2, verbose=0).history
    assert np.all(np.isfinite(hist["loss"]))
    # The optimizer never sees the teacher: the EMA moves it.
    optimized = {id(v) for v in model.trainable_weights}
    assert not any(id(v) in optimized for v in teacher.weights)
    # One manual EMA step reproduces m * target + (1 - m) * online.
    m = float(np_(teacher.momentum(model.progress())))
    target = np_(teacher.encoder.weights[0]).copy()
    online = np_(model.encoder.weights[0]).copy()
    teacher.update(model.encoder, model.projector, model.progress())
    np.testing.assert_allclose(
        np_(teacher.encoder.weights[0]), m * target + (1 - m) * online, rtol=1e-5, atol=1e-7
    )
    # Momentum rises from 0.9 towards 1 with training progress.
    assert 0.9 < m <= 1.0
    model.train_steps.assign(int(np_(model.planned_steps)))
    assert float(np_(teacher.momentum(model.progress()))) == pytest.approx(1.0)


def test_online_probe_step_matches_numpy(rng):
    probe = ka.models.OnlineLinearProbe(3, momentum=0.9)
    f = rng.standard_normal((6, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], "int32")
    probe.build((None, 4))
    w, b = np_(probe.kernel).copy(), np_(probe.bias).copy()
    loss, acc = probe.update(f, y, 0.5)
    logits = f.astype("f8") @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[y]
    g = (p - onehot) / 6
    np.testing.assert_allclose(np_(probe.kernel), w - 0.5 * f.T @ g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np_(probe.bias), b - 0.5 * g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(np_(loss)), -np.mean(np.log(p[np.arange(6), y])), rtol=1e-5)
    assert float(np_(acc)) == pytest.approx(np.mean(logits.argmax(1) == y))


# ----------------------------------------------------------- save & resume
def test_save_load_resume_gives_same_next_step(digits, tmp_path):
    """Save -> load -> one more step equals the uninterrupted model's step;
    alpha, beta, step counter and optimizer state are restored."""
    x1, x2, y = fixed_views(digits)
    model = make_model()
    model.fit((x1, x2), y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    model.set_alpha(0.37)
    path = str(tmp_path / "adadim.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, ka.AdaDimModel)
    assert float(np_(restored.alpha)) == pytest.approx(0.37)
    assert float(np_(restored.beta)) == pytest.approx(0.37e-4)
    assert int(np_(restored.train_steps)) == int(np_(model.train_steps)) == 4
    for m in (model, restored):
        m.fit((x1[:B], x2[:B]), y[:B], batch_size=B, epochs=1, shuffle=False, verbose=0)
    views = (x1[B : 2 * B], x2[B : 2 * B])
    np.testing.assert_allclose(loss_of(restored, views), loss_of(model, views), rtol=1e-5)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(np_(a), np_(b), rtol=1e-5, atol=1e-6)


def test_model_saved_under_another_backend_loads_here(digits, tmp_path):
    """A .keras file written by a different backend loads under this one and
    gives the same embeddings and alpha."""
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[keras.backend.backend()]
    path, x = str(tmp_path / "other.keras"), str(tmp_path / "x.npy")
    np.save(x, digits["test_images"][:8])
    script = textwrap.dedent(f"""
        import numpy as np, keras, keras_adadim as ka
        from keras_adadim.models.small_cnn import small_cnn_encoder, mlp_projector
        keras.utils.set_random_seed(3)
        m = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16), momentum=0.99)
        m.compile(optimizer="adam")
        x = np.load({x!r})
        out = m((x, x))
        m.set_alpha(0.25)
        m.save({path!r})
        np.save({path!r} + ".z.npy", keras.ops.convert_to_numpy(out["z1"]))
    """)
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    model = keras.models.load_model(path)
    xs = np.load(x)
    np.testing.assert_allclose(np_(model((xs, xs))["z1"]), np.load(path + ".z.npy"), rtol=1e-4, atol=1e-5)
    assert float(np_(model.alpha)) == pytest.approx(0.25)
    assert model.method.momentum == pytest.approx(0.99)


# --------------------------------------------------------- mixed precision
def test_mixed_bfloat16_step_close_to_float32(digits):
    """Under mixed_bfloat16 a step runs, batch statistics are float32, and
    the loss stays within bfloat16 tolerance of the float32 loss."""
    x1, x2, y = fixed_views(digits)
    views = (x1[:B], x2[:B])
    keras.utils.set_random_seed(5)
    ref = make_model(alpha=0.5, beta=0.1)
    ref_loss = loss_of(ref, views)
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(5)
    model = make_model(alpha=0.5, beta=0.1)
    model(views)
    for a, b in zip(model.weights, ref.weights):
        a.assign(np_(b))
    out = model(views)
    assert keras.backend.standardize_dtype(out["z1"].dtype) == "bfloat16"
    terms = model.loss_terms(out)
    assert all(keras.backend.standardize_dtype(t.dtype) == "float32" for t in terms.values())
    assert loss_of(model, views) == pytest.approx(ref_loss, rel=3e-2)
    hist = model.fit((x1, x2), y, batch_size=B, epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0])


# ------------------------------------------------------------- bad input
@pytest.fixture
def model_and_views(digits):
    x1, x2, y = fixed_views(digits)
    return make_model(), x1, x2, y


def test_error_wrong_rank(model_and_views):
    model, x1, x2, y = model_and_views
    with pytest.raises(ValueError, match="rank"):
        model((x1[:B, :, :, 0], x2[:B, :, :, 0]))


def test_error_views_of_different_shapes(model_and_views):
    model, x1, x2, y = model_and_views
    with pytest.raises(ValueError, match="same shape"):
        model((x1[:B], x2[: B - 1]))


def test_error_batch_of_one(model_and_views):
    model, x1, x2, y = model_and_views
    with pytest.raises(ValueError, match="at least 2"):
        model((x1[:1], x2[:1]))
    with pytest.raises(ValueError, match="single image"):
        model.fit((x1[:33], x2[:33]), y[:33], batch_size=32, verbose=0)


def test_error_integer_images(model_and_views):
    model, x1, x2, y = model_and_views
    with pytest.raises(ValueError, match="floating point"):
        model(((x1[:B] * 16).astype("int32"), (x2[:B] * 16).astype("int32")))


def test_error_wrong_label_shape(model_and_views):
    model, x1, x2, y = model_and_views
    onehot = np.eye(10, dtype="float32")[y]
    with pytest.raises(ValueError, match="Labels must be integer"):
        model.fit((x1, x2), onehot, batch_size=B, verbose=0)


def test_error_nan_arrays_before_training(model_and_views):
    model, x1, x2, y = model_and_views
    x1 = x1.copy()
    x1[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.fit((x1, x2), y, batch_size=B, verbose=0)


def test_nan_batch_in_dataset_is_skipped_with_clear_error(model_and_views):
    """A NaN batch inside a tf.data pipeline stops training with a clear
    error naming it, and the weights stay finite and unchanged by it."""
    import tensorflow as tf

    model, x1, x2, y = model_and_views
    bad = x1.copy()
    bad[:B] = np.inf
    ds = tf.data.Dataset.from_tensor_slices(((bad[:B], x2[:B]), y[:B]))
    model((x1[:B], x2[:B]))
    before = [np_(w).copy() for w in model.trainable_weights]
    with pytest.raises(ValueError, match="Training batch 0 gave a non-finite"
                       " loss"):
        model.fit(ds.batch(B), epochs=1, verbose=0)
    for w, old in zip(model.trainable_weights, before):
        np.testing.assert_array_equal(np_(w), old)


@pytest.mark.parametrize("check_every,bad_batch,message", [
    (4, 5, "batches 4-7 gave"),   # caught at the next check, batch 7
    (0, 1, "batches 0-7 gave"),   # epoch end only
    (1, 2, "Training batch 2 gave"),
])
def test_deferred_check_catches_a_bad_batch(model_and_views, check_every,
                                            bad_batch, message):
    """The loss is read on the host only every `check_every` batches and at
    the epoch's end; a bad batch in between is still caught, named by the
    range of batches since the last good check, and skipped (the weights
    stay finite)."""
    import tensorflow as tf

    model, x1, x2, y = model_and_views
    n = 8 * 4  # 8 batches of 4
    views = (x1[:n].copy(), x2[:n].copy())
    views[0][bad_batch * 4] = np.nan
    model((x1[:4], x2[:4]))
    ds = tf.data.Dataset.from_tensor_slices((views, y[:n])).batch(4)
    with pytest.raises(ValueError, match=message):
        model.fit(ds, epochs=1, verbose=0, check_every=check_every)
    for w in model.get_weights():
        assert np.isfinite(w).all()  # the bad batch was skipped


def test_error_compile_with_loss_and_unknown_method():
    with pytest.raises(ValueError, match="without `loss`"):
        make_model().compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Unknown method 'byl'.*'byol'"):
        make_model(method="byl")
    with pytest.raises(ValueError, match="'byol' does not take `alpha`"):
        make_model(method="byol", alpha=0.3)
    with pytest.raises(ValueError, match="beta"):
        make_model(beta=2.0)  # would flip the objective's sign
    with pytest.raises(ValueError, match="alpha"):
        make_model(alpha=1.5)


def test_changing_alpha_never_retraces_the_step(digits):
    """alpha and beta are variables: AlphaUpdater changing them between
    epochs does not trace (compile) the training step again. Tracing runs
    compute_loss in Python, so a Python counter sees every trace; PyTorch
    runs eagerly and calls it once per step."""
    x1, x2, y = fixed_views(digits)
    calls = []

    class Counting(ka.AdaDimModel):
        def compute_loss(self, *args, **kwargs):
            calls.append(1)
            return super().compute_loss(*args, **kwargs)

    model = Counting(
        small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16), num_classes=10
    )
    model.compile(optimizer="sgd")
    updater = ka.AlphaUpdater(every=1, batches=2, verbose=0)
    model.fit((x1, x2), y, batch_size=B, epochs=1, callbacks=[updater], verbose=0)
    traced = len(calls)
    model.fit((x1, x2), y, batch_size=B, epochs=3, callbacks=[updater], verbose=0)
    alphas = [u["alpha"] for u in updater.updates]
    assert len(set(np.round(alphas, 6))) > 1  # alpha really changed
    if keras.backend.backend() == "torch":
        assert len(calls) == 4 * 4  # eager: one call per step, 4 steps/epoch
    else:
        assert len(calls) == traced  # no new trace after alpha changed
