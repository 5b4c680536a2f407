"""scikit-learn's digits: 1,797 real 8x8 grayscale images of handwritten
digits, shipped with scikit-learn and therefore available offline. The
default data of `adadim pretrain` and the tests."""




def load_digits(test_fraction=0.2, seed=0):
    """Digits as float32 images in [0, 1], shape (n, 8, 8, 1), with a
    stratified train/test split.

    Returns:
        dict with ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels`` (labels int32).
    """
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1); got {test_fraction}."
        )
    bunch = _load()
    images = (bunch.images[..., None] / 16.0).astype("float32")
    labels = bunch.target.astype("int32")
    xtr, xte, ytr, yte = train_test_split(
        images,
        labels,
        test_size=test_fraction,
        random_state=seed,
        stratify=labels,
    )
    return {
        "train_images": xtr,
        "train_labels": ytr,
        "test_images": xte,
        "test_labels": yte,
    }


def digits_views(strength=1.0):
    """A per-image augmentation for 8x8 digits, as a ``tf.data`` map
    function ``(image, seed) -> view``: random translation by up to one
    pixel (pad + crop), random contrast and brightness, additive Gaussian
    noise and a random 3x3 erased patch. Flips and large crops would change
    the digit's identity at this size, so they are not used."""
    import tensorflow as tf

    def augment(image, seed):
        seeds = tf.random.experimental.stateless_split(seed, 6)
        x = tf.image.pad_to_bounding_box(image, 1, 1, 10, 10)
        x = tf.image.stateless_random_crop(x, (8, 8, 1), seed=seeds[0])
        x = tf.image.stateless_random_contrast(
            x, 1 - 0.4 * strength, 1 + 0.4 * strength, seed=seeds[1]
        )
        x = x + tf.random.stateless_uniform(
            (), seeds[2], -0.2 * strength, 0.2 * strength
        )
        x = x + 0.1 * strength * tf.random.stateless_normal(
            tf.shape(x), seeds[3]
        )
        corner = tf.random.stateless_uniform(
            (2,), seeds[4], 0, 6, dtype=tf.int32
        )
        keep = tf.random.stateless_uniform((), seeds[5]) > 0.5 * strength
        patch = tf.pad(
            tf.ones((3, 3, 1)),
            [[corner[0], 5 - corner[0]], [corner[1], 5 - corner[1]], [0, 0]],
        )
        x = tf.where(keep | (patch < 0.5), x, tf.zeros_like(x))
        return tf.clip_by_value(x, -0.5, 1.5)

    return augment


__all__ = ["load_digits", "digits_views"]
