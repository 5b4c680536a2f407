"""Dataset loaders (digits, folders, MedMNIST .npz, TensorFlow Datasets,
arrays) and the pre-training / evaluation pipelines. Offline: the TFDS
path is exercised with a tiny builder defined here and prepared into
tmp_path."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_adadim.data.sources import common as sources_common

from keras_adadim.data import ImageDataset
from keras_adadim.data import evaluation_dataset
from keras_adadim.data import from_arrays
from keras_adadim.data import load_dataset
from keras_adadim.data import load_digits
from keras_adadim.data import pretraining_dataset
from keras_adadim.data import steps_per_epoch
from keras_adadim.data import to_numpy

TFDS_TRAIN, TFDS_TEST = 40, 12


def _tfds_image(split_seed, i):
    rng = np.random.default_rng(1000 * split_seed + i)
    return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)


class AdadimTinyImages(tfds.core.GeneratorBasedBuilder):
    """A few dozen random 32x32x3 images with 2 classes, 2 splits."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "label": tfds.features.ClassLabel(names=["even", "odd"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, TFDS_TRAIN),
            "test": self._generate_examples(1, TFDS_TEST),
        }

    def _generate_examples(self, split_seed, n):
        for i in range(n):
            yield i, {"image": _tfds_image(split_seed, i), "label": i % 2}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(array, mode=mode).save(path)


def _batches(ds, count):
    return list(ds.take(count).as_numpy_iterator())


def _noise(x, seed):
    """A cheap augmentation that shows which seed made a view."""
    noise = tf.random.stateless_uniform(tf.shape(x), seed, -0.1, 0.1)
    return tf.clip_by_value(x + noise, 0.0, 1.0)


def _all(data):
    """(images, labels) of a split in its order, uint8 as stored."""
    x, y = next(data.dataset.batch(10**6).as_numpy_iterator())
    return x, y


def _assert_same_batches(got, ref):
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a[0][0], b[0][0])
        np.testing.assert_array_equal(a[0][1], b[0][1])
        np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------- loaders


def test_digits_split_matches_load_digits():
    ref = load_digits()
    for split in ("train", "test"):
        data = load_dataset("digits", split)
        assert isinstance(data, ImageDataset)
        assert data.num_examples == len(ref[f"{split}_images"])
        assert data.image_shape == (8, 8, 1)
        assert data.num_classes == 10 and data.class_names[3] == "3"
        images, labels = _all(data)
        assert images.dtype == np.uint8 and images.max() == 255
        # uint8 = round(v * 255 / 16): / 255 is load_digits' v / 16.
        np.testing.assert_allclose(
            images / 255.0, ref[f"{split}_images"], atol=1 / 510 + 1e-7
        )
        np.testing.assert_array_equal(labels, ref[f"{split}_labels"])
    assert data.num_examples == 360
    with pytest.raises(ValueError, match="'train' and 'test'"):
        load_dataset("digits", "val")


def test_folder_loader_classes_counts_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for cls, count in (("zebra", 2), ("cat", 3), ("dog", 1)):
        for i in range(count):
            img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            # Nested folders and upper-case suffixes are found too.
            sub = "nested/" if cls == "cat" and i == 2 else ""
            path = tmp_path / "pets" / cls / f"{sub}img{i}.PNG"
            _write_png(path, img)
            written[str(path)] = (img, cls)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset(str(tmp_path / "pets"))
    assert data.class_names == ["cat", "dog", "zebra"]
    assert data.num_classes == 3 and data.num_examples == 6
    assert data.image_shape == (12, 10, 3) and data.name == "pets"
    assert data.source.startswith("folder:")
    got = list(data.dataset.as_numpy_iterator())
    assert [int(y) for _, y in got] == [0, 0, 0, 1, 2, 2]
    # Every written image comes back with its class's label.
    expected = {
        img.tobytes(): data.class_names.index(cls)
        for img, cls in written.values()
    }
    for image, label in got:
        assert expected[image.tobytes()] == label


