"""Multi-crop input pipelines: 2 global + k local views per image, each at
its own size, seeded per (seed, epoch, position, view) and resumable
mid-epoch like the two-view streams, whose pixels are those of the
two-view pipeline before it made N views. Pure tf.data code: the same on every backend, so it runs
in the TF pass."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_adadim.data import SCHEMES
from keras_adadim.data import ViewSpec
from keras_adadim.data import from_arrays
from keras_adadim.data import load_dataset
from keras_adadim.data import multi_crop
from keras_adadim.data import pretraining_dataset
from keras_adadim.data import save_sample_views
from keras_adadim.data.augment import local_crop_size

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.data pipeline code, the same on every backend: in the TF pass")

K = 3  # local crops


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return from_arrays(rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
                       rng.integers(0, 3, 24))


def first(ds, count=1):
    """The first ``count`` batches as lists of NumPy arrays."""
    return [[np.asarray(v) for v in views] + [np.asarray(y)]
            for views, y in ds.take(count)]


def test_every_view_has_its_shape_and_size(data):
    (batch,) = first(pretraining_dataset(data, "asymmetric", batch_size=4,
                                         local_crops=K))
    views, y = batch[:-1], batch[-1]
    assert [v.shape for v in views] == [(4, 16, 16, 3)] * 2 + [(4, 7, 7, 3)] * K
    assert local_crop_size(16) == 7 and local_crop_size(224) == 96
    assert local_crop_size(32) == 14 and y.shape == (4,)
    for v in views:
        assert v.dtype == np.float32 and 0.0 <= v.min() and v.max() <= 1.0
    (batch,) = first(pretraining_dataset(data, "ressl", batch_size=4,
                                         local_crops=1, local_crop_size=5,
                                         image_size=12))
    assert [v.shape for v in batch[:-1]] == [(4, 12, 12, 3)] * 2 + [(4, 5, 5, 3)]
    # Without labels: a 1-tuple of the N views.
    (views,) = next(iter(pretraining_dataset(
        data, batch_size=4, local_crops=2, with_labels=False)))
    assert len(views) == 4


def test_the_scheme_is_one_tuple_of_view_specs():
    specs = multi_crop("asymmetric", 4, image_size=32)
    assert len(specs) == 6 and all(isinstance(s, ViewSpec) for s in specs)
    assert [s.size for s in specs] == [None, None] + [14] * 4
    assert [s.crop_scale for s in specs] == [(0.14, 1.0)] * 2 + [(0.05, 0.14)] * 4
    glob = SCHEMES["asymmetric"]
    assert specs[0] == dataclasses.replace(glob[0], crop_scale=(0.14, 1.0))
    assert specs[1] == dataclasses.replace(glob[1], crop_scale=(0.14, 1.0))
    assert specs[2].blur_p == 0.5 and specs[2].solarize_p == 0.0
    assert specs[2].brightness == glob[0].brightness
    dino = multi_crop("symmetric", 2, 224, global_scale=(0.4, 1.0),
                      local_scale=(0.05, 0.4))
    assert dino[0].crop_scale == (0.4, 1.0) and dino[3].size == 96


def test_views_differ_and_the_same_seed_gives_the_same_pixels(data):
    kwargs = dict(augmentation="asymmetric", batch_size=4, local_crops=K)
    a = first(pretraining_dataset(data, seed=5, **kwargs), 2)
    b = first(pretraining_dataset(data, seed=5, **kwargs), 2)
    c = first(pretraining_dataset(data, seed=6, **kwargs), 1)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0][0], c[0][0])
    views = a[0][:-1]
    # Each view has its own seed: no two crops of an image are the same.
    assert not np.allclose(views[0], views[1])
    for i in range(2, 2 + K):
        for j in range(i + 1, 2 + K):
            assert not np.allclose(views[i], views[j]), (i, j)
    # Epochs draw fresh crops of the images.
    d = first(pretraining_dataset(data, seed=5, epoch=1, **kwargs), 1)
    assert not np.allclose(d[0][2], views[2])


def test_global_views_do_not_depend_on_the_number_of_views(data):
    """View j's seed is row j of one split of the position's seed: the
    global views of a multi-crop stream are those of the two-view stream
    of the same two specs (so a two-view stream is the N = 2 case)."""
    specs = multi_crop("asymmetric", K, image_size=16)
    kwargs = dict(batch_size=4, seed=2, epoch=1, step=1)
    two = first(pretraining_dataset(data, specs[:2], **kwargs), 2)
    many = first(pretraining_dataset(data, specs, **kwargs), 2)
    more = first(pretraining_dataset(data, "asymmetric", local_crops=K,
                                     **kwargs), 2)
    for t, m, o in zip(two, many, more):
        for j in (0, 1):
            np.testing.assert_array_equal(t[j], m[j])
        for u, v in zip(m, o):  # the tuple and the option are one scheme
            np.testing.assert_array_equal(u, v)


# The first batch of two-view streams as the pipeline made them before it
# made N views (commit 98d6db1, TensorFlow 2.21): sums of x1 and x2, three
# pixels of x1 and the labels.
TWO_VIEW_REFERENCE = {
    "asymmetric": (1677.2535, 1425.2061, (0.313022, 0.358115, 0.566855),
                   [2, 2, 1, 1]),
    "ressl": (1549.3814, 1355.1246, (0.164706, 0.139706, 0.266912),
              [2, 2, 1, 1]),
    "symmetric": (1713.538, 1671.7224, (0.311387, 0.292764, 0.462328),
                  [2, 2, 1, 1]),
    "digits": (148.1081, 107.9684, (-0.180346, 0.365957, 1.033228),
               [8, 4, 0, 3, 9, 0, 4, 9]),
}


@pytest.mark.parametrize("scheme", sorted(TWO_VIEW_REFERENCE))
def test_two_view_streams_are_unchanged(data, scheme):
    if scheme == "digits":
        ds = pretraining_dataset(load_dataset("digits"), batch_size=8, seed=0)
    else:
        ds = pretraining_dataset(data, scheme, batch_size=4, seed=7, epoch=1,
                                 step=1)
    (x1, x2, y), = first(ds)
    sum1, sum2, pixels, labels = TWO_VIEW_REFERENCE[scheme]
    assert float(np.sum(x1, dtype=np.float64)) == pytest.approx(sum1, abs=2e-3)
    assert float(np.sum(x2, dtype=np.float64)) == pytest.approx(sum2, abs=2e-3)
    np.testing.assert_allclose(x1[0, 0, :3, 0], pixels, atol=2e-6)
    assert y.tolist() == labels


def test_multi_crop_stream_resumes_mid_epoch(data):
    kwargs = dict(augmentation="symmetric", batch_size=4, seed=1,
                  local_crops=2, local_crop_size=6)
    whole = first(pretraining_dataset(data, epoch=1, **kwargs), 6)
    resumed = first(pretraining_dataset(data, epoch=1, step=4, **kwargs), 2)
    for x, y in zip(whole[4:], resumed):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_sample_views_draw_every_crop(data, tmp_path):
    from PIL import Image

    two = save_sample_views(data, str(tmp_path / "two.png"), "asymmetric", n=4)
    many = save_sample_views(data, str(tmp_path / "many.png"), "asymmetric",
                             n=4, local_crops=K)
    # One row of 1.5 in at 100 dpi per row: original, 2 global, K local.
    assert Image.open(two).size[1] == 460
    assert Image.open(many).size[1] == int(round((1.5 * (3 + K) + 0.1) * 100))


def test_refused_multi_crop_settings_name_the_fix(data):
    def make(data, **kwargs):
        return pretraining_dataset(data, batch_size=4, **kwargs)

    # The device stream holds the images: the model makes every view.
    with pytest.raises(ValueError, match=r"device_augmentations\(\.\.\., local_crops=k\)"):
        make(data, augmentation="asymmetric", local_crops=2,
             augment_on="device")
    with pytest.raises(ValueError, match=r"'digits' scheme makes no crops"):
        make(load_dataset("digits"), local_crops=2)
    with pytest.raises(ValueError, match=r"local_crops=k \(--local-crops K\)"):
        make(data, local_crop_size=6)
    with pytest.raises(ValueError, match=r"--local-crop-size"):
        make(data, local_crops=2, local_crop_size=20)
    with pytest.raises(ValueError, match=r"local_crops"):
        make(data, local_crops=-1)
