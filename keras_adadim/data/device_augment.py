"""The paper's view schemes as batched ``keras.ops`` code that runs inside
the compiled training step, on any backend (``--augment-on device``).

``DeviceAugmentation(view, image_size)`` is a Keras layer that turns a
batch of un-augmented images ``[b, H, W, C]`` in [0, 1] (all of one size,
e.g. the stored size) into one view ``[b, S, S, C]`` in [0, 1], every
sample with its own random parameters. It takes the same ``ViewSpec`` as
the host path (``keras_adadim.data.augment``), so one pair of specs
(``SCHEMES["asymmetric"]``, ...) defines a recipe for both paths;
``device_augmentations(scheme, image_size, seed)`` gives one layer per
view, which is what ``AdaDimModel(augmentation=(layer1, layer2))`` takes.
(Keras' own ``RandomResizedCrop`` draws one crop for the whole batch,
which is not what self-supervised views need.)

The parameters are drawn by ``sample_view_parameters`` from the same
distributions as the host path's ``view_parameters`` (tested
statistically, ``tests/data/test_device_augment.py``):

* crop: torchvision's rule, vectorised: 10 (area, log-aspect) draws per
  sample, the first that fits, else the whole image clamped to the ratio
  range and centred; integer box sizes and corners as the host path;
* colour jitter with probability ``jitter_p``: the ops of
  ``augment.jitter_ops`` with factors uniform in ``[max(0, 1 - s), 1 + s]``
  (hue: a shift uniform in ``[-s, s]`` of a turn), in a random order per
  sample (each of the len(ops) steps applies the op each sample drew for
  it, selected by masks), clipped to [0, 1] after each step;
* grayscale, solarisation (``x >= threshold`` becomes ``1 - x``) and
  horizontal flip as per-sample masks;
* Gaussian blur: sigma uniform in ``blur_sigma`` per sample, SimCLR's
  kernel size (``augment.blur_kernel_size``), separable, reflect padding.

The ops are applied in the host path's order (crop, jitter, grayscale,
blur, solarisation, flip). The crop is resized by a per-sample
interpolation matrix for each axis (``b x S x H`` and ``b x S x W``,
applied with ``einsum``): a triangle filter whose width grows with the
downscaling factor, which is what ``tf.image.resize(..., "bilinear",
antialias=True)`` computes, so a device view equals the host's view of the
same parameters up to float round-off (tested). No gathers and no
data-dependent shapes: the layer XLA-compiles (``jit_compile=True``) on
TensorFlow, JAX and PyTorch.

Randomness comes from a ``keras.random.SeedGenerator`` tracked by the
layer: the views are a deterministic function of the seed and the number
of batches seen, and the generator's state is saved with the model's
weights, so a checkpointed run resumes with the same stream. The host
path's views are a function of ``(seed, epoch, position)`` instead; the
two paths draw from the same distributions but not the same numbers.

Deliberate differences from the host path: the images must share one size
(the pipeline resizes images of varying size to ``image_size`` on the host
first, so their crops are taken from the resized image rather than the
original), and the hue shift uses ``keras.ops.image``'s RGB/HSV
conversion (the same formulas as ``tf.image.adjust_hue``, up to
round-off). The 8x8 ``"digits"`` scheme is host-only.
"""

import dataclasses
import math

import keras
from keras import ops

from keras_adadim.data.augment import LUMA
from keras_adadim.data.augment import SCHEMES
from keras_adadim.data.augment import ViewSpec
from keras_adadim.data.augment import blur_kernel_size
from keras_adadim.data.augment import jitter_ops

DEVICE_SCHEMES = tuple(SCHEMES)  # "digits" is host-only