def test_folder_splits_and_grayscale_to_rgb_message(tmp_path, capsys):
    rng = np.random.default_rng(1)
    grays = {}
    for split, count in (("train", 4), ("val", 2)):
        for cls in ("a", "b"):
            for i in range(count):
                img = rng.integers(0, 256, (8, 8), dtype=np.uint8)
                _write_png(tmp_path / "ds" / split / cls / f"{i}.png", img)
                grays.setdefault(split, []).append(img)
    native = load_dataset(tmp_path / "ds", "val")
    assert native.image_shape == (8, 8, 1) and native.num_examples == 4
    assert capsys.readouterr().out == ""  # no conversion, no message
    data = load_dataset(tmp_path / "ds", "validation", channels=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "grayscale" in out and "3 channel" in out
    assert data.image_shape == (8, 8, 3) and data.num_examples == 4
    images = _all(data)[0]
    np.testing.assert_array_equal(images[..., 0], np.stack(grays["val"]))
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    with pytest.raises(ValueError, match="no split 'test'"):
        load_dataset(tmp_path / "ds", "test")


def test_folder_mixed_grayscale_and_rgb(tmp_path, capsys):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    rgb = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    _write_png(tmp_path / "mix" / "x" / "gray.png", gray)
    _write_png(tmp_path / "mix" / "y" / "rgb.png", rgb)
    Image.fromarray(rgb).save(tmp_path / "mix" / "y" / "rgb.jpg", quality=95)
    data = load_dataset(str(tmp_path / "mix"))
    assert "mixes grayscale (1) and colour (2)" in capsys.readouterr().out
    assert data.image_shape == (6, 6, 3) and data.num_examples == 3
    images = {int(y): x for x, y in data.dataset.as_numpy_iterator()}
    np.testing.assert_array_equal(images[0], np.repeat(gray[..., None], 3, -1))
    to_gray = load_dataset(str(tmp_path / "mix"), channels=1)
    assert to_gray.image_shape == (6, 6, 1)
    assert "2 RGB images" in capsys.readouterr().out
    x, _ = to_numpy(to_gray)
    assert x.shape == (3, 6, 6, 1)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty" / "class_a").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images"):
        load_dataset(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_dataset(str(tmp_path / "nowhere.npz"))


def test_npz_medmnist_layout(tmp_path, capsys):
    rng = np.random.default_rng(3)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(
            0, 256, (n, 28, 28), dtype=np.uint8
        )
        arrays[f"{split}_labels"] = rng.integers(0, 7, (n, 1))
    arrays["test_labels"][0, 0] = 7  # the largest label of any split
    path = tmp_path / "bloodmnist.npz"
    np.savez(path, **arrays)
    data = load_dataset(str(path), "validation")
    assert data.split == "val" and data.num_examples == 6
    assert data.image_shape == (28, 28, 1) and data.num_classes == 8
    images, labels = _all(data)
    np.testing.assert_array_equal(images[..., 0], arrays["val_images"])
    np.testing.assert_array_equal(labels, arrays["val_labels"][:, 0])
    # By name, found under data_dir, converted to RGB with one message.
    rgb = load_dataset("BloodMNIST", "test", data_dir=tmp_path, channels=3)
    assert rgb.name == "bloodmnist" and rgb.image_shape == (28, 28, 3)
    assert capsys.readouterr().out.count("converting") == 1
    with pytest.raises(ValueError, match="train, val"):
        load_dataset(str(path), "unlabelled")


def test_from_arrays_float_and_errors():
    rng = np.random.default_rng(4)
    x = rng.random((10, 5, 5, 3)).astype("float32")
    data = from_arrays(x, np.arange(10)[:, None] % 3)
    assert data.num_classes == 3 and data.image_shape == (5, 5, 3)
    back, y = to_numpy(data)
    np.testing.assert_allclose(back, x, atol=1 / 510 + 1e-7)
    np.testing.assert_array_equal(y, np.arange(10) % 3)
    unlabelled = from_arrays(x)
    assert unlabelled.num_classes is None
    assert set(to_numpy(unlabelled)[1]) == {-1}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        from_arrays(x * 255)
    with pytest.raises(ValueError, match="labels"):
        from_arrays(x, np.arange(3))


def test_tfds_builder_prepared_offline_and_loaded(tfds_dir):
    data = load_dataset("adadim_tiny_images", data_dir=str(tfds_dir))
    assert data.source == "tfds:adadim_tiny_images"
    assert data.num_examples == TFDS_TRAIN and data.num_classes == 2
    assert data.class_names == ["even", "odd"]
    assert data.image_shape == (32, 32, 3)
    got = {x.tobytes(): (x, y) for x, y in data.dataset.as_numpy_iterator()}
    assert len(got) == TFDS_TRAIN
    for i in range(TFDS_TRAIN):
        image = _tfds_image(0, i)
        x, y = got[image.tobytes()]  # every generated image, exactly
        assert x.shape == (32, 32, 3) and y == i % 2
    test = load_dataset("tfds:adadim_tiny_images", "test",
                        data_dir=str(tfds_dir), download=False)
    assert test.num_examples == TFDS_TEST
    with pytest.raises(ValueError, match="no split 'val'"):
        load_dataset("adadim_tiny_images", "val", data_dir=str(tfds_dir))


@pytest.mark.parametrize("in_memory", [True, False])
def test_tfds_pipeline_resumes_and_covers_each_image_once(
    tfds_dir, monkeypatch, in_memory
):
    """Small splits are read into memory; large ones are streamed (forced
    here with MAX_IN_MEMORY_BYTES = 0): both resume bit-identically."""
    if not in_memory:
        monkeypatch.setattr(sources_common, "MAX_IN_MEMORY_BYTES", 0)
    data = load_dataset("adadim_tiny_images", data_dir=str(tfds_dir))
    spe = steps_per_epoch(data, 8)
    assert spe == 5
    kwargs = dict(augmentation=_noise, batch_size=8, seed=1,
                  shuffle_buffer=16)
    full = _batches(pretraining_dataset(data, **kwargs), 2 * spe)
    resumed = _batches(pretraining_dataset(data, epoch=1, step=2, **kwargs),
                       3)
    _assert_same_batches(resumed, full[spe + 2:])
    plain = pretraining_dataset(data, None, batch_size=8, seed=1, epochs=2)
    epochs = [[], []]
    for i, ((x1, x2), _) in enumerate(plain.as_numpy_iterator()):
        np.testing.assert_array_equal(x1, x2)
        epochs[i // spe].extend(x.tobytes() for x in x1)
    assert len(set(epochs[0])) == len(set(epochs[1])) == TFDS_TRAIN
    assert epochs[0] != epochs[1]  # reshuffled


@pytest.mark.parametrize("in_memory", [True, False])
def test_pipeline_with_index_gives_each_image_its_index(
    tfds_dir, monkeypatch, in_memory
):
    """``with_index=True``: every view comes with its image's index in the
    split's storage order (in-memory and streamed sources), each epoch
    indexes distinct images, and the views, labels and order are those of
    the stream without indices."""
    if not in_memory:
        monkeypatch.setattr(sources_common, "MAX_IN_MEMORY_BYTES", 0)
    data = load_dataset("adadim_tiny_images", data_dir=str(tfds_dir))
    images, labels = to_numpy(data)
    spe = steps_per_epoch(data, 8)
    kwargs = dict(batch_size=8, seed=3, epochs=2, shuffle_buffer=16)
    plain = list(pretraining_dataset(data, None, **kwargs).as_numpy_iterator())
    indexed = list(pretraining_dataset(data, None, with_index=True, **kwargs)
                   .as_numpy_iterator())
    assert len(indexed) == len(plain) == 2 * spe
    seen = [[], []]
    for step, ((x, y), ((x1, x2), y_plain)) in enumerate(zip(indexed, plain)):
        assert sorted(x) == ["index", "views"] and x["index"].dtype == np.int64
        np.testing.assert_array_equal(x["views"][0], x1)
        np.testing.assert_array_equal(x["views"][1], x2)
        np.testing.assert_array_equal(y, y_plain)
        np.testing.assert_array_equal(x1, images[x["index"]])
        np.testing.assert_array_equal(y, labels[x["index"]])
        seen[step // spe].extend(x["index"].tolist())
    for epoch in seen:
        assert len(set(epoch)) == len(epoch) == spe * 8
        assert set(epoch) <= set(range(TFDS_TRAIN))
    assert seen[0] != seen[1]
    # Without labels: ({"views": ..., "index": i},); resumable mid-epoch.
    (only,) = next(iter(pretraining_dataset(
        data, None, with_labels=False, with_index=True, epoch=1, step=2,
        **{**kwargs, "epochs": 1}).as_numpy_iterator()))
    np.testing.assert_array_equal(only["index"], indexed[spe + 2][0]["index"])


def test_unprepared_known_datasets_name_data_dir_and_manual_dir(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("imagenet2012", data_dir=str(tmp_path), download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "downloads/manual" in msg
    assert "manual_dir" in msg and "ILSVRC2012_img_train.tar" in msg
    assert "download_and_prepare" in msg
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("CIFAR-10", data_dir=str(tmp_path), download=False)
    msg = str(err.value)
    assert "'cifar10'" in msg and str(tmp_path) in msg
    assert "tfds.builder('cifar10'" in msg and "download=True" in msg
    # Datasets TensorFlow Datasets lacks point at the folder / npz loaders.
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.zip"):
        load_dataset("tiny-imagenet", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"organamnist\.npz"):
        load_dataset("organamnist", data_dir=str(tmp_path))


def test_unknown_name_lists_known_and_close_matches():
    with pytest.raises(ValueError) as err:
        load_dataset("cifar1O")
    msg = str(err.value)
    assert "Did you mean: cifar10" in msg
    for name in ("cifar100", "stl10", "imagenet2012", "tiny-imagenet-200",
                 "cinic10", "bloodmnist", "digits"):
        assert name in msg
    assert "load_dataset('/path/to/folder')" in msg and ".npz" in msg


# -------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def small_rgb():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
    return from_arrays(images, np.arange(50), name="small")


def test_pretraining_batches_shapes_and_epoch_coverage(small_rgb):
    ds = pretraining_dataset(small_rgb, batch_size=8, seed=3, epochs=2)
    assert ds.cardinality().numpy() == 2 * 6  # "auto": asymmetric
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 12
    (x1, x2), y = batches[0]
    assert x1.shape == x2.shape == (8, 16, 16, 3) and x1.dtype == np.float32
    assert 0.0 <= x1.min() and x1.max() <= 1.0 and not np.allclose(x1, x2)
    for e in range(2):
        seen = np.concatenate([b[1] for b in batches[6 * e: 6 * e + 6]])
        assert len(set(seen)) == 48  # 48 distinct images, no repeats
    first = np.concatenate([b[1] for b in batches[:6]])
    second = np.concatenate([b[1] for b in batches[6:]])
    assert not np.array_equal(first, second)
    unlabelled = next(iter(pretraining_dataset(
        small_rgb, _noise, batch_size=8, with_labels=False)))
    assert len(unlabelled) == 1 and len(unlabelled[0]) == 2
    infinite = pretraining_dataset(small_rgb, _noise, batch_size=8)
    assert infinite.cardinality().numpy() == -1  # INFINITE


def test_resume_is_bit_identical(small_rgb):
    """A run killed at (epoch e, step s) and restarted with epoch=e and
    .skip(s) (or step=s) sees the uninterrupted stream's batches, across
    the epoch boundary that follows."""
    kwargs = dict(augmentation=_noise, batch_size=8, seed=11)
    full = _batches(pretraining_dataset(small_rgb, **kwargs), 4 * 6)
    for e, s in ((0, 0), (1, 4), (2, 5)):
        skipped = _batches(
            pretraining_dataset(small_rgb, epoch=e, **kwargs).skip(s), 2
        )
        fast = _batches(
            pretraining_dataset(small_rgb, epoch=e, step=s, **kwargs), 2
        )
        ref = full[6 * e + s: 6 * e + s + 2]
        _assert_same_batches(skipped, ref)
        _assert_same_batches(fast, ref)
    # The paper's scheme resumes identically too.
    asym = dict(augmentation="asymmetric", batch_size=8, seed=11)
    ref = _batches(pretraining_dataset(small_rgb, **asym).skip(7), 1)
    _assert_same_batches(
        _batches(pretraining_dataset(small_rgb, epoch=1, step=1, **asym), 1),
        ref,
    )
    other = _batches(pretraining_dataset(
        small_rgb, augmentation=_noise, batch_size=8, seed=12), 1)
    assert not np.array_equal(other[0][0][0], full[0][0][0])
    with pytest.raises(ValueError, match="epoch=1, step=0"):
        pretraining_dataset(small_rgb, batch_size=8, step=6)


def test_pipeline_errors(small_rgb, tmp_path):
    with pytest.raises(ValueError, match="64.*50 images.*batch_size <= 50"):
        pretraining_dataset(small_rgb, batch_size=64)
    with pytest.raises(ValueError, match=">= 2"):
        pretraining_dataset(small_rgb, batch_size=1)
    empty = from_arrays(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        pretraining_dataset(empty, batch_size=8)
    with pytest.warns(UserWarning, match="smaller than image_size=32"):
        ds = pretraining_dataset(small_rgb, image_size=32, batch_size=8)
    assert next(iter(ds))[0][0].shape == (8, 32, 32, 3)
    with pytest.raises(TypeError, match="ImageDataset"):
        pretraining_dataset(np.zeros((10, 8, 8, 3)), batch_size=2)


def test_evaluation_dataset_and_to_numpy(small_rgb):
    originals = _all(small_rgb)[0]
    batches = list(evaluation_dataset(small_rgb, batch_size=16))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    np.testing.assert_allclose(
        np.concatenate([b[0] for b in batches]), originals / 255.0,
        atol=1e-6,
    )
    x, y = to_numpy(small_rgb, image_size=8, max_examples=5)
    assert x.shape == (5, 8, 8, 3) and list(y) == [0, 1, 2, 3, 4]
    # Antialiased bilinear downsizing, as PIL's BILINEAR filter does it.
    pil = Image.fromarray(originals[0]).resize((8, 8), Image.BILINEAR)
    np.testing.assert_allclose(x[0], np.asarray(pil) / 255.0,
                               atol=1.01 / 255)


def test_digits_pipeline_uses_the_digits_views():
    data = load_dataset("digits")
    ((x1, x2), y), = _batches(pretraining_dataset(data, batch_size=64), 1)
    assert x1.shape == x2.shape == (64, 8, 8, 1) and y.shape == (64,)
    assert x1.min() < 0.0 or x1.max() > 1.0  # digits_views' noise, unclipped
    assert set(y) <= set(range(10))


def test_views_train_a_keras_model(small_rgb):
    """One stream, two Keras epochs of fit, then predict, on the current
    backend."""
    spe = steps_per_epoch(small_rgb, 16)
    ds = pretraining_dataset(small_rgb, "asymmetric", batch_size=16)
    a = keras.Input((16, 16, 3))
    b = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(4, 3, activation="relu")
    pool = keras.layers.GlobalAveragePooling2D()
    merged = keras.layers.Concatenate()([pool(conv(a)), pool(conv(b))])
    model = keras.Model([a, b], keras.layers.Dense(50)(merged))
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(ds, steps_per_epoch=spe, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    (x1, x2), _ = _batches(ds, 1)[0]
    assert model.predict((x1, x2), verbose=0).shape == (16, 50)
