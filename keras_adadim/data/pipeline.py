"""The input pipelines: the batched, seeded, resumable stream of N views
per image that ``fit`` consumes on every backend (``pretraining_dataset``;
two views, or multi-crop), the un-augmented streams of evaluation
(``evaluation_dataset``, ``to_numpy``), ``steps_per_epoch`` and the data
``fingerprint`` a run records, over any ``ImageDataset`` of
``keras_adadim.data.sources``; and ``two_view_dataset`` over plain arrays.
"""

import math
import warnings

import numpy as np

from keras_adadim.data.sources import common


def two_view_dataset(
    images,
    labels=None,
    augment=None,
    batch_size=256,
    shuffle=True,
    seed=0,
    drop_remainder=True,
):
    """A ``tf.data.Dataset`` of two augmented views per image.

    Each element is ``((x1, x2), y)`` when ``labels`` are given, else
    ``((x1, x2),)`` (Keras reads a plain pair as ``(x, y)``). The views are made by ``augment(image, seed)`` (a
    stateless per-image function, e.g. ``keras_adadim.data.digits_views()``)
    with independent seeds, so the pipeline is reproducible from ``seed``
    and works with ``fit`` on TensorFlow, JAX and PyTorch.

    ``drop_remainder=True`` (default) keeps every batch at ``batch_size``:
    the AdaDim loss needs batch statistics, undefined for a batch of one.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(
            f"`images` must have a batch axis; got shape {images.shape}."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"`images` have dtype {images.dtype}; convert them to float "
            "first, e.g. `images.astype('float32') / 255`."
        )
    if not np.all(np.isfinite(images)):
        raise ValueError("`images` contain NaN or Inf values; repair them.")
    n = len(images)
    if labels is not None and len(labels) != n:
        raise ValueError(
            f"Got {len(labels)} labels for {n} images; they must match."
        )
    if batch_size < 2:
        raise ValueError(
            f"`batch_size` must be >= 2 (batch statistics); got {batch_size}."
        )
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the dataset ({n} "
            "images), so no full batch can be formed. Use a smaller batch."
        )
    index = tf.data.Dataset.range(n)
    if shuffle:
        index = index.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    images_t = tf.constant(images)
    labels_t = None if labels is None else tf.constant(np.asarray(labels))
    # Fresh seeds every epoch, reproducible from `seed`.
    epoch_seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).map(
        lambda s: tf.stack([s, s // 7 + 1])
    )
    ds = tf.data.Dataset.zip(index, epoch_seeds)

    def make(i, s):
        x = tf.gather(images_t, i)
        if augment is None:
            v1 = v2 = x
        else:
            seeds = tf.random.experimental.stateless_split(s, 2)
            v1, v2 = augment(x, seeds[0]), augment(x, seeds[1])
        if labels_t is None:
            # A 1-tuple: Keras reads a 2-tuple as (x, y), not as two views.
            return ((v1, v2),)
        return (v1, v2), tf.gather(labels_t, i)

    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )


def fingerprint(data):
    """A fingerprint of a split's content, recorded when a run starts and
    compared when it resumes: ``{"kind", "sha256", "num_examples"}``.

    In-memory sources (arrays, ``.npz``, IDX, digits): the sha256 of the
    image and label arrays. Folders: of each file's relative path, size,
    modification time and label (no image is decoded). Streamed TensorFlow
    Datasets splits: of their name, split, size and shape only (their
    files are versioned by TensorFlow Datasets)."""
    data = common.check_data(data)
    access = data.access
    if access is not None and access.fingerprint is not None:
        kind, digest = access.fingerprint()
    else:
        kind = "summary"
        digest = common.sha256(repr((data.source, data.split, data.num_examples,
                               tuple(data.image_shape),
                               data.num_classes)).encode())
    return {"kind": kind, "sha256": digest,
            "num_examples": int(data.num_examples)}


def steps_per_epoch(data, batch_size, drop_remainder=True):
    """Batches per epoch of ``pretraining_dataset(data, batch_size=...)``:
    ``num_examples // batch_size`` (``ceil`` without ``drop_remainder``)."""
    n = common.check_data(data).num_examples
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def resolve_image_size(data, image_size):
    if image_size is not None:
        image_size = int(image_size)
        if image_size < 1:
            raise ValueError(f"`image_size` must be >= 1; got {image_size}.")
        return image_size
    h, w = data.image_shape[:2]
    if h is None or w is None or h != w:
        raise ValueError(
            f"{data.name!r} has images of shape {data.image_shape[:2]} (None: "
            "varying), so there is no single native size: pass image_size, "
            "e.g. image_size=224 (ImageNet), 96 (STL-10), 64, 32."
        )
    return int(h)