def _crop_boxes(u, v, h, w, scale, ratio):
    """``crop_box`` of ``keras_adadim.data.augment``, one box per sample,
    from uniforms ``u`` ``[b, 10, 2]`` (the attempts) and ``v`` ``[b, 2]``
    (the corner): int32 ``(top, left, height, width)``, each ``(b,)``."""
    area = float(h * w) * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = ops.exp(lo + (hi - lo) * u[..., 1])
    cw = ops.cast(ops.round(ops.sqrt(area * aspect)), "int32")
    ch = ops.cast(ops.round(ops.sqrt(area / aspect)), "int32")
    ok = (cw > 0) & (ch > 0) & (cw <= w) & (ch <= h)
    # The first attempt that fits: a one-hot of argmax over the attempts.
    first = ops.one_hot(ops.argmax(ops.cast(ok, "int32"), axis=1), 10,
                        dtype="int32")
    found = ops.any(ok, axis=1)
    # Fallback (static: the image size is known): the whole image, clamped
    # to the aspect-ratio range, centred.
    in_ratio = w / h
    fw = round(h * ratio[1]) if in_ratio > ratio[1] else w
    fh = round(w / ratio[0]) if in_ratio < ratio[0] else h
    ch = ops.where(found, ops.sum(ch * first, axis=1), fh)
    cw = ops.where(found, ops.sum(cw * first, axis=1), fw)
    top = ops.minimum(
        ops.cast(v[:, 0] * ops.cast(h - ch + 1, "float32"), "int32"), h - ch)
    left = ops.minimum(
        ops.cast(v[:, 1] * ops.cast(w - cw + 1, "float32"), "int32"), w - cw)
    top = ops.where(found, top, (h - ch) // 2)
    left = ops.where(found, left, (w - cw) // 2)
    return top, left, ch, cw


def sample_view_parameters(spec, batch, image_shape, seed):
    """Per-sample random parameters of one view of ``batch`` images of
    shape ``image_shape`` (H, W, C): a dict of tensors, each with a
    leading ``batch`` axis, with the keys of the host path's
    ``keras_adadim.data.augment.view_parameters``:

    * ``top``, ``left``, ``height``, ``width`` (int32): the crop box;
    * ``jitter``, ``grayscale``, ``blur``, ``solarize``, ``flip`` (bool):
      whether each op is applied;
    * ``factors`` (``[batch, n]``): the factor of each of the ``n`` ops of
      ``jitter_ops(spec, C)`` (hue: its shift), ``order`` (``[batch, n]``,
      int32): the order they are applied in;
    * ``sigma``: the blur's sigma.

    Args:
        spec: a ``ViewSpec``.
        batch: the number of samples (a Python int).
        image_shape: (H, W, C) of the input images.
        seed: a ``keras.random.SeedGenerator`` (advanced once per call), or
            an int (a fresh generator; eager use, e.g. tests).
    """
    if not isinstance(spec, ViewSpec):
        raise TypeError(f"`spec` must be a ViewSpec; got {spec!r}.")
    if not isinstance(seed, keras.random.SeedGenerator):
        seed = keras.random.SeedGenerator(seed)
    h, w, channels = (int(d) for d in image_shape)
    b = int(batch)
    jops = jitter_ops(spec, channels)
    n = len(jops)
    # All of a sample's uniforms in one draw (one random op per batch):
    # 20 crop attempts, 2 corner, n factors, n order keys, 5 flags, sigma.
    u = keras.random.uniform((b, 28 + 2 * n), dtype="float32", seed=seed)
    if spec.crop:
        top, left, ch, cw = _crop_boxes(
            ops.reshape(u[:, :20], (b, 10, 2)), u[:, 20:22], h, w,
            spec.crop_scale, spec.crop_ratio)
    else:
        zero = ops.zeros((b,), "int32")
        top, left, ch, cw = zero, zero, zero + h, zero + w
    order = ops.cast(ops.argsort(u[:, 22 + n:22 + 2 * n], axis=1), "int32")
    factors = []
    for i, (name, strength) in enumerate(jops):
        if name == "hue":
            factors.append(strength * (2.0 * u[:, 22 + i] - 1.0))
        else:
            low = max(0.0, 1.0 - strength)
            factors.append(low + (1.0 + strength - low) * u[:, 22 + i])
    factors = ops.stack(factors, axis=1) if n else ops.zeros((b, 0))
    p = ops.convert_to_tensor([
        spec.jitter_p if n else 0.0,
        spec.grayscale_p if channels == 3 else 0.0,
        spec.blur_p, spec.solarize_p, spec.flip_p], "float32")
    flags = u[:, 22 + 2 * n:27 + 2 * n] < p
    low, high = spec.blur_sigma
    sigma = low + (high - low) * u[:, 27 + 2 * n]
    return {
        "top": top, "left": left, "height": ch, "width": cw,
        "jitter": flags[:, 0], "factors": factors, "order": order,
        "grayscale": flags[:, 1], "blur": flags[:, 2], "sigma": sigma,
        "solarize": flags[:, 3], "flip": flags[:, 4],
    }


def _resize_matrix(start, length, in_size, out_size):
    """``[b, out_size, in_size]`` rows of the antialiased bilinear resize
    of the window ``[start, start + length)`` of an axis to ``out_size``
    samples: a triangle filter of half-width ``max(length / out_size, 1)``
    input pixels around each output pixel's centre, restricted to the
    window and normalised (as ``tf.image.resize(antialias=True)``)."""
    start = ops.cast(start, "float32")[:, None, None]
    length = ops.cast(length, "float32")[:, None, None]
    i = ops.arange(out_size, dtype="float32")[None, :, None]
    j = ops.arange(in_size, dtype="float32")[None, None, :]
    centre = start + (i + 0.5) * length / out_size
    width = ops.maximum(length / out_size, 1.0)
    weight = ops.relu(1.0 - ops.abs(j + 0.5 - centre) / width)
    inside = (j >= start) & (j < start + length)
    weight = ops.where(inside, weight, 0.0)
    return weight / ops.sum(weight, axis=-1, keepdims=True)


def crop_and_resize(images, top, left, height, width, size):
    """Each image's box ``[top, top + height) x [left, left + width)``
    resized to ``size x size`` (bilinear, antialiased): ``[b, S, S, C]``."""
    _, h, w, _ = images.shape
    rows = _resize_matrix(top, height, h, size)
    cols = _resize_matrix(left, width, w, size)
    x = ops.einsum("bih,bhwc->biwc", rows, images)
    return ops.einsum("bjw,biwc->bijc", cols, x)


def _gray(x):
    return ops.sum(x * ops.convert_to_tensor(LUMA, x.dtype), axis=-1,
                   keepdims=True)


def _per_sample(v):
    return ops.reshape(v, (-1, 1, 1, 1))


def _adjust_hue(x, shift):
    hsv = ops.image.rgb_to_hsv(x)
    hue = hsv[..., :1] + _per_sample(shift)
    hue = hue - ops.floor(hue)
    return ops.image.hsv_to_rgb(ops.concatenate([hue, hsv[..., 1:]], -1))


def _color_jitter(x, names, factors, order):
    """``augment.color_jitter`` per sample: step ``t`` applies op
    ``order[:, t]`` of each sample, selected by one-hot masks."""
    color = x.shape[-1] == 3
    n = len(names)
    one, zero = ops.ones_like(factors[:, 0]), ops.zeros_like(factors[:, 0])
    # Brightness, contrast, saturation: a x + b gray + c mean(gray).
    a = ops.stack([one if m == "hue" else factors[:, i]
                   for i, m in enumerate(names)], 1)
    b = ops.stack([1.0 - factors[:, i] if m == "saturation" else zero
                   for i, m in enumerate(names)], 1)
    c = ops.stack([1.0 - factors[:, i] if m == "contrast" else zero
                   for i, m in enumerate(names)], 1)
    hue = names.index("hue") if "hue" in names else -1
    for t in range(n):
        pick = ops.one_hot(order[:, t], n, dtype=x.dtype)
        gray = _gray(x) if color else x
        mean = ops.mean(gray, axis=(1, 2, 3), keepdims=True)
        y = (_per_sample(ops.sum(a * pick, 1)) * x
             + _per_sample(ops.sum(b * pick, 1)) * gray
             + _per_sample(ops.sum(c * pick, 1)) * mean)
        if hue >= 0 and color:
            y = ops.where(_per_sample(order[:, t] == hue),
                          _adjust_hue(x, factors[:, hue]), y)
        x = ops.clip(y, 0.0, 1.0)
    return x


def _gaussian_blur(x, sigma, kernel_size):
    """Separable Gaussian blur, one sigma per sample, reflect padding."""
    radius = kernel_size // 2
    r = ops.arange(-radius, radius + 1, dtype="float32")[None, :]
    k = ops.exp(-(r**2) / (2.0 * ops.reshape(sigma, (-1, 1)) ** 2))
    k = k / ops.sum(k, axis=1, keepdims=True)
    h, w = x.shape[1], x.shape[2]
    y = ops.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)),
                mode="reflect")
    y = sum(_per_sample(k[:, t]) * y[:, t:t + h] for t in range(kernel_size))
    return sum(_per_sample(k[:, t]) * y[:, :, t:t + w]
               for t in range(kernel_size))


