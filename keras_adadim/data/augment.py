"""The paper's two-view augmentation schemes as stateless per-image
``tf.data`` map functions.

``make_augmentation(scheme, image_size, channels)`` returns a pair
``(view1, view2)`` of functions ``fn(image, seed) -> view``: ``image`` is a
float32 ``[H, W, C]`` tensor in [0, 1] (any ``H``, ``W``), ``seed`` an
integer tensor of shape ``[2]``, ``view`` a float32
``[image_size, image_size, C]`` tensor in [0, 1]. They are built only from
TensorFlow *stateless* random ops (``tf.random.stateless_*``), so

* they run inside ``tf.data`` (on the CPU, before the batch reaches the
  model), whatever the Keras backend (TensorFlow, JAX or PyTorch);
* a view is a pure function of ``(image, seed)``: the pipelines in
  ``keras_adadim.data.datasets`` derive every seed from ``(seed, epoch,
  position)``, which makes a run reproducible and resumable mid-epoch.

Schemes (``SCHEMES``; probabilities per view, Table 11 of the paper):

=================  =========  =========  =========  =========  ==========
op                 asym. v1   asym. v2   ReSSL v1   ReSSL v2   symmetric
=================  =========  =========  =========  =========  ==========
random resized crop    1          1          1          1          1
colour jitter         0.8        0.8         0         0.8        0.8
grayscale             0.2        0.2         0         0.2        0.2
Gaussian blur         1.0        0.1         0          0         0.5
solarisation           0         0.2         0         0.2         0
horizontal flip       0.5        0.5        0.5        0.5        0.5
=================  =========  =========  =========  =========  ==========

* Crop: scale (0.08, 1.0) of the area, aspect ratio (3/4, 4/3) sampled
  log-uniformly, 10 attempts then the whole image (torchvision's
  ``RandomResizedCrop``), resized bilinearly (antialiased) to
  ``image_size``.
* Colour jitter (asymmetric, ReSSL; BYOL's values): brightness 0.4,
  contrast 0.4, saturation 0.2, hue 0.1, applied in a random order with
  torchvision's ``ColorJitter`` semantics (multiplicative brightness
  factor in [0.6, 1.4]; contrast blends with the mean gray level;
  saturation blends with the grayscale image; hue shifts by up to 0.1 of a
  turn).
* Grayscale: ITU-R 601 luma (the weights of ``tf.image.rgb_to_grayscale``),
  repeated to 3 channels.
* Gaussian blur: sigma uniform in [0.1, 2.0], a separable kernel of about
  10 % of the image size, made odd (SimCLR's rule: 3 px at 32, 7 at 64,
  9 at 96, 23 at 224), reflect padding.
* Solarisation: pixels >= 0.5 become ``1 - x`` (PIL's ``ImageOps.solarize``
  at its default threshold 128, as in solo-learn).
* ``"ressl"`` view 1 is the weak view (crop + flip only; the momentum /
  teacher branch in ReSSL), view 2 the strong one.
* ``"symmetric"`` (SimCLR; the paper's comparison runs, Table 10): both
  views colour jitter p = 0.8 with brightness 0.8, contrast 0.8,
  saturation 0.8, hue 0.2, grayscale 0.2, blur 0.5, no solarisation.
  Source: solo-learn's ``scripts/pretrain/cifar/augmentations/symmetric.yaml``
  (the paper states it uses solo-learn's settings), which is SimCLR's
  colour strength 1.0 (Chen et al. 2020, Appendix A).
* ``"digits"``: ``keras_adadim.data.digits.digits_views()`` for both views
  (8x8x1 only: one-pixel translations, contrast, brightness, noise and a
  3x3 erased patch; no crops or flips, which change a digit at this size).
  Its views are clipped to [-0.5, 1.5], not [0, 1], as the shipped digits
  model was trained.

**Multi-crop** (``multi_crop``; ``pretraining_dataset(..., local_crops=k)``):
the scheme's two views become the two *global* crops, at ``image_size``
with crop scale (0.14, 1.0), plus k *local* crops at a smaller size
(``local_crop_size``: 3/7 of ``image_size``, 96 px at 224, 14 px at 32)
with crop scale (0.05, 0.14), one tuple of ``ViewSpec``. Sources: SwAV
(Caron et al., 2020, Sec. 3.2 and Appendix A.1: 2x224 px crops at scale
(0.14, 1) + 6x96 px at (0.05, 0.14); also mmselfsup's
``swav_mcrop-2-6_sz224_96`` configuration); DINO (Caron et al., 2021,
Sec. 3.1; its ``main_dino.py``: 2x224 px at (0.4, 1) + 8x96 px at
(0.05, 0.4), local crops with flip, colour jitter and grayscale as the
global ones, blur p = 0.5 and no solarisation). SwAV's split at 0.14 is
the default; ``multi_crop(..., global_scale=(0.4, 1.0),
local_scale=(0.05, 0.4))`` gives DINO's. The local views take the
scheme's view-1 ops with DINO's local blur (p <= 0.5) and no
solarisation. solo-learn's CIFAR configurations (``swav.yaml`` with
``symmetric.yaml``, ``dino.yaml`` with ``asymmetric.yaml``) train on two
32 px crops; multi-crop is off by default here too.

Grayscale inputs (``channels=1``): saturation, hue and the grayscale op are
skipped (they are no-ops on a gray image); brightness and contrast stay.

Differences from solo-learn's CIFAR configuration files, on purpose: these
follow Table 11 of the paper, which lists Gaussian blur with p = 1.0 / 0.1
for the asymmetric scheme (solo-learn's ``cifar/asymmetric.yaml`` disables
blur at 32 px) and no blur in ReSSL view 2 (solo-learn's ``cifar/ressl.yaml``
has 0.5). Use ``make_augmentation((ViewSpec(...), ViewSpec(...)), ...)``
for another recipe.

Why not keras-cv: everything here is a few plain ``tf.image`` /
``tf.random.stateless_*`` ops, which are all that is needed (crop, flip,
jitter, grayscale, blur, solarisation). keras-cv (0.9.0, its last release)
is frozen upstream, depends on ``keras-core``, ``kagglehub`` and ``regex``
(it does import with Keras 3.15 once those are installed), and its layers
draw randomness from Keras seed generators rather than per-image stateless
seeds, which would break the (seed, epoch, position) reproducibility the
pipelines rely on. So it is not a dependency and
``keras_adadim/data/_keras_cv.py`` does not exist.
"""

