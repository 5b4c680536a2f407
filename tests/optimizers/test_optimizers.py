"""LARS, the schedules and make_optimizer, against independent NumPy code."""

import math

import keras
import numpy as np
import pytest

from keras_adadim.optimizers import LARS
from keras_adadim.optimizers import SGDW
from keras_adadim.optimizers import AdamW
from keras_adadim.optimizers import WarmupCosine
from keras_adadim.optimizers import make_optimizer
from keras_adadim.optimizers import step_decay


def _model(zero_head=False):
    """hidden kernel (4, 5), hidden bias, bn gamma, bn beta, head kernel, head bias."""
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, name="hidden"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(
                3, name="head", kernel_initializer="zeros" if zero_head else "glorot_uniform"
            ),
        ]
    )


def _numpy(variables):
    return [np.array(keras.ops.convert_to_numpy(v), "float64") for v in variables]


def _reference_lars(weights, grads, lrs, momentum, wd, eta, eps, clip, nesterov, adapted):
    """Plain NumPy LARS (solo-learn semantics), float64.

    ``wd`` and ``adapted`` are per variable; ``grads`` is [step][variable].
    """
    w = [x.copy() for x in weights]
    v = [np.zeros_like(x) for x in w]
    for step_grads, lr in zip(grads, lrs):
        for i, g in enumerate(step_grads):
            d = np.array(g, "float64")
            pn, gn = np.sqrt((w[i] ** 2).sum()), np.sqrt((d ** 2).sum())
            if adapted[i] and pn != 0 and gn != 0:
                r = eta * pn / (gn + wd[i] * pn + eps)
                if clip:
                    r = min(r / lr, 1.0)
                d = (d + wd[i] * w[i]) * r
            if momentum:
                v[i] = momentum * v[i] + d
                d = d + momentum * v[i] if nesterov else v[i]
            w[i] = w[i] - lr * d
    return w


def _grads(rng, variables, steps, scales=None):
    scales = scales or [1.0] * len(variables)
    return [
        [(s * rng.normal(size=v.shape)).astype("float32") for v, s in zip(variables, scales)]
        for _ in range(steps)
    ]


def _apply(opt, variables, grads):
    for step in grads:
        opt.apply([keras.ops.convert_to_tensor(g) for g in step], variables)


def test_lars_one_step_trust_ratio_for_kernels_sgd_for_bias_and_norm(rng):
    model = _model()
    variables = model.trainable_variables
    w0 = _numpy(variables)
    grads = _grads(rng, variables, 1)
    lr, wd, eta = 0.3, 1e-2, 0.02
    opt = LARS(lr, momentum=0.9, weight_decay=wd, trust_coefficient=eta)
    _apply(opt, variables, grads)
    adapted = [True, False, False, False, True, False]
    want = _reference_lars(w0, grads, [lr], 0.9, [wd] * 6, eta, 1e-8, False, False, adapted)
    for got, exp in zip(_numpy(variables), want):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    # bias, gamma, beta: plain SGD (first momentum step = g), no decay.
    for i in (1, 2, 3, 5):
        np.testing.assert_allclose(_numpy(variables)[i], w0[i] - lr * grads[0][i], rtol=1e-5, atol=1e-6)
    # kernels: scaled by the trust ratio (well below 1 here), decayed.
    for i in (0, 4):
        r = eta * np.linalg.norm(w0[i]) / (np.linalg.norm(grads[0][i]) + wd * np.linalg.norm(w0[i]))
        assert r < 0.1
        np.testing.assert_allclose(
            _numpy(variables)[i], w0[i] - lr * r * (grads[0][i] + wd * w0[i]), rtol=1e-5, atol=1e-6
        )
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 1


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_three_steps_momentum_schedule_and_zero_kernel(rng, nesterov):
    # The zero-initialised head kernel has ||w|| = 0 at step 1 (plain update),
    # then gets the trust ratio; the schedule changes lr at every step.
    model = _model(zero_head=True)
    variables = model.trainable_variables
    w0 = _numpy(variables)
    grads = _grads(rng, variables, 3)
    schedule = WarmupCosine(0.5, total_steps=6, warmup_steps=2, warmup_start=0.1)
    lrs = [float(keras.ops.convert_to_numpy(schedule(s))) for s in range(3)]
    assert len(set(lrs)) == 3
    opt = LARS(schedule, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    _apply(opt, variables, grads)
    adapted = [True, False, False, False, True, False]
    want = _reference_lars(w0, grads, lrs, 0.9, [1e-3] * 6, 0.02, 1e-8, False, nesterov, adapted)
    for got, exp in zip(_numpy(variables), want):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    # momentum buffers hold the accumulated (scaled) gradients
    assert len(opt.momentums) == 6


def test_lars_clip_variant(rng):
    model = _model()
    variables = model.trainable_variables
    w0 = _numpy(variables)
    # tiny hidden-kernel gradients -> trust ratio > lr (clipped to factor 1);
    # large head-kernel gradients -> trust ratio < lr (factor r / lr).
    grads = _grads(rng, variables, 2, scales=[1e-3, 1, 1, 1, 10, 1])
    lr = 0.05
    r_hidden = 0.02 * np.linalg.norm(w0[0]) / np.linalg.norm(grads[0][0])
    r_head = 0.02 * np.linalg.norm(w0[4]) / np.linalg.norm(grads[0][4])
    assert r_hidden > lr > r_head
    opt = LARS(lr, momentum=0.9, weight_decay=1e-4, clip_lr=True)
    _apply(opt, variables, grads)
    adapted = [True, False, False, False, True, False]
    want = _reference_lars(w0, grads, [lr] * 2, 0.9, [1e-4] * 6, 0.02, 1e-8, True, False, adapted)
    for got, exp in zip(_numpy(variables), want):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)


