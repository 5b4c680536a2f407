"""The paper's augmentation schemes (Table 11): shapes, value range,
determinism, and the per-view probability of each op measured on images
whose outcome can be read off independently."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_adadim.data import SCHEMES
from keras_adadim.data import ViewSpec
from keras_adadim.data import digits_views
from keras_adadim.data import from_arrays
from keras_adadim.data import make_augmentation
from keras_adadim.data import save_sample_views
from keras_adadim.data.augment import blur_kernel_size
from keras_adadim.data.augment import view_augmentation

N = 800  # draws per probability estimate: 4 sigma of p = 0.2 is 0.057


def _draw(fn, image, n=N, offset=0):
    """fn(image, seed) for n seeds, run through tf.data as the pipeline
    does; returns an array [n, S, S, C]. ``image`` may also be a list of
    same-shaped images: then [len(image), n, S, S, C], from one trace."""
    many = isinstance(image, list)
    images = tf.constant(np.stack(image if many else [image]), tf.float32)
    k = len(images)
    ds = tf.data.Dataset.range(k * n).map(
        lambda j: fn(
            tf.gather(images, j // n),
            tf.stack([tf.cast(offset + j % n, tf.int32), 17]),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    out = np.concatenate(list(ds.batch(256).as_numpy_iterator()))
    out = out.reshape((k, n) + out.shape[1:])
    return out if many else out[0]


def _constant(color, size=32):
    return np.ones((size, size, 3), np.float32) * np.asarray(color, "float32")


def _rate(flags):
    return float(np.mean(flags))


# Table 11 of the paper (probability per view), transcribed independently.
TABLE_11 = {
    "asymmetric": [
        dict(jitter=0.8, gray=0.2, blur=1.0, solar=0.0, flip=0.5),
        dict(jitter=0.8, gray=0.2, blur=0.1, solar=0.2, flip=0.5),
    ],
    "ressl": [
        dict(jitter=0.0, gray=0.0, blur=0.0, solar=0.0, flip=0.5),
        dict(jitter=0.8, gray=0.2, blur=0.0, solar=0.2, flip=0.5),
    ],
}


@pytest.mark.parametrize("scheme", ["asymmetric", "ressl"])
def test_schemes_match_table_11(scheme):
    for spec, row in zip(SCHEMES[scheme], TABLE_11[scheme]):
        assert spec.crop and spec.crop_scale == (0.08, 1.0)
        assert spec.crop_ratio == pytest.approx((3 / 4, 4 / 3))
        assert (spec.jitter_p, spec.grayscale_p, spec.blur_p,
                spec.solarize_p, spec.flip_p) == (
            row["jitter"], row["gray"], row["blur"], row["solar"],
            row["flip"])
        if row["jitter"]:
            assert (spec.brightness, spec.contrast, spec.saturation,
                    spec.hue) == (0.4, 0.4, 0.2, 0.1)
        assert spec.blur_sigma == (0.1, 2.0)
    sym = SCHEMES["symmetric"]
    assert sym[0] == sym[1] and sym[0].solarize_p == 0
    assert (sym[0].jitter_p, sym[0].grayscale_p, sym[0].blur_p) == (
        0.8, 0.2, 0.5)


@pytest.mark.parametrize("size", [32, 64, 96, 224])
def test_shapes_range_and_kernel_per_size(size):
    rng = np.random.default_rng(size)
    image = tf.constant(rng.random((size + 8, size - 4, 3)), tf.float32)
    # Each scheme at 32 px; the costliest one (blur in both views) at all.
    schemes = ("asymmetric", "ressl", "symmetric") if size == 32 else (
        "asymmetric",)
    for scheme in schemes:
        for fn in make_augmentation(scheme, size, channels=3):
            view = fn(image, tf.constant([1, 2], tf.int32))
            assert view.shape == (size, size, 3) and view.dtype == tf.float32
            assert 0.0 <= float(tf.reduce_min(view))
            assert float(tf.reduce_max(view)) <= 1.0
    assert blur_kernel_size(size) == {32: 3, 64: 7, 96: 9, 224: 23}[size]
    if size == 32:
        gray = tf.constant(rng.random((size, size, 1)), tf.float32)
        for fn in make_augmentation("asymmetric", size, channels=1):
            assert fn(gray, tf.constant([3, 4])).shape == (size, size, 1)


def test_deterministic_in_seed():
    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 3)).astype("float32")
    f1, f2 = make_augmentation("asymmetric", 32)
    a = _draw(f2, image, n=16)
    b = _draw(f2, image, n=16)
    np.testing.assert_array_equal(a, b)
    c = _draw(f2, image, n=16, offset=16)
    for i in range(16):
        assert not np.array_equal(a[i], c[i])
    assert not np.array_equal(_draw(f1, image, n=4), a[:4])


def test_solarisation_only_on_view_2():
    # Gray 0.95: jitter keeps it in [0.57, 1], so only solarisation
    # (x >= 0.5 -> 1 - x) brings the mean below 0.5.
    image = _constant([0.95, 0.95, 0.95])
    for scheme in ("asymmetric", "ressl"):
        v1, v2 = make_augmentation(scheme, 32)
        solar1 = _draw(v1, image, n=400).mean(axis=(1, 2, 3)) < 0.5
        solar2 = _draw(v2, image).mean(axis=(1, 2, 3)) < 0.5
        assert _rate(solar1) == 0.0
        assert abs(_rate(solar2) - 0.2) < 0.06, (scheme, _rate(solar2))


def test_colour_jitter_and_grayscale_probabilities():
    # Gray 0.3: only brightness changes a constant gray image (contrast,
    # saturation, hue and grayscale leave it), and it never reaches 0.5.
    gray = _constant([0.3, 0.3, 0.3])
    # A constant colour: only the grayscale op makes R = G = B.
    colour = _constant([0.2, 0.3, 0.1])
    expected = {"asymmetric": (0.8, 0.8, 0.2, 0.2),
                "ressl": (0.0, 0.8, 0.0, 0.2)}
    for scheme, (j1, j2, g1, g2) in expected.items():
        for fn, pj, pg in zip(make_augmentation(scheme, 32), (j1, j2),
                              (g1, g2)):
            on_gray, on_colour = _draw(fn, [gray, colour], n=400)
            jittered = np.abs(on_gray - 0.3).max(axis=(1, 2, 3)) > 1e-3
            assert abs(_rate(jittered) - pj) < 0.085, (scheme, pj)
            grayed = np.ptp(on_colour, axis=-1).max(axis=(1, 2)) < 1e-4
            assert abs(_rate(grayed) - pg) < 0.085, (scheme, pg)


def test_ressl_view_1_keeps_the_colours():
    """ReSSL view 1 is crop + flip only: every pixel is a resampled mix of
    the original colours (on the segment between the two colours of a
    two-colour image). View 2 leaves that segment most of the time."""
    c1 = np.array([0.9, 0.1, 0.2], "float32")
    c2 = np.array([0.1, 0.6, 0.9], "float32")
    rng = np.random.default_rng(1)
    mask = rng.random((32, 32, 1)) < 0.5
    image = np.where(mask, c1, c2).astype("float32")
    d = (c2 - c1) / np.linalg.norm(c2 - c1)

    def off_segment(views):
        rel = views - c1
        along = rel @ d
        dist = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        return dist.max(axis=(1, 2))

    v1, v2 = make_augmentation("ressl", 32)
    views1 = _draw(v1, image, n=200)
    assert off_segment(views1).max() < 1e-4
    assert np.std(views1[:, 0, 0, 0]) > 0.1  # the crops do vary
    assert _rate(off_segment(_draw(v2, image, n=200)) > 1e-3) > 0.7


def test_blur_flip_and_crop_statistics():
    rng = np.random.default_rng(2)
    noise = rng.random((32, 32, 3)).astype("float32")
    blur = view_augmentation(
        ViewSpec(crop=False, flip_p=0.0, blur_p=0.3, blur_sigma=(1.0, 2.0)),
        32,
    )
    blurred = np.abs(_draw(blur, noise) - noise).max(axis=(1, 2, 3)) > 1e-3
    assert abs(_rate(blurred) - 0.3) < 0.07
    # A horizontal ramp: flipped views decrease from left to right.
    ramp = np.tile(np.linspace(0, 1, 32, dtype="float32")[None, :, None],
                   (32, 1, 3))
    flip = view_augmentation(ViewSpec(crop=False, flip_p=0.5), 32)
    flipped = _draw(flip, ramp)[:, 0, 0, 0] > 0.5
    assert abs(_rate(flipped) - 0.5) < 0.07
    # Pixel coordinates in the colour channels reveal each crop's box.
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    coords = np.stack([yy / 63, xx / 63, np.zeros_like(xx)], -1)
    crop = view_augmentation(ViewSpec(flip_p=0.0), 32)
    views = _draw(crop, coords.astype("float32"), n=400)
    height = views[..., 0].max(axis=(1, 2)) - views[..., 0].min(axis=(1, 2))
    width = views[..., 1].max(axis=(1, 2)) - views[..., 1].min(axis=(1, 2))
    area = (height * 63 + 1) * (width * 63 + 1) / 64**2
    aspect = (width * 63 + 1) / (height * 63 + 1)
    assert area.min() > 0.06 and area.max() <= 1.0 + 1e-6
    assert 0.45 < area.mean() < 0.62  # uniform in (0.08, 1): mean 0.54
    assert aspect.min() > 0.7 and aspect.max() < 1.43


def test_digits_scheme_callables_and_errors():
    f1, f2 = make_augmentation("digits", 8, channels=1)
    image = tf.constant(np.random.default_rng(3).random((8, 8, 1)),
                        tf.float32)
    seed = tf.constant([5, 6])
    np.testing.assert_array_equal(f1(image, seed), digits_views()(image, seed))
    with pytest.raises(ValueError, match="8x8x1"):
        make_augmentation("digits", 32, channels=3)

    def mine(x, s):
        return x

    assert make_augmentation(mine, 32) == (mine, mine)
    assert make_augmentation((mine, tf.identity), 32) == (mine, tf.identity)
    custom = make_augmentation((ViewSpec(), dataclasses.replace(
        ViewSpec(), solarize_p=1.0)), 16)
    bright = tf.fill((8, 8, 3), 0.9)
    assert custom[1](bright, seed).numpy().max() < 0.5  # always solarised
    np.testing.assert_allclose(custom[0](bright, seed), 0.9, atol=1e-6)
    with pytest.raises(ValueError, match="asymmetric, ressl"):
        make_augmentation("simclr-ish", 32)
    with pytest.raises(ValueError, match="channels"):
        make_augmentation("asymmetric", 32, channels=4)


def test_save_sample_views_writes_a_png(tmp_path):
    rng = np.random.default_rng(4)
    data = from_arrays(rng.integers(0, 256, (6, 24, 24, 3), dtype=np.uint8),
                       np.arange(6) % 2, class_names=["a", "b"])
    path = save_sample_views(data, tmp_path / "views.png", scheme="ressl",
                             image_size=32, n=4)
    raw = (tmp_path / "views.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 400