import dataclasses
import functools
import math

SCHEME_NAMES = ("asymmetric", "ressl", "symmetric", "digits")


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """The random ops of one view and their probabilities (see the module
    docstring for what each does), and its side ``size`` in pixels (None:
    the pipeline's ``image_size``; multi-crop's local views are smaller)."""

    crop: bool = True
    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    flip_p: float = 0.5
    size: object = None


# BYOL's colour jitter, used by both of the paper's schemes (Table 11).
_BYOL_JITTER = dict(
    jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1
)
# SimCLR, colour strength 1.0 (solo-learn cifar/symmetric.yaml).
_SIMCLR_VIEW = ViewSpec(
    jitter_p=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
    grayscale_p=0.2, blur_p=0.5,
)

SCHEMES = {
    "asymmetric": (
        ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=1.0),
        ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=0.1, solarize_p=0.2),
    ),
    "ressl": (
        ViewSpec(),
        ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, solarize_p=0.2),
    ),
    "symmetric": (_SIMCLR_VIEW, _SIMCLR_VIEW),
}


def blur_kernel_size(image_size):
    """SimCLR's Gaussian-blur kernel: ``image_size // 10`` made odd
    (radius ``k // 2``, size ``2 * radius + 1``), at least 3."""
    radius = max(1, int(image_size) // 10 // 2)
    return 2 * radius + 1


def make_augmentation(scheme, image_size, channels=3):
    """A pair ``(view1, view2)`` of stateless per-image augmentations.

    Args:
        scheme: ``"asymmetric"``, ``"ressl"``, ``"symmetric"`` or
            ``"digits"`` (see the module docstring); a pair of ``ViewSpec``;
            a callable ``fn(image, seed) -> view`` (used for both views); or
            a pair of callables ``(fn1, fn2)``. User callables receive the
            float32 [0, 1] image at its stored size and must return a view
            of a fixed size.
        image_size: side of the square views, e.g. 32, 64, 96 or 224.
        channels: channels of the images, 1 or 3 (the views keep them).

    Returns:
        ``(view1, view2)``, each ``fn(image, seed) -> view``.
    """
    if callable(scheme):
        return scheme, scheme
    if isinstance(scheme, (tuple, list)):
        if len(scheme) != 2:
            raise ValueError(
                "An augmentation pair must have exactly two elements "
                f"(view 1, view 2); got {len(scheme)}."
            )
        if all(isinstance(s, ViewSpec) for s in scheme):
            image_size, channels = _check_size(image_size, channels)
            return tuple(
                view_augmentation(s, image_size, channels) for s in scheme
            )
        if all(callable(s) for s in scheme):
            return tuple(scheme)
        raise TypeError(
            "An augmentation pair must hold two callables or two ViewSpec; "
            f"got {[type(s).__name__ for s in scheme]}."
        )
    if not isinstance(scheme, str):
        raise TypeError(
            f"`scheme` must be a name ({', '.join(SCHEME_NAMES)}), a "
            f"callable or a pair; got {type(scheme).__name__}."
        )
    key = scheme.lower().replace("-", "_")
    if key == "digits":
        if image_size not in (None, 8) or channels != 1:
            raise ValueError(
                "The 'digits' scheme is for 8x8x1 images (scikit-learn's "
                f"digits); got image_size={image_size}, channels={channels}. "
                "Use 'asymmetric' or 'ressl' for other images."
            )
        from keras_adadim.data.digits import digits_views

        return digits_views(), digits_views()
    if key not in SCHEMES:
        import difflib

        close = difflib.get_close_matches(key, SCHEME_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown augmentation scheme {scheme!r}; known: "
            f"{', '.join(SCHEME_NAMES)}, or pass a callable "
            f"fn(image, seed) or a pair of them.{hint}"
        )
    image_size, channels = _check_size(image_size, channels)
    return tuple(
        view_augmentation(s, image_size, channels) for s in SCHEMES[key]
    )


def _check_size(image_size, channels):
    if image_size is None or int(image_size) < 1:
        raise ValueError(
            f"`image_size` must be a positive int; got {image_size!r}."
        )
    if channels not in (1, 3):
        raise ValueError(
            f"`channels` must be 1 or 3; got {channels!r}. Load the data "
            "with `channels=1` or `channels=3` to convert it."
        )
    return int(image_size), int(channels)


# Multi-crop (module docstring): SwAV's global / local crop scales.
GLOBAL_CROP_SCALE = (0.14, 1.0)
LOCAL_CROP_SCALE = (0.05, 0.14)
# Local crop side / global side: SwAV's and DINO's 96 px at 224 px.
LOCAL_SIZE_RATIO = 3.0 / 7.0


def local_crop_size(image_size):
    """The default side of multi-crop's local views: 3/7 of
    ``image_size`` (96 at 224, 41 at 96, 14 at 32), at least 2."""
    return max(2, int(round(int(image_size) * LOCAL_SIZE_RATIO)))


def multi_crop(scheme, local_crops, image_size=None, local_size=None,
               global_scale=GLOBAL_CROP_SCALE, local_scale=LOCAL_CROP_SCALE):
    """The multi-crop views of a scheme as one tuple of ``2 + local_crops``
    ``ViewSpec``: its two views as the global crops (crop scale
    ``global_scale``, side: the pipeline's ``image_size``), then
    ``local_crops`` local crops (crop scale ``local_scale``, side
    ``local_size``, default ``local_crop_size(image_size)``; view 1's ops
    with blur p <= 0.5 and no solarisation, DINO's local transformation).
    Sources in the module docstring.

    Args:
        scheme: a scheme name of ``SCHEMES`` or a pair of ``ViewSpec``.
        local_crops: k >= 1.
        image_size: the global views' side (needed for the default
            ``local_size``).
        local_size: the local views' side.
        global_scale, local_scale: crop scales (fractions of the area).
    """
    local_crops = int(local_crops)
    if local_crops < 1:
        raise ValueError(f"`local_crops` must be >= 1; got {local_crops}.")
    specs = _scheme_specs(scheme)
    if local_size is None:
        if image_size is None:
            raise ValueError(
                "multi_crop needs `image_size` (or `local_size`) to size the "
                "local crops.")
        local_size = local_crop_size(image_size)
    local_size = int(local_size)
    if local_size < 2 or (image_size is not None
                          and local_size > int(image_size)):
        raise ValueError(
            f"The local crops' size (local_crop_size, --local-crop-size) "
            f"must be in 2..{image_size if image_size else 'image_size'} "
            f"(smaller than the global views); got {local_size}.")
    glob = tuple(dataclasses.replace(s, crop=True,
                                     crop_scale=tuple(global_scale))
                 for s in specs)
    local = dataclasses.replace(
        specs[0], crop=True, crop_scale=tuple(local_scale), size=local_size,
        blur_p=min(specs[0].blur_p, 0.5), solarize_p=0.0)
    return glob + (local,) * local_crops


def _scheme_specs(scheme):
    """The pair of ``ViewSpec`` of a scheme name or a pair; anything else
    (``"digits"``, callables) raises, naming the fix."""
    if isinstance(scheme, (tuple, list)) and len(scheme) == 2 and all(
            isinstance(s, ViewSpec) for s in scheme):
        return tuple(scheme)
    key = scheme.lower().replace("-", "_") if isinstance(scheme, str) \
        else None
    if key in SCHEMES:
        return SCHEMES[key]
    raise ValueError(
        f"Multi-crop (local_crops, --local-crops) needs a scheme of random "
        f"resized crops ({', '.join(SCHEMES)}) or a pair of ViewSpec; got "
        f"{scheme!r}. The 'digits' scheme makes no crops (8x8 images): "
        "pass --augmentation asymmetric (augmentation='asymmetric'), or "
        "--local-crops 0.")


def make_views(scheme, image_size, channels=3, local_crops=0,
               local_crop_size=None):
    """The tuple of per-view augmentations ``fn(image, seed) -> view`` of a
    pipeline: ``make_augmentation``'s pair; N of them for a tuple of N
    ``ViewSpec`` (each at its ``size``, else ``image_size``) or N callables;
    with ``local_crops`` = k > 0 the ``2 + k`` of ``multi_crop(scheme, k,
    image_size, local_crop_size)``."""
    if local_crops:
        scheme = multi_crop(scheme, local_crops, image_size, local_crop_size)
    elif local_crop_size is not None:
        raise ValueError(
            f"local_crop_size={local_crop_size} (--local-crop-size) without "
            "local crops: pass local_crops=k (--local-crops K) too, or drop "
            "it.")
    if isinstance(scheme, (tuple, list)) and len(scheme) != 2:
        if len(scheme) < 2:
            raise ValueError(
                f"A tuple of views needs at least two; got {len(scheme)}.")
        if all(isinstance(s, ViewSpec) for s in scheme):
            image_size, channels = _check_size(image_size, channels)
            return tuple(view_augmentation(s, image_size, channels)
                         for s in scheme)
        if all(callable(s) for s in scheme):
            return tuple(scheme)
        raise TypeError(
            "A tuple of views must hold callables or ViewSpec; got "
            f"{[type(s).__name__ for s in scheme]}.")
    return tuple(make_augmentation(scheme, image_size, channels))


def view_augmentation(spec, image_size, channels=3):
    """One view's augmentation ``fn(image, seed) -> view`` from a
    ``ViewSpec``. Ops with probability 0 are left out of the graph.

    The view's side is ``spec.size``, else ``image_size``. The function is
    a ``tf.function``, cached per ``(spec, image_size, channels)``: every
    pipeline of a process that uses it shares one trace (tracing it costs
    about a second; running it well under a millisecond per image)."""
    if not isinstance(spec, ViewSpec):
        raise TypeError(f"`spec` must be a ViewSpec; got {spec!r}.")
    if spec.size is not None:  # the view's own size wins
        image_size = spec.size
    image_size, channels = _check_size(image_size, channels)
    return _view_augmentation(spec, image_size, channels)


@functools.lru_cache(maxsize=64)
def _view_augmentation(spec, image_size, channels):
    import tensorflow as tf

    color = channels == 3
    kernel_size = blur_kernel_size(image_size)
    ops = jitter_ops(spec, channels)

    def maybe(p, seed, fn, x, skip_work=False):
        # Cheap ops are computed and selected with `where` (no control
        # flow: tracing a tf.cond costs far more than these ops); the blur
        # is skipped with a tf.cond when not drawn.
        if p <= 0:
            return x
        if p >= 1:
            return fn(x)
        apply = drawn(p, seed)
        if skip_work:
            return tf.cond(apply, lambda: fn(x), lambda: x)
        return tf.where(apply, fn(x), x)

    # Plain TensorFlow ops without tensor-dependent Python control flow, so
    # no AutoGraph (which would make tracing several times slower); one
    # trace for every image size and seed dtype.
    @functools.partial(
        tf.function,
        autograph=False,
        input_signature=(
            tf.TensorSpec((None, None, channels), tf.float32),
            tf.TensorSpec((2,), tf.int64),
        ),
    )
    def traced(x, seed):
        s = tf.random.experimental.stateless_split(seed, 10)
        if spec.crop:
            x = random_resized_crop(
                x, image_size, spec.crop_scale, spec.crop_ratio, s[0]
            )
        else:
            x = tf.image.resize(
                x, (image_size, image_size), antialias=True
            )
        x = tf.ensure_shape(x, (image_size, image_size, channels))
        if ops and spec.jitter_p > 0:
            x = maybe(
                spec.jitter_p, s[1],
                lambda v: color_jitter(v, ops, s[2]), x,
            )
        if color:
            x = maybe(spec.grayscale_p, s[3], _grayscale3, x)
        x = maybe(
            spec.blur_p, s[4],
            lambda v: gaussian_blur(v, kernel_size, spec.blur_sigma, s[5]),
            x, skip_work=True,
        )
        x = maybe(
            spec.solarize_p, s[6],
            lambda v: solarize(v, spec.solarize_threshold), x,
        )
        x = maybe(spec.flip_p, s[7], lambda v: tf.reverse(v, axis=[1]), x)
        x = tf.clip_by_value(x, 0.0, 1.0)
        return tf.ensure_shape(x, (image_size, image_size, channels))

    def augment(image, seed):
        image = tf.convert_to_tensor(image, tf.float32)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        return tf.ensure_shape(
            traced(image, seed), (image_size, image_size, channels)
        )

    return augment


def jitter_ops(spec, channels=3):
    """The colour-jitter ops of a view, ``[(name, strength), ...]`` in
    torchvision's order, those of strength 0 left out (saturation and hue
    too for grayscale images). The device path uses the same list."""
    color = channels == 3
    return [
        (name, strength)
        for name, strength in (
            ("brightness", spec.brightness),
            ("contrast", spec.contrast),
            ("saturation", spec.saturation if color else 0.0),
            ("hue", spec.hue if color else 0.0),
        )
        if strength > 0
    ]


def drawn(p, seed):
    """Whether an op of probability ``p`` is applied: a bool tensor."""
    import tensorflow as tf

    return tf.random.stateless_uniform((), seed) < p


def view_parameters(spec, image_shape, seed):
    """The random parameters ``view_augmentation(spec, ...)`` draws for an
    image of shape ``image_shape`` (H, W, C) and a seed of shape [2]: a
    dict of tensors with the keys of
    ``keras_adadim.data.device_augment.sample_view_parameters`` (crop box
    ``top``, ``left``, ``height``, ``width``; flags ``jitter``,
    ``grayscale``, ``blur``, ``solarize``, ``flip``; ``sigma``; jitter
    ``factors`` (one per op of ``jitter_ops``, hue as its shift) and
    ``order``). The same helpers and seed splits as the view itself, so the
    host path's distributions can be compared with the device path's."""
    import tensorflow as tf

    h, w, channels = (int(d) for d in image_shape)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    s = tf.random.experimental.stateless_split(seed, 10)
    if spec.crop:
        top, left, ch, cw = crop_box(h, w, spec.crop_scale, spec.crop_ratio,
                                     s[0])
    else:
        top, left, ch, cw = (tf.constant(v) for v in (0, 0, h, w))
    ops = jitter_ops(spec, channels)
    factors, order = jitter_factors(ops, s[2]) if ops else (
        tf.zeros((0,)), tf.zeros((0,), tf.int32))
    return {
        "top": top, "left": left, "height": ch, "width": cw,
        "jitter": drawn(spec.jitter_p, s[1]) if ops else tf.constant(False),
        "factors": factors, "order": order,
        "grayscale": (drawn(spec.grayscale_p, s[3]) if channels == 3
                      else tf.constant(False)),
        "blur": drawn(spec.blur_p, s[4]),
        "sigma": blur_sigma(spec.blur_sigma, s[5]),
        "solarize": drawn(spec.solarize_p, s[6]),
        "flip": drawn(spec.flip_p, s[7]),
    }


def crop_box(h_in, w_in, scale, ratio, seed):
    """torchvision's ``RandomResizedCrop.get_params`` with stateless
    randomness: 10 (area, log-aspect) draws, the first that fits is used,
    else the whole image (clamped to ``ratio``, centred). Returns int32
    ``(top, left, height, width)``."""
    import tensorflow as tf

    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    h_in = tf.cast(h_in, tf.int32)
    w_in = tf.cast(w_in, tf.int32)
    hf, wf = tf.cast(h_in, tf.float32), tf.cast(w_in, tf.float32)
    u = tf.random.stateless_uniform((10, 2), s1)
    area = hf * wf * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(lo + (hi - lo) * u[:, 1])
    w = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    h = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    ok = (w > 0) & (h > 0) & (w <= w_in) & (h <= h_in)
    first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
    found = tf.reduce_any(ok)
    # Fallback: the whole image, clamped to the aspect-ratio range.
    in_ratio = wf / hf
    fw = tf.where(
        in_ratio > ratio[1],
        tf.cast(tf.round(hf * ratio[1]), tf.int32), w_in,
    )
    fh = tf.where(
        in_ratio < ratio[0],
        tf.cast(tf.round(wf / ratio[0]), tf.int32), h_in,
    )
    ch = tf.where(found, h[first], fh)
    cw = tf.where(found, w[first], fw)
    v = tf.random.stateless_uniform((2,), s2)
    top = tf.where(
        found,
        tf.minimum(
            tf.cast(v[0] * tf.cast(h_in - ch + 1, tf.float32), tf.int32),
            h_in - ch,
        ),
        (h_in - ch) // 2,
    )
    left = tf.where(
        found,
        tf.minimum(
            tf.cast(v[1] * tf.cast(w_in - cw + 1, tf.float32), tf.int32),
            w_in - cw,
        ),
        (w_in - cw) // 2,
    )
    return top, left, ch, cw


def random_resized_crop(image, size, scale=(0.08, 1.0), ratio=(0.75, 4 / 3),
                        seed=(0, 0)):
    """torchvision's ``RandomResizedCrop`` with stateless randomness: 10
    (area, log-aspect) draws, the first that fits is used, else the whole
    image (clamped to ``ratio``, centred); then a bilinear, antialiased
    resize to ``size x size``."""
    import tensorflow as tf

    shape = tf.shape(image)
    top, left, ch, cw = crop_box(shape[0], shape[1], scale, ratio, seed)
    crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([ch, cw, -1]))
    out = tf.image.resize(crop, (size, size), method="bilinear",
                          antialias=True)
    return tf.clip_by_value(out, 0.0, 1.0)