def resolve_scheme(data, augmentation):
    """The scheme ``pretraining_dataset(data, augmentation)`` uses:
    ``"auto"`` is ``"digits"`` for digits, else ``"asymmetric"``; anything
    else as given."""
    data = common.check_data(data)
    if isinstance(augmentation, str) and augmentation == "auto":
        return "digits" if data.source == "digits" else "asymmetric"
    return augmentation


def resize_to(image, size):
    """float ``[H, W, C]`` to ``[size, size, C]``: the shorter side resized
    to ``size`` (bilinear, antialiased), then a centred crop."""
    import tensorflow as tf

    if image.shape[0] == size and image.shape[1] == size:
        return image
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = size / tf.minimum(h, w)
    nh = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
    nw = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
    image = tf.image.resize(image, tf.stack([nh, nw]), antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    image = tf.slice(image, tf.stack([top, left, 0]),
                     tf.stack([size, size, -1]))
    return tf.clip_by_value(tf.ensure_shape(image, (size, size, None)),
                            0.0, 1.0)


def pretraining_dataset(
    data,
    augmentation="auto",
    image_size=None,
    batch_size=256,
    seed=0,
    shuffle_buffer=10000,
    with_labels=True,
    drop_remainder=True,
    epoch=0,
    *,
    step=0,
    epochs=None,
    augment_on="host",
    local_crops=0,
    local_crop_size=None,
    with_index=False,
):
    """The batched stream of views for pre-training: ``((x1, x2), y)``, or
    ``((x1, x2),)`` with ``with_labels=False`` (a plain pair would be read
    by Keras as ``(x, y)``); views float32 ``[b, S, S, C]`` in [0, 1],
    labels int64 (-1 without labels), prefetched. With more views (a tuple
    of N ``ViewSpec``, or ``local_crops`` = k > 0: multi-crop) each element
    holds N views ``(x1, ..., xN)``, each at its own size. With
    ``with_index=True`` the views come with each image's index in the
    split, ``({"views": (x1, x2), "index": i}, y)`` (int64 in
    ``[0, num_examples)``; the storage order for streamed sources), for
    methods that keep per-image state (DeepCluster v2's memory bank).

    One stream over all epochs. Epoch ``e`` is a fresh shuffle of the
    split with fresh augmentations, both a deterministic function of
    ``(seed, e)`` alone: the shuffle order, and for the image at position
    ``k`` of epoch ``e`` the seed of each of its views (view ``j`` gets
    row ``j`` of one ``stateless_split`` of the position's seed; the rows
    do not depend on how many are drawn, so the first two views of an
    N-view stream are made from the seeds of the two-view stream's). The
    stream starts at epoch ``epoch`` (step ``step`` of it) and goes on with
    ``epoch + 1``, ``epoch + 2``, ... forever (or for ``epochs`` epochs).
    Each epoch is exactly ``steps_per_epoch(data, batch_size)`` batches, so

        model.fit(pretraining_dataset(data, batch_size=b),
                  steps_per_epoch=steps_per_epoch(data, b), epochs=E)

    sees data epoch ``e`` in Keras epoch ``e``, and a run killed at
    (epoch ``e``, step ``s``) resumes bit-identically with
    ``pretraining_dataset(..., epoch=e, step=s)`` (the same batches as
    ``pretraining_dataset(..., epoch=e).skip(s)``, without computing the
    skipped views) and ``fit(..., initial_epoch=e)``.

    Shuffling, all with stateless random ops (TensorFlow's global seed
    plays no part): arrays, ``.npz``, folders and TensorFlow Datasets
    splits up to ``MAX_IN_MEMORY_BYTES`` of decoded images (read into
    memory once) get a full random permutation per epoch. Larger
    TensorFlow Datasets splits (ImageNet) are streamed: the stored order
    (already shuffled by TensorFlow Datasets when it was prepared) is
    rotated by a random offset, each block of ``shuffle_buffer`` encoded
    images is permuted, then the images are decoded in parallel.

    Args:
        data: an ``ImageDataset`` (``load_dataset``, ``from_arrays``).
        augmentation: ``"auto"`` (``"digits"`` for digits, else
            ``"asymmetric"``), a scheme name (``"asymmetric"``,
            ``"ressl"``, ``"symmetric"``, ``"digits"``), a callable
            ``fn(image, seed)`` or a pair of them, a tuple of N
            ``ViewSpec`` (N views, each at its ``size`` or
            ``image_size``; see ``keras_adadim.data.augment.make_views``),
            or None (both views = the resized image).
        image_size: side of the views; None: the images' own (square) size.
            Images smaller than ``image_size`` are upsampled, with a
            warning.
        batch_size: images per batch (>= 2: the loss needs batch
            statistics).
        seed: seeds the shuffle and the augmentations.
        shuffle_buffer: block size of the shuffle of streamed sources.
        with_labels: yield ``((x1, x2), y)`` (else ``((x1, x2),)``).
        with_index: yield ``{"views": ..., "index": i}`` in place of the
            views (above).
        drop_remainder: drop each epoch's last partial batch (default;
            then every batch has ``batch_size`` images).
        epoch: first epoch of the stream.
        step: first step within ``epoch`` (for resuming mid-epoch).
        epochs: number of epochs in the stream (None: forever; pass
            ``steps_per_epoch`` to ``fit``).
        augment_on: ``"host"`` (the views are made here, in ``tf.data``)
            or ``"device"``: the stream yields the un-augmented images,
            ``(x, y)`` or ``(x,)``, at their stored size (resized to
            ``image_size`` where the sizes vary), shuffled and resumable as
            above, for a model that makes the views in its step
            (``keras_adadim.data.device_augment.device_augmentations``);
            ``augmentation`` must then be a scheme the device path has.
        local_crops: multi-crop: k > 0 adds k local views to the scheme's
            two (``keras_adadim.data.augment.multi_crop``: SwAV's and
            DINO's 2 global + k small local crops). On the device path the
            model makes them (``device_augmentations(...,
            local_crops=k)``); pass 0 here.
        local_crop_size: side of the local views (None: 3/7 of
            ``image_size``, SwAV's 96 px at 224).

    Raises:
        ValueError: an empty dataset, ``batch_size`` < 2 or larger than the
            dataset, ``step`` beyond the epoch, no native size, multi-crop
            with ``augment_on='device'`` or a scheme without crops.
    """
    import tensorflow as tf

    data = common.check_data(data)
    n = int(data.num_examples)
    spe = _check_stream(data, batch_size, drop_remainder, epoch, step, epochs)
    batch_size, epoch, step = int(batch_size), int(epoch), int(step)
    image_size = resolve_image_size(data, image_size)
    scheme = resolve_scheme(data, augmentation)
    if augment_on not in ("host", "device"):
        raise ValueError(
            f"`augment_on` must be 'host' or 'device'; got {augment_on!r}.")
    on_device = augment_on == "device"
    views = _view_functions(data, scheme, image_size, on_device,
                            int(local_crops or 0), local_crop_size)
    _warn_if_upsampled(data, image_size)

    per_epoch = spe * batch_size if drop_remainder else n
    seed_t = tf.constant(int(seed), tf.int64)

    def keys(e):
        base = tf.stack([seed_t, tf.cast(e, tf.int64)])
        k = tf.random.experimental.stateless_split(base, 2)
        return k[0], k[1]  # order key, augmentation key

    load, elements = _epoch_elements(data, n, per_epoch, keys, epoch,
                                     step * batch_size, shuffle_buffer)
    # At least two seeds are drawn: the device path's one output (the
    # image itself) kept the two-view seeds (unused) of the stream.
    count = max(2, len(views))

    @tf.autograph.experimental.do_not_convert
    def make(payload, e, k):
        image, label, index = load(payload)
        x = tf.cast(image, tf.float32) / 255.0
        _, aug_key = keys(e)
        s = tf.random.experimental.stateless_fold_in(aug_key, k)
        s = tf.cast(tf.random.experimental.stateless_split(s, count),
                    tf.int32)
        out = tuple(fn(x, s[j]) for j, fn in enumerate(views))
        if on_device:
            out = out[0]
        if with_index:
            out = {"views": out, "index": tf.cast(index, tf.int64)}
        if with_labels:
            return out, tf.cast(label, tf.int64)
        return (out,)

    last = epoch + int(epochs) if epochs is not None else 2**62
    ds = tf.data.Dataset.range(epoch, last)
    autotune = tf.data.AUTOTUNE
    if drop_remainder:
        # Every epoch holds whole batches, so batches never straddle epochs.
        ds = ds.flat_map(elements).map(
            make, num_parallel_calls=autotune, deterministic=True
        ).batch(batch_size, drop_remainder=True)
    else:
        ds = ds.flat_map(
            lambda e: elements(e).map(
                make, num_parallel_calls=autotune, deterministic=True
            ).batch(batch_size)
        )
    total = (
        tf.data.INFINITE_CARDINALITY if epochs is None
        else int(epochs) * spe - step
    )
    ds = ds.apply(tf.data.experimental.assert_cardinality(total))
    return ds.prefetch(autotune)


def _check_stream(data, batch_size, drop_remainder, epoch, step, epochs):
    """Refuse a stream that cannot be made; its steps per epoch."""
    n = int(data.num_examples)
    if n == 0:
        raise ValueError(
            f"{data.name!r} ({data.source}, split {data.split!r}) is empty: "
            "there is nothing to pre-train on."
        )
    batch_size = int(batch_size)
    if batch_size < 2:
        raise ValueError(
            f"`batch_size` must be >= 2 (the loss needs batch variance and "
            f"covariance); got {batch_size}."
        )
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than {data.name!r}, which "
            f"has {n} images, so no full batch can be formed. Use "
            f"batch_size <= {n} (e.g. {max(2, min(256, n // 4))})."
        )
    epoch, step = int(epoch), int(step)
    if epoch < 0 or step < 0:
        raise ValueError(f"`epoch` and `step` must be >= 0; got {epoch}, "
                         f"{step}.")
    spe = steps_per_epoch(data, batch_size, drop_remainder)
    if step >= spe:
        raise ValueError(
            f"`step`={step} is past the end of an epoch ({spe} steps); "
            f"resume with epoch={epoch + 1}, step=0."
        )
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f"`epochs` must be >= 1 or None; got {epochs}.")
    return spe