def apply_view(images, spec, params, size):
    """One view of ``images`` ``[b, H, W, C]`` (float in [0, 1]) with the
    parameters of ``sample_view_parameters``: ``[b, size, size, C]``."""
    x = crop_and_resize(images, params["top"], params["left"],
                        params["height"], params["width"], size)
    x = ops.clip(x, 0.0, 1.0)
    channels = x.shape[-1]
    names = [name for name, _ in jitter_ops(spec, channels)]
    if names and spec.jitter_p > 0:
        y = _color_jitter(x, names, params["factors"], params["order"])
        x = ops.where(_per_sample(params["jitter"]), y, x)
    if channels == 3 and spec.grayscale_p > 0:
        gray = ops.repeat(_gray(x), 3, axis=-1)
        x = ops.where(_per_sample(params["grayscale"]), gray, x)
    if spec.blur_p > 0:
        y = _gaussian_blur(x, params["sigma"], blur_kernel_size(size))
        x = ops.where(_per_sample(params["blur"]), y, x)
    if spec.solarize_p > 0:
        y = ops.where(x < spec.solarize_threshold, x, 1.0 - x)
        x = ops.where(_per_sample(params["solarize"]), y, x)
    if spec.flip_p > 0:
        x = ops.where(_per_sample(params["flip"]), ops.flip(x, axis=2), x)
    return ops.clip(x, 0.0, 1.0)


