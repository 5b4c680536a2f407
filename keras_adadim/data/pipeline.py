"""Two-view ``tf.data`` pipelines (shuffle, two views, batch, prefetch)."""

import numpy as np


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