def _view_functions(data, scheme, image_size, on_device, local_crops,
                    local_crop_size):
    """The per-view functions ``fn(image, seed)`` of the stream (one, the
    image itself, for the device path)."""
    from keras_adadim.data.augment import make_views

    if local_crops < 0:
        raise ValueError(f"`local_crops` must be >= 0; got {local_crops}.")
    if on_device:
        if local_crops:
            raise ValueError(
                f"local_crops={local_crops} with augment_on='device': the "
                "device stream holds the un-augmented images, and the model "
                "makes every view from them, local crops included "
                "(keras_adadim.data.device_augment.device_augmentations(..., "
                "local_crops=k)). Pass local_crops=0 here.")
        from keras_adadim.data.device_augment import view_specs

        view_specs(scheme)  # refuses host-only schemes, naming the fix
        h, w = data.image_shape[:2]
        fixed = h is not None and w is not None

        def undo(x, s):  # the image itself, one size for batching
            return x if fixed else resize_to(x, image_size)

        return (undo,)
    if scheme is None:
        if local_crops:
            raise ValueError(
                f"local_crops={local_crops} needs an augmentation scheme "
                "that crops (e.g. 'asymmetric'); got augmentation=None.")
        resize = lambda x, s: resize_to(x, image_size)  # noqa: E731
        return (resize, resize)
    return make_views(scheme, image_size, data.image_shape[-1],
                      local_crops=local_crops,
                      local_crop_size=local_crop_size)