def _spec_from_config(value):
    if isinstance(value, ViewSpec):
        return value
    fields = {f.name for f in dataclasses.fields(ViewSpec)}
    unknown = set(value) - fields
    if unknown:
        raise ValueError(f"Unknown ViewSpec fields {sorted(unknown)}.")
    return ViewSpec(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in value.items()})


@keras.saving.register_keras_serializable(package="keras_adadim")
class DeviceAugmentation(keras.layers.Layer):
    """One view of the paper's schemes, made on the device: each sample of
    a batch ``[b, H, W, C]`` in [0, 1] gets its own random resized crop to
    ``image_size``, colour jitter (random order), grayscale, blur,
    solarisation and flip, as ``view`` (a ``ViewSpec``) says. See the
    module docstring.

    Args:
        view: a ``ViewSpec`` (or its ``dataclasses.asdict`` form).
        image_size: side of the square output views.
        seed: seed of the layer's ``SeedGenerator`` (None: drawn from
            Keras' global seed).
    """

    def __init__(self, view, image_size, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # views stay float32
        super().__init__(**kwargs)
        self.view = _spec_from_config(view)
        self.image_size = int(image_size)
        if self.image_size < 1:
            raise ValueError(
                f"`image_size` must be >= 1; got {image_size!r}.")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if len(images.shape) != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "DeviceAugmentation takes a batch of images [b, H, W, C] "
                f"with C = 1 or 3; got shape {tuple(images.shape)}.")
        if None in images.shape[1:3]:
            raise ValueError(
                "DeviceAugmentation needs images of one known size; resize "
                "them in the input pipeline first.")
        images = ops.cast(images, "float32")
        batch = ops.shape(images)[0]
        if not isinstance(batch, int):
            raise ValueError(
                "DeviceAugmentation needs a known batch size (batches of "
                "one size: `drop_remainder=True` in the pipeline).")
        params = sample_view_parameters(self.view, batch, images.shape[1:],
                                        self.seed_generator)
        return apply_view(images, self.view, params, self.image_size)

    # Keras saves a layer's own variables but not its seed generator's
    # state; saving it too makes a resumed run draw the views it would have.
    _SEED_KEY = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables(
            {k: store[k] for k in keys if k != self._SEED_KEY})

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size,
                input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "view": dataclasses.asdict(self.view),
            "image_size": self.image_size,
            "seed": self.seed,
        }