LUMA = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's weights


def _gray(x):
    """Luma ``[H, W, 1]`` of an RGB image (ITU-R 601, as
    ``tf.image.rgb_to_grayscale``)."""
    import tensorflow as tf

    return tf.reduce_sum(x * tf.constant(LUMA, x.dtype), -1, keepdims=True)


def _grayscale3(x):
    import tensorflow as tf

    return tf.tile(_gray(x), (1, 1, 3))


def color_jitter(x, ops, seed):
    """torchvision-style ``ColorJitter``: each op in ``ops`` (pairs
    ``(name, strength)``; names brightness / contrast / saturation / hue)
    once, in a random order, clipped to [0, 1] after each, with factors
    drawn from ``seed``:

    * brightness ``f``: ``f * x``;
    * contrast ``f``: ``f * x + (1 - f) * mean(gray(x))``;
    * saturation ``f``: ``f * x + (1 - f) * gray(x)``;
    * hue ``h``: ``tf.image.adjust_hue(x, h)``;

    ``f`` uniform in ``[max(0, 1 - s), 1 + s]``, ``h`` in ``[-s, s]``.
    The first three are one affine form ``a x + b gray(x) + c mean`` whose
    coefficients are looked up for the op drawn at each step (no control
    flow, a small graph).
    """
    import tensorflow as tf

    names = [name for name, _ in ops]
    known = {"brightness", "contrast", "saturation", "hue"}
    if set(names) - known:
        raise ValueError(f"Unknown colour-jitter ops {set(names) - known}.")
    color = x.shape[-1] == 3
    factors, order = jitter_factors(ops, seed)
    one, zero = tf.constant(1.0), tf.constant(0.0)
    a, b, c, hue = [], [], [], zero
    for i, (name, strength) in enumerate(ops):
        f = factors[i]
        if name == "hue":
            hue = f
            a.append(one), b.append(zero), c.append(zero)
        else:
            a.append(f)
            b.append(1.0 - f if name == "saturation" else zero)
            c.append(1.0 - f if name == "contrast" else zero)
    a, b, c = tf.stack(a), tf.stack(b), tf.stack(c)
    hue_index = names.index("hue") if "hue" in names else -1
    for step in range(len(ops)):
        i = order[step]
        gray = _gray(x) if color else x
        y = tf.gather(a, i) * x + tf.gather(b, i) * gray + tf.gather(
            c, i) * tf.reduce_mean(gray)
        if hue_index >= 0 and color:
            y = tf.where(tf.equal(i, hue_index),
                         tf.image.adjust_hue(x, hue), y)
        x = tf.clip_by_value(y, 0.0, 1.0)
    return x


