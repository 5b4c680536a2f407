"""On-device augmentation (``keras_adadim.data.device_augment``): per-sample
parameters, determinism, shapes and ranges, a compiled training step, the
same parameter distributions as the host path (two-sample tests that fail
for a wrong distribution), the same view as the host path for the same
parameters, and ``--augment-on`` end to end."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from keras_adadim import training
from keras_adadim.data import SCHEMES
from keras_adadim.data import ViewSpec
from keras_adadim.data import from_arrays
from keras_adadim.data import pretraining_dataset
from keras_adadim.data.augment import view_augmentation
from keras_adadim.data.augment import view_parameters
from keras_adadim.data.device_augment import DeviceAugmentation
from keras_adadim.data.device_augment import apply_view
from keras_adadim.data.device_augment import device_augmentations
from keras_adadim.data.device_augment import sample_view_parameters
from keras_adadim.models import AdaDimModel
from simulated_kill import KillAfter  # tests/simulated_kill.py
from simulated_kill import saved_weights

ASYM2 = SCHEMES["asymmetric"][1]  # every op: crop, jitter, gray, blur, solar
SHAPE = (16, 16, 3)
N = 4000  # draws per distribution test
P_MIN = 1e-4  # a distribution test fails below this p-value


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(b, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).random((b, *shape)).astype("float32")


def _host_parameters(spec, shape, n, seed=0):
    """``view_parameters`` of n images, seeded as the pipeline seeds them
    (fold_in(key, position), split in two), through tf.data."""
    key = tf.constant([seed, 7], tf.int64)

    def one(k):
        s = tf.random.experimental.stateless_fold_in(key, k)
        s = tf.random.experimental.stateless_split(s, 2)[0]
        return view_parameters(spec, shape, s)

    ds = tf.data.Dataset.range(n).map(one).batch(n)
    return {k: np.asarray(v) for k, v in next(iter(ds)).items()}


def _device_parameters(spec, shape, n, seed=0):
    return {k: _np(v) for k, v in
            sample_view_parameters(spec, n, shape, seed).items()}


def _categorical_p(a, b, min_count=10):
    """Two-sample chi-square homogeneity test of two samples of discrete
    values (rows are categories); rare categories pooled."""
    a = [tuple(np.atleast_1d(r)) for r in a]
    b = [tuple(np.atleast_1d(r)) for r in b]
    cats = sorted(set(a) | set(b))
    ca = np.array([a.count(c) for c in cats])
    cb = np.array([b.count(c) for c in cats])
    rare = (ca + cb) < min_count
    table = np.stack([ca[~rare], cb[~rare]], 1)
    if rare.any():
        table = np.vstack([table, [[ca[rare].sum(), cb[rare].sum()]]])
    table = table[table.sum(1) > 0]
    if len(table) < 2:
        return 1.0
    return stats.chi2_contingency(table.T)[1]


def _mismatches(host, device):
    """Names of the parameters whose distributions differ (p < P_MIN)."""
    bad = []
    box = ("height", "width")
    p = {
        "crop size": _categorical_p(
            np.stack([host[k] for k in box], 1),
            np.stack([device[k] for k in box], 1)),
        "crop top": _categorical_p(host["top"], device["top"]),
        "crop left": _categorical_p(host["left"], device["left"]),
        "order": _categorical_p(host["order"], device["order"]),
        "sigma": stats.ks_2samp(host["sigma"], device["sigma"]).pvalue,
    }
    for k in ("jitter", "grayscale", "blur", "solarize", "flip"):
        p[k] = _categorical_p(host[k], device[k])
    for i in range(host["factors"].shape[1]):
        p[f"factor {i}"] = stats.ks_2samp(host["factors"][:, i],
                                          device["factors"][:, i]).pvalue
    bad = [k for k, v in p.items() if not v >= P_MIN]
    return bad


@pytest.fixture(scope="module")
def host_asym2():
    return _host_parameters(ASYM2, SHAPE, N)


def test_parameter_distributions_match_the_host_path(host_asym2):
    device = _device_parameters(ASYM2, SHAPE, N, seed=3)
    assert _mismatches(host_asym2, device) == []
    # Closed forms, independently of the host path: the probabilities of
    # Table 11 (4 sigma of a binomial rate at N = 4000 is <= 0.032), the
    # factor ranges and the crop's area fraction and aspect ratio ranges.
    for flag, p in (("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.1),
                    ("solarize", 0.2), ("flip", 0.5)):
        assert abs(device[flag].mean() - p) < 0.032, flag
    f = device["factors"]
    for i, s in enumerate((0.4, 0.4, 0.2)):
        assert f[:, i].min() >= 1 - s and f[:, i].max() <= 1 + s
        assert abs(f[:, i].mean() - 1.0) < 0.02
    assert np.abs(f[:, 3]).max() <= 0.1
    assert 0.1 <= device["sigma"].min() and device["sigma"].max() <= 2.0
    h, w = device["height"], device["width"]
    assert (device["top"] >= 0).all() and (device["top"] + h <= 16).all()
    assert (device["left"] >= 0).all() and (device["left"] + w <= 16).all()
    area = h * w / 256.0
    # Rounded sides: the fraction can leave (0.08, 1] by a rounding step.
    assert area.min() >= 0.05 and area.max() <= 1.0
    assert 0.3 < np.median(area) < 0.65  # the median of U(0.08, 1): 0.54
    # A per-sample order: every permutation of the 4 jitter ops occurs.
    assert len({tuple(o) for o in device["order"]}) == 24


@pytest.mark.parametrize("wrong", [
    dict(crop_scale=(0.2, 1.0)),  # the crop scale of another recipe
    dict(brightness=0.5),
    dict(solarize_p=0.3),
    dict(blur_sigma=(0.1, 1.5)),
])
def test_distribution_test_detects_a_wrong_distribution(host_asym2, wrong):
    device = _device_parameters(dataclasses.replace(ASYM2, **wrong), SHAPE,
                                N, seed=3)
    assert _mismatches(host_asym2, device) != []


def test_same_parameters_give_the_host_view():
    # The host path's own views, and the device ops applied to the host's
    # parameters: equal up to float round-off (crop resize, jitter in the
    # drawn order, grayscale, blur, solarisation, flip); and for grayscale
    # images (no saturation, hue or grayscale op) of a non-square size.
    # RGB cases at the other tests' shapes: JAX compiles each eager op
    # once per shape.
    cases = [(spec, SHAPE) for spec in (
        ASYM2, SCHEMES["asymmetric"][0], SCHEMES["symmetric"][0])]
    for spec, shape in [*cases, (ASYM2, (16, 12, 1))]:
        images = _images(8, shape, seed=1)
        fn = view_augmentation(spec, 12, shape[-1])
        seeds = [tf.constant([k, 3], tf.int64) for k in range(len(images))]
        host = np.stack([fn(images[k], s).numpy()
                         for k, s in enumerate(seeds)])
        params = [view_parameters(spec, shape, s) for s in seeds]
        batched = {k: np.stack([p[k].numpy() for p in params])
                   for k in params[0]}
        device = _np(apply_view(keras.ops.convert_to_tensor(images), spec,
                                batched, 12))
        np.testing.assert_allclose(device, host, atol=2e-4)


def test_crop_resize_against_numpy():
    # An independent float64 re-computation of one box: the triangle
    # filter of half-width max(scale, 1) around each output pixel's centre
    # (which is what an antialiased bilinear resize is), on a 2 x 3 image
    # upsampled and a 12 x 12 box downsampled.
    images = _images(2, (12, 12, 1), seed=2)
    params = {"top": np.array([3, 0]), "left": np.array([5, 0]),
              "height": np.array([2, 12]), "width": np.array([3, 12])}

    def resize_1d(n_in, n_out):
        scale = n_in / n_out
        width = max(scale, 1.0)
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            c = (i + 0.5) * scale
            for j in range(n_in):
                m[i, j] = max(0.0, 1 - abs(j + 0.5 - c) / width)
        return m / m.sum(1, keepdims=True)

    spec = ViewSpec(flip_p=0.0)
    out = _np(apply_view(images, spec, params, 4))
    for k in range(2):
        t, l, h, w = (int(params[n][k]) for n in
                      ("top", "left", "height", "width"))
        box = images[k, t:t + h, l:l + w, 0].astype(np.float64)
        ref = resize_1d(h, 4) @ box @ resize_1d(w, 4).T
        np.testing.assert_allclose(out[k, :, :, 0], ref, atol=1e-5)


def test_per_sample_deterministic_shapes_and_range():
    # One image repeated: every difference between samples comes from
    # their own parameters.
    images = np.repeat(_images(1), 8, axis=0)
    a = DeviceAugmentation(ASYM2, 12, seed=5)
    v1 = _np(a(images))
    assert v1.shape == (8, 12, 12, 3) and v1.dtype == np.float32
    assert v1.min() >= 0.0 and v1.max() <= 1.0
    diffs = [np.abs(v1[i] - v1[j]).max() for i in range(8)
             for j in range(i + 1, 8)]
    assert min(diffs) > 1e-3  # no two samples share their view
    params = _device_parameters(ASYM2, SHAPE, 8, seed=5)
    boxes = {tuple(params[k][i] for k in ("top", "left", "height", "width"))
             for i in range(8)}
    assert len(boxes) > 1
    # The same seed gives the same views; the next batch new ones.
    b = DeviceAugmentation(ASYM2, 12, seed=5)
    np.testing.assert_array_equal(_np(b(images)), v1)
    assert np.abs(_np(a(images)) - v1).max() > 1e-3
    assert np.abs(_np(DeviceAugmentation(ASYM2, 12, seed=6)(images))
                  - v1).max() > 1e-3


def test_serialisation_and_seed_state_saved_with_the_weights(tmp_path):
    layer = DeviceAugmentation(ASYM2, 12, seed=5)
    inp = keras.Input(SHAPE)
    model = keras.Model(inp, layer(inp))
    images = _images(8)
    model(images)
    model.save_weights(str(tmp_path / "a.weights.h5"))
    expected = _np(model(images))
    inp2 = keras.Input(SHAPE)
    model2 = keras.Model(inp2, DeviceAugmentation(ASYM2, 12, seed=5)(inp2))
    model2.load_weights(str(tmp_path / "a.weights.h5"))
    # The restored generator continues the stream: the next batch's views.
    np.testing.assert_array_equal(_np(model2(images)), expected)
    clone = DeviceAugmentation.from_config(layer.get_config())
    assert clone.view == ASYM2 and clone.image_size == 12
    with pytest.raises(ValueError, match="--augment-on host"):
        device_augmentations("digits", 8)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        DeviceAugmentation(ASYM2, 8)(np.zeros((2, 8, 8, 2), "float32"))


def test_compiled_training_step():
    # jit_compile=True: XLA on TensorFlow and JAX. On PyTorch the model
    # trains eagerly ("auto"): Keras' jit_compile=True there is
    # torch.compile, which also runs this step (graph breaks at Keras'
    # torch random draws, which it marks torch.compiler.disable) but
    # compiles for about 5 minutes on 2 CPU cores.
    jit = keras.backend.backend() != "torch"
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    encoder = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    projector = keras.layers.Dense(4)
    model = AdaDimModel(encoder, projector, method="simclr",
                        augmentation=device_augmentations(
                            "asymmetric", 12, seed=0))
    model.compile(optimizer="sgd", jit_compile=True if jit else "auto")
    assert model.jit_compile == jit
    images = _images(8)
    first = model.train_on_batch(images, return_dict=True)
    second = model.train_on_batch(images, return_dict=True)
    assert np.isfinite(first["loss"]) and np.isfinite(second["loss"])
    # Each step drew new views: the generators moved on.
    states = [_np(layer.seed_generator.state)
              for layer in model.augmentation]
    assert all(s[1] > 0 for s in states)


def test_multi_crop_on_the_device():
    """``device_augmentations(..., local_crops=k)``: the host path's
    multi-crop specs (2 global crops of the image size, k local crops of
    the local size, crop areas in their scales), each view per-sample and
    seeded apart; SwAV trains on them through ``fit`` (compiled where the
    two-view step is), the local crops made in the step."""
    from keras_adadim.data.augment import multi_crop

    layers = device_augmentations("asymmetric", 14, seed=3, local_crops=3,
                                  local_size=6)
    specs = multi_crop("asymmetric", 3, 14, 6)
    assert [layer.view for layer in layers] == list(specs)
    assert [layer.image_size for layer in layers] == [14, 14, 6, 6, 6]
    seeds = [layer.seed for layer in layers]
    assert len(set(seeds)) == 5 and seeds[:2] == [6, 7]
    images = np.repeat(_images(1), 6, axis=0)
    views = [_np(layer(images)) for layer in layers]
    assert [v.shape for v in views] == [(6, 14, 14, 3)] * 2 + [(6, 6, 6, 3)] * 3
    for v in views:
        assert v.min() >= 0.0 and v.max() <= 1.0
        assert min(np.abs(v[i] - v[j]).max() for i in range(6)
                   for j in range(i + 1, 6)) > 1e-3  # per sample
    assert np.abs(views[2] - views[3]).max() > 1e-3  # crops seeded apart
    # Local crop areas (fraction of the image) within (0.05, 0.14) up to
    # rounding of the sides; global within (0.14, 1).
    local = _device_parameters(specs[2], SHAPE, 2000, seed=1)
    area = local["height"] * local["width"] / 256.0
    assert area.min() >= 0.03 and area.max() <= 0.17
    assert 0.07 < np.median(area) < 0.12
    glob = _device_parameters(specs[0], SHAPE, 2000, seed=1)
    assert (glob["height"] * glob["width"] / 256.0).min() >= 0.11
    # SwAV through fit on 2 global + 3 local crops made in the step.
    jit = keras.backend.backend() != "torch"
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    encoder = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    from keras_adadim.methods import get_method

    model = AdaDimModel(encoder, keras.layers.Dense(4),
                        method=get_method("swav", num_prototypes=5),
                        augmentation=layers)
    model.compile(optimizer="sgd", jit_compile=True if jit else "auto")
    history = model.fit(_images(16), batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["swav"]))
    assert all(_np(layer.seed_generator.state)[1] > 0 for layer in layers)
    with pytest.raises(ValueError, match="more for the local crops of swav / dino"):
        AdaDimModel(encoder, keras.layers.Dense(4), method="simclr",
                    augmentation=layers)


def test_pipeline_yields_plain_images_resumable():
    x = (np.random.default_rng(0).random((10, 8, 8, 3)) * 255).astype(
        "uint8")
    data = from_arrays(x, np.arange(10) % 2)
    ds = pretraining_dataset(data, "asymmetric", batch_size=4, seed=1,
                             epochs=2, augment_on="device")
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 4
    images, labels = batches[0]
    assert images.shape == (4, 8, 8, 3) and labels.shape == (4,)
    # The images themselves, shuffled: each is one of the stored images.
    stored = x.astype("float32") / 255.0
    for img, y in zip(images, labels):
        k = int(np.argmin(np.abs(stored - img).reshape(10, -1).max(1)))
        np.testing.assert_allclose(img, stored[k], atol=1e-6)
        assert y == k % 2
    resumed = pretraining_dataset(data, "asymmetric", batch_size=4, seed=1,
                                  epochs=2, epoch=0, step=1,
                                  augment_on="device")
    for a, b in zip(batches[1:], resumed.as_numpy_iterator()):
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="--augment-on"):
        pretraining_dataset(data, lambda im, s: im, batch_size=4,
                            augment_on="device")
    with pytest.raises(ValueError, match="augment_on"):
        pretraining_dataset(data, batch_size=4, augment_on="gpu")


TINY = dict(epochs=2, batch_size=256, width=8, projector_hidden_dim=32,
            projector_dim=16, alpha_batches=2, monitor_every=0, eval="none",
            eval_baselines=False, checkpoint_every_steps=2, seed=0,
            augmentation="asymmetric", augment_on="device")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the runner's code path is the same on every "
                    "backend (the compiled step above runs on all three); "
                    "one end-to-end run, in the TF pass")
def test_pretrain_on_device_end_to_end_and_exact_resume(tmp_path):
    quiet = dict(verbose=0, log=lambda *a: None)
    full = training.pretrain(output=str(tmp_path / "full"), **quiet, **TINY)
    config = json.load(open(tmp_path / "full" / "config.json"))
    assert config["augment_on"] == "device"
    assert np.isfinite(full["history"][-1]["loss"])
    # Killed at step 8 of 10 (epoch 1, step 3; checkpoint at step 2): the
    # resumed run draws the views the uninterrupted one drew (the layers'
    # seed-generator states are in the checkpoint), so the weights match.
    with pytest.raises(KeyboardInterrupt):
        training.pretrain(output=str(tmp_path / "killed"), **quiet,
                          callbacks=[KillAfter(8)], **TINY)
    resumed = training.pretrain(output=str(tmp_path / "killed"), **quiet,
                                **TINY)
    assert resumed["resumed_from"] == (1, 2)
    w_full, m_full = saved_weights(tmp_path / "full")
    w_res, m_res = saved_weights(tmp_path / "killed")
    assert [type(a) for a in m_res.augmentation] == [DeviceAugmentation] * 2
    for a, b in zip(m_full.augmentation, m_res.augmentation):
        np.testing.assert_array_equal(_np(a.seed_generator.state),
                                      _np(b.seed_generator.state))
    for a, b in zip(w_full, w_res):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # Resuming with the views made elsewhere would change the run.
    with pytest.raises(ValueError, match="augment_on"):
        training.pretrain(output=str(tmp_path / "full"), **quiet,
                          **{**TINY, "augment_on": "host"})


def test_flag_and_bad_settings(capsys):
    from keras_adadim import cli

    assert cli.main(["pretrain", "--augment-on", "device", "--augmentation",
                     "asymmetric", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["augment_on"] == "device"

    with pytest.raises(ValueError, match="--augment-on host"):
        training.configure(overrides=dict(augment_on="device"))  # digits
    with pytest.raises(ValueError, match="--devices 1"):
        training.configure(overrides=dict(
            augment_on="device", augmentation="asymmetric", devices=2))
    with pytest.raises(ValueError, match="augment_on"):
        training.configure(overrides=dict(augment_on="gpu"))
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--augment-on", "gpu", "--print-config"])
    # auto: host for the digits scheme, and wherever there is no
    # accelerator (this CPU).
    assert training.configure(
        overrides=dict(augment_on="auto"))["augment_on"] == "host"
    from keras_adadim import _backend

    expected = "device" if _backend.has_accelerator() else "host"
    assert training.configure(overrides=dict(
        augment_on="auto", augmentation="asymmetric"))[
            "augment_on"] == expected