def _warn_if_upsampled(data, image_size):
    h, w = data.image_shape[:2]
    if h is not None and w is not None and min(h, w) < image_size:
        warnings.warn(
            f"{data.name!r} images are {h}x{w}, smaller than image_size="
            f"{image_size}: every view is upsampled (bilinear) from at most "
            f"{h}x{w} pixels, which adds no detail but multiplies the cost "
            f"of each step. Pass image_size=None to train at {max(h, w)} px "
            "(a CIFAR ResNet stem handles small images).",
            UserWarning,
            stacklevel=3,
        )


def _epoch_elements(data, n, per_epoch, keys, first_epoch, first_offset,
                    shuffle_buffer):
    """``(load, elements)``: ``elements(e)`` is epoch ``e``'s ``tf.data``
    of ``(payload, e, position)`` in its shuffled order (from position
    ``first_offset`` in epoch ``first_epoch``), ``load(payload)`` the
    ``(image, label, index)`` it stands for (``index``: the image's place
    in the split's storage order)."""
    import tensorflow as tf

    first_epoch = tf.constant(first_epoch, tf.int64)
    first_offset = tf.constant(first_offset, tf.int64)

    def offset(e):
        return tf.where(tf.equal(e, first_epoch), first_offset,
                        tf.constant(0, tf.int64))

    access = data.access
    reader = access.random_access() if access is not None else None
    if reader is not None:

        def elements(e):
            order_key, _ = keys(e)
            perm = tf.argsort(tf.random.stateless_uniform(
                (n,), order_key, minval=None, maxval=None, dtype=tf.int64
            ))
            start = offset(e)
            k = tf.range(start, per_epoch, dtype=tf.int64)
            i = tf.gather(tf.cast(perm, tf.int64), k)
            return tf.data.Dataset.from_tensor_slices(
                (i, tf.fill(tf.shape(k), tf.cast(e, tf.int64)), k)
            )

        def load_at(i):
            image, label = reader(i)
            return image, label, i

        return load_at, elements
    if access is None or access.encoded is None:
        raise ValueError(
            f"{data.name!r} ({data.source}) cannot be shuffled: it has "
            "neither random access nor an encoded stream. Build it with "
            "load_dataset or from_arrays."
        )
    block = max(1, min(int(shuffle_buffer), n))

    def load(element):
        index, (encoded, label) = element
        return access.decode(encoded), label, index

    def elements(e):
        order_key, _ = keys(e)
        # A rotation of the storage order by a random offset, then a
        # random permutation within each block of `shuffle_buffer`
        # encoded images: stateless, so a function of (seed, e) alone.
        rot_key, block_key = tf.unstack(
            tf.random.experimental.stateless_split(order_key, 2)
        )
        start = tf.random.stateless_uniform(
            (), rot_key, minval=0, maxval=n, dtype=tf.int64
        )
        # Numbered in storage order before the shuffle: the image's index.
        source = access.encoded().enumerate()
        stream = source.skip(start).concatenate(source.take(start))

        def permute(b, chunk):
            size = tf.shape(chunk[0], out_type=tf.int64)[0]
            perm = tf.argsort(tf.random.stateless_uniform(
                (size,), tf.random.experimental.stateless_fold_in(
                    block_key, b),
                minval=None, maxval=None, dtype=tf.int64,
            ))
            return tf.nest.map_structure(
                lambda t: tf.gather(t, perm), chunk
            )

        stream = stream.batch(block).enumerate().map(permute).unbatch()
        ds = tf.data.Dataset.zip(
            stream.take(per_epoch),
            tf.data.Dataset.range(per_epoch).map(
                lambda k: (tf.cast(e, tf.int64), k)
            ),
        ).map(lambda el, ek: (el, ek[0], ek[1]))
        return ds.skip(offset(e))

    return load, elements