def jitter_factors(ops, seed):
    """The factors of ``color_jitter``'s ops (``f`` uniform in
    ``[max(0, 1 - s), 1 + s]``; hue's shift uniform in ``[-s, s]``) and
    the order they are applied in (a uniformly random permutation)."""
    import tensorflow as tf

    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    u = tf.random.stateless_uniform((len(ops),), s1)
    order = tf.argsort(tf.random.stateless_uniform((len(ops),), s2))
    factors = []
    for i, (name, strength) in enumerate(ops):
        if name == "hue":
            factors.append(strength * (2.0 * u[i] - 1.0))
        else:
            low = max(0.0, 1.0 - strength)
            factors.append(low + (1.0 + strength - low) * u[i])
    return tf.stack(factors), order


def blur_sigma(sigma_range, seed):
    """The blur's sigma, uniform in ``sigma_range``."""
    import tensorflow as tf

    return tf.random.stateless_uniform(
        (), seed, sigma_range[0], sigma_range[1]
    )


def gaussian_blur(x, kernel_size, sigma_range, seed):
    """Separable Gaussian blur with sigma uniform in ``sigma_range``,
    reflect padding, same size out."""
    import tensorflow as tf

    sigma = blur_sigma(sigma_range, seed)
    radius = kernel_size // 2
    r = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-(r**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    c = x.shape[-1]
    kv = tf.tile(tf.reshape(k, (kernel_size, 1, 1, 1)), (1, 1, c, 1))
    kh = tf.tile(tf.reshape(k, (1, kernel_size, 1, 1)), (1, 1, c, 1))
    pad = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
    y = tf.pad(x[None], pad, mode="REFLECT")
    y = tf.nn.depthwise_conv2d(y, kv, (1, 1, 1, 1), "VALID")
    y = tf.nn.depthwise_conv2d(y, kh, (1, 1, 1, 1), "VALID")
    return y[0]


def solarize(x, threshold=0.5):
    """Pixels >= ``threshold`` become ``1 - x``."""
    import tensorflow as tf

    return tf.where(x < threshold, x, 1.0 - x)


def save_sample_views(data, path, scheme="auto", image_size=None, n=8,
                      seed=0, local_crops=0, local_crop_size=None):
    """Write a PNG grid of ``n`` images: originals, view 1 and view 2 (one
    row each, labelled), and with multi-crop every local view too (a row
    each, at its own size), as the pre-training pipeline makes them.

    Args:
        data: an ``ImageDataset`` (``load_dataset`` / ``from_arrays``) or an
            array of images (uint8, or float in [0, 1]).
        path: output file (``.png``).
        scheme: as ``pretraining_dataset``'s ``augmentation`` (``"auto"``:
            ``"digits"`` for digits, else ``"asymmetric"``).
        image_size: view size (``None``: the images' own size).
        n: number of images (the first ``n`` of the split).
        seed: augmentation seed.
        local_crops, local_crop_size: multi-crop's local views (as
            ``pretraining_dataset``'s).

    Returns:
        ``path``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the env
        raise ImportError(
            "save_sample_views needs matplotlib: `pip install matplotlib` "
            "(or `pip install keras-adadim[plot]`)."
        ) from e
    import numpy as np
    import tensorflow as tf

    from keras_adadim.data import pipeline
    from keras_adadim.data.sources.arrays import from_arrays
    from keras_adadim.data.sources.common import ImageDataset

    if not isinstance(data, ImageDataset):
        data = from_arrays(np.asarray(data))
    image_size = pipeline.resolve_image_size(data, image_size)
    scheme = pipeline.resolve_scheme(data, scheme)
    fns = make_views(scheme, image_size, data.image_shape[-1],
                     local_crops=int(local_crops or 0),
                     local_crop_size=local_crop_size)
    originals, labels = pipeline.to_numpy(data, max_examples=n)
    n = len(originals)
    if n == 0:
        raise ValueError(f"{data.name!r} has no images to show.")
    views = [[] for _ in fns]
    for i in range(n):
        # As many seeds as views; the first two are the two-view ones.
        s = tf.random.experimental.stateless_split(
            tf.constant([seed, i], tf.int64), max(2, len(fns))
        )
        x = tf.constant(originals[i])
        for j, fn in enumerate(fns):
            views[j].append(np.asarray(fn(x, s[j])))
    rows = [list(originals), *views]
    titles = ["original", "view 1", "view 2"] + [
        f"local {j} ({views[j + 1][0].shape[0]} px)"
        for j in range(1, len(fns) - 1)]
    fig = Figure(figsize=(1.4 * n + 1.0, 1.5 * len(rows) + 0.1))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r in range(len(rows)):
        for c in range(n):
            ax = axes[r][c]
            img = np.clip(rows[r][c], 0.0, 1.0)
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(titles[r])
            if r == 0 and labels[c] >= 0:
                name = (
                    data.class_names[labels[c]]
                    if data.class_names else str(labels[c])
                )
                ax.set_title(name, fontsize=8)
    name = scheme if isinstance(scheme, str) else "custom"
    crops = (f" + {len(fns) - 2} local crops" if len(fns) > 2 else "")
    fig.suptitle(f"{data.name}: {name} views at {image_size} px{crops}")
    fig.savefig(path, dpi=100)
    return path


__all__ = [
    "SCHEMES",
    "SCHEME_NAMES",
    "ViewSpec",
    "blur_kernel_size",
    "crop_box",
    "jitter_ops",
    "local_crop_size",
    "make_augmentation",
    "make_views",
    "multi_crop",
    "random_resized_crop",
    "save_sample_views",
    "view_augmentation",
    "view_parameters",
]