def test_lars_exclusions_and_no_double_weight_decay(rng):
    model = _model()
    variables = model.trainable_variables
    w0 = _numpy(variables)
    grads = _grads(rng, variables, 2)
    # the head kernel by name pattern: plain SGD; hidden kernel kept out of
    # Keras' weight decay: trust ratio with wd = 0.
    opt = LARS(0.2, momentum=0.0, weight_decay=0.05, exclude_from_adaptation=["head/kernel"])
    opt.exclude_from_weight_decay(var_list=[variables[0]])
    _apply(opt, variables, grads)
    adapted = [True, False, False, False, False, False]
    wd = [0.0, 0.05, 0.05, 0.05, 0.05, 0.05]
    want = _reference_lars(w0, grads, [0.2] * 2, 0.0, wd, 0.02, 1e-8, False, False, adapted)
    for got, exp in zip(_numpy(variables), want):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    assert opt.momentums == []

    # A zero gradient leaves a kernel untouched (solo-learn: no decay when
    # ||g|| = 0); Keras' decoupled decay would have shrunk it by lr * wd.
    model = _model()
    before = _numpy(model.trainable_variables)
    opt = LARS(0.5, momentum=0.0, weight_decay=0.1)
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    _apply(opt, model.trainable_variables, [zeros])
    for got, exp in zip(_numpy(model.trainable_variables), before):
        np.testing.assert_array_equal(got, exp)


def test_lars_config_round_trip_and_validation():
    opt = LARS(
        WarmupCosine(0.4, 100, 10), momentum=0.8, weight_decay=1e-4, trust_coefficient=1e-3,
        clip_lr=True, nesterov=True, exclude_from_adaptation=["head"], clipnorm=1.0,
    )
    config = keras.saving.serialize_keras_object(opt)
    assert config["registered_name"] == "keras_adadim>LARS"
    new = keras.saving.deserialize_keras_object(config)
    assert isinstance(new, LARS)
    assert new.get_config() == opt.get_config()
    assert isinstance(new._learning_rate, WarmupCosine)
    for bad in (dict(momentum=1.5), dict(trust_coefficient=0.0), dict(weight_decay=-1.0),
                dict(momentum=0.0, nesterov=True)):
        with pytest.raises(ValueError):
            LARS(0.1, **bad)


def _regression_data(n=128):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 2)) + 0.3).astype("float32")
    return x, y