def evaluation_dataset(data, image_size=None, batch_size=256):
    """Batched ``(x, y)`` without augmentation, in the split's order:
    ``x`` float32 ``[b, S, S, C]`` in [0, 1] (images whose size differs
    from ``image_size`` are resized on their shorter side and centre
    cropped), ``y`` int64 (-1 without labels). The last batch may be
    smaller."""
    data = common.check_data(data)
    return _evaluation(data, data.dataset, image_size, batch_size)


def _evaluation(data, ds, image_size, batch_size):
    import tensorflow as tf

    size = resolve_image_size(data, image_size)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")

    def prepare(image, label):
        x = tf.cast(image, tf.float32) / 255.0
        return resize_to(x, size), label

    return ds.map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def to_numpy(data, image_size=None, max_examples=None):
    """``(images, labels)`` as NumPy arrays (float32 ``[n, S, S, C]`` in
    [0, 1], int64), in the split's order, at most ``max_examples`` of them:
    for small sets (linear probes, ``RepresentationMonitor``)."""
    data = common.check_data(data)
    ds = data.dataset
    if max_examples is not None:
        ds = ds.take(int(max_examples))
    size = resolve_image_size(data, image_size)
    xs, ys = [], []
    for x, y in _evaluation(data, ds, size, 512).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        return (np.zeros((0, size, size, data.channels), np.float32),
                np.zeros((0,), np.int64))
    return np.concatenate(xs), np.concatenate(ys)


__all__ = [
    "evaluation_dataset",
    "fingerprint",
    "pretraining_dataset",
    "resize_to",
    "resolve_image_size",
    "resolve_scheme",
    "steps_per_epoch",
    "to_numpy",
    "two_view_dataset",
]