def view_specs(scheme):
    """The pair of ``ViewSpec`` of a device-capable scheme (a name of
    ``SCHEMES`` or a pair of ``ViewSpec``); anything else (``"digits"``,
    callables) raises a ``ValueError`` naming ``--augment-on``."""
    if isinstance(scheme, str):
        key = scheme.lower().replace("-", "_")
        if key not in SCHEMES:
            raise ValueError(
                f"Augmentation scheme {scheme!r} cannot run on the device "
                f"(--augment-on device); device schemes: "
                f"{', '.join(DEVICE_SCHEMES)}. The 'digits' scheme and "
                "custom callables are host-only: use --augment-on host.")
        return SCHEMES[key]
    if (isinstance(scheme, (tuple, list)) and len(scheme) == 2
            and all(isinstance(s, ViewSpec) for s in scheme)):
        return tuple(scheme)
    raise ValueError(
        "Device augmentation (--augment-on device) takes a scheme name "
        f"({', '.join(DEVICE_SCHEMES)}) or a pair of ViewSpec; got "
        f"{scheme!r}. No augmentation and custom callables are host-only: "
        "use --augment-on host.")


def device_augmentations(scheme, image_size, seed=None, local_crops=0,
                         local_size=None):
    """One ``DeviceAugmentation`` per view of ``scheme`` (a name of
    ``SCHEMES`` or a pair of ``ViewSpec``), for
    ``AdaDimModel(augmentation=...)``; view ``i`` is seeded with
    ``2 * seed + i`` (None: Keras' global seed).

    ``local_crops`` = k > 0: multi-crop (SwAV, DINO), the ``2 + k`` views
    of ``keras_adadim.data.augment.multi_crop(scheme, k, image_size,
    local_size)``: the two views as global crops of side ``image_size``,
    then k local crops of side ``local_size`` (default 3/7 of
    ``image_size``), the same specs as the host path's; local crop ``j``
    is seeded with ``2**30 + 64 * seed + j`` (apart from every seed's
    global views)."""
    specs = view_specs(scheme)
    if int(local_crops or 0) > 0:
        from keras_adadim.data.augment import multi_crop

        specs = multi_crop(specs, int(local_crops), image_size, local_size)

    def view_seed(i):
        if seed is None:
            return None
        if i < 2:
            return (2 * int(seed) + i) % 2**31
        return (2**30 + 64 * int(seed) + i - 2) % 2**31

    return tuple(
        DeviceAugmentation(spec, spec.size or image_size, seed=view_seed(i),
                           name=f"device_augmentation_{i + 1}")
        for i, spec in enumerate(specs))


__all__ = [
    "DEVICE_SCHEMES",
    "DeviceAugmentation",
    "apply_view",
    "crop_and_resize",
    "device_augmentations",
    "sample_view_parameters",
    "view_specs",
]