def test_lars_fit_decreases_loss_and_save_load_keeps_state(tmp_path):
    x, y = _regression_data()
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.BatchNormalization(momentum=0.5), keras.layers.Dense(2)]
    )
    opt = make_optimizer("lars", 2.0, batch_size=32, epochs=40, steps_per_epoch=4,
                         warmup_epochs=2, weight_decay=1e-4)
    model.compile(optimizer=opt, loss="mse")
    first = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0, shuffle=False)
    last = model.evaluate(x, y, verbose=0)
    assert np.isfinite(last) and last < 0.2 * first
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 32
    saved, restored = _numpy(model.optimizer.variables), _numpy(loaded.optimizer.variables)
    # iterations + one momentum per trainable variable (the lr is a schedule)
    assert len(saved) == len(restored) == 1 + len(model.trainable_variables)
    assert all(np.abs(s).sum() > 0 for s in saved[1:])  # non-trivial momenta
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(a, b)
    # one more epoch from the same state gives the same weights
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(_numpy(model.trainable_variables), _numpy(loaded.trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_warmup_cosine_matches_closed_form():
    base, final, start, warm, total = 0.8, 0.01, 0.05, 10, 110
    schedule = WarmupCosine(base, total, warm, final_learning_rate=final, warmup_start=start)

    def closed(s):
        if s < warm:
            return start + (base - start) * s / warm
        p = min((s - warm) / (total - warm), 1.0)
        return final + 0.5 * (base - final) * (1 + math.cos(math.pi * p))

    for s in (0, 1, 5, 9, 10, 11, 35, 60, 109, 110, 500):
        got = float(keras.ops.convert_to_numpy(schedule(s)))
        assert got == pytest.approx(closed(s), rel=1e-5, abs=1e-7), s
    assert float(keras.ops.convert_to_numpy(schedule(warm))) == pytest.approx(base)
    no_warm = WarmupCosine(1.0, 4)
    assert [round(float(keras.ops.convert_to_numpy(no_warm(s))), 6) for s in range(5)] == [
        1.0, round(0.5 * (1 + math.cos(math.pi / 4)), 6), 0.5,
        round(0.5 * (1 + math.cos(3 * math.pi / 4)), 6), 0.0]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupCosine) and restored.get_config() == schedule.get_config()
    with pytest.raises(ValueError):
        WarmupCosine(0.1, total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError):
        WarmupCosine(0.1, total_steps=0)


def test_step_decay_milestones():
    schedule = step_decay(0.1, steps_per_epoch=10, milestones=(60, 80))
    values = {s: float(keras.ops.convert_to_numpy(schedule(s))) for s in (0, 599, 600, 799, 800, 5000)}
    assert values[0] == pytest.approx(0.1) and values[599] == pytest.approx(0.1)
    assert values[600] == pytest.approx(0.01) and values[799] == pytest.approx(0.01)
    assert values[800] == pytest.approx(0.001) and values[5000] == pytest.approx(0.001)
    with pytest.raises(ValueError):
        step_decay(0.1, 10, milestones=(80, 60))


def test_make_optimizer_scaling_types_and_errors():
    opt = make_optimizer("LARS", 0.4, batch_size=512, epochs=100, steps_per_epoch=50,
                         trust_coefficient=1e-3, clip_lr=True)
    assert isinstance(opt, LARS) and opt.trust_coefficient == 1e-3 and opt.clip_lr
    sched = opt._learning_rate
    assert isinstance(sched, WarmupCosine)
    assert sched.base_learning_rate == pytest.approx(0.8)  # 0.4 * 512 / 256
    assert (sched.total_steps, sched.warmup_steps) == (5000, 500)
    assert opt.weight_decay == 1e-4 and opt.momentum == 0.9
    assert float(keras.ops.convert_to_numpy(sched(500))) == pytest.approx(0.8)

    sgd = make_optimizer("sgd", 0.4, 128, 10, 20, warmup_epochs=2, scale_by_batch=False)
    assert isinstance(sgd, SGDW) and sgd._learning_rate.base_learning_rate == pytest.approx(0.4)
    assert sgd._learning_rate.warmup_steps == 40 and sgd.momentum == 0.9
    adamw = make_optimizer("adamw", 1e-3, 256, 10, 20, weight_decay=0.05, beta_1=0.8)
    assert isinstance(adamw, AdamW) and adamw.beta_1 == 0.8 and adamw.weight_decay == 0.05
    assert adamw._learning_rate.base_learning_rate == pytest.approx(1e-3)

    with pytest.warns(UserWarning, match="warmup"):
        short = make_optimizer("lars", 0.4, 256, epochs=3, steps_per_epoch=5)
    assert short._learning_rate.warmup_steps == 15
    with pytest.raises(ValueError, match="'lars', 'sgd', 'adamw'"):
        make_optimizer("adam", 0.4, 256, 10, 10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_optimizer("sgd", 0.4, 256, 10, 0)


@pytest.mark.parametrize("cls", [SGDW, AdamW])
def test_sgdw_adamw_do_not_decay_bias_and_norm(cls):
    model = _model()
    variables = model.trainable_variables
    before = _numpy(variables)
    lr, wd = 0.1, 0.5
    opt = cls(lr, weight_decay=wd)
    _apply(opt, variables, [[np.zeros(v.shape, "float32") for v in variables]])
    after = _numpy(variables)
    for i in (0, 4):  # kernels: decoupled decay only (the gradient is zero)
        np.testing.assert_allclose(after[i], before[i] * (1 - lr * wd), rtol=1e-5, atol=1e-7)
    for i in (1, 2, 3, 5):  # biases and BN: untouched
        np.testing.assert_array_equal(after[i], before[i])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert type(restored) is cls and restored.exclude_bias_and_norm


def test_sgdw_fit_decreases_loss():
    x, y = _regression_data()
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    model.compile(optimizer=make_optimizer("sgd", 0.05, 32, 6, 4, warmup_epochs=1), loss="mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * first
