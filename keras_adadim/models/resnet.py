"""ResNet-18/34/50 encoders (torchvision topology) built from ``keras.layers``.

The networks match ``torchvision.models.resnet{18,34,50}`` with the final
``fc`` removed (the paper's encoders, SPEC "Experimental settings"):

* BasicBlock (two 3x3 convs) for ResNet-18/34 and Bottleneck (1x1, 3x3,
  1x1 with expansion 4) for ResNet-50, the stride on the 3x3 conv
  ("ResNet v1.5", as torchvision);
* BatchNorm after every convolution (torchvision's momentum 0.1 and eps 1e-5,
  i.e. Keras ``momentum=0.9, epsilon=1e-5``), convolutions without bias;
* a 1x1 conv + BN shortcut where the shape changes;
* global average pooling at the end: the output is the representation R of
  size 512 (ResNet-18/34) or 2048 (ResNet-50), times ``width_multiplier``.

Padding is explicit (``ZeroPadding2D`` + ``"valid"``) wherever a stride is 2,
so feature-map sizes and alignment equal PyTorch's symmetric padding for any
input size, even or odd; trainable-parameter counts equal torchvision's
parameter counts (11,176,512 / 21,284,672 / 23,508,032 without ``fc``).

Stems:

* ``"imagenet"``: 7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2;
* ``"cifar"``: 3x3 conv stride 1 (padding 1), BN, ReLU, no max-pool — the
  usual CIFAR modification. (solo-learn, which the paper follows, pads this
  conv by 2, giving 34x34 maps for 32x32 inputs; the parameter count is the
  same.)
* ``"auto"``: ``"cifar"`` for images of at most 64 px, else ``"imagenet"``.

Layer names follow torchvision's ``state_dict`` keys with ``.`` replaced by
``_`` (``conv1``, ``bn1``, ``layer2_0_conv1``, ``layer2_0_downsample_conv``,
...), so they are stable across versions and weights can be ported by name.
"""

import keras
from keras import layers

# depth -> (block type, blocks per stage)
RESNET_CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
STEMS = ("auto", "cifar", "imagenet")
BASE_WIDTHS = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
# Smallest image side for which each stem keeps every stage meaningful
# (cifar: 3 stride-2 stages, 8 -> 1 px; imagenet: 5 stride-2 steps, 32 -> 1).
MIN_SIZE = {"cifar": 8, "imagenet": 32}
AUTO_STEM_MAX_SIZE = 64

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu")
_CONV_INIT = {
    "class_name": "VarianceScaling",
    "config": {
        "scale": 2.0,
        "mode": "fan_out",
        "distribution": "untruncated_normal",
    },
}
_BN = {"momentum": 0.9, "epsilon": 1e-5}


def resolve_stem(stem, input_shape):
    """``"auto"`` -> ``"cifar"`` for images of at most 64 px, else
    ``"imagenet"``; checks the name and the minimum image size."""
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}; got {stem!r}.")
    sides = [s for s in tuple(input_shape)[:2] if s is not None]
    if stem == "auto":
        if len(sides) < 2:
            raise ValueError(
                f"stem='auto' needs a known image size; got input_shape "
                f"{tuple(input_shape)}. Pass stem='cifar' or "
                "stem='imagenet'."
            )
        stem = "cifar" if max(sides) <= AUTO_STEM_MAX_SIZE else "imagenet"
    if sides and min(sides) < MIN_SIZE[stem]:
        raise ValueError(
            f"Images of {tuple(input_shape)[:2]} px are too small for the "
            f"{stem!r} stem (at least {MIN_SIZE[stem]} px per side)."
            + (" Use stem='cifar' for small images." if stem == "imagenet" else "")
        )
    return stem


def scaled_width(channels, width_multiplier):
    """Channel count ``channels * width_multiplier``, rounded, at least 1."""
    return max(1, int(round(channels * width_multiplier)))


def _conv(x, filters, kernel, stride, name):
    """Conv (no bias) with PyTorch padding ``kernel // 2``."""
    pad = kernel // 2
    if stride > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if pad else "valid"
    return layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name=name,
    )(x)


def _bn(x, name, zero_gamma=False):
    return layers.BatchNormalization(
        **_BN,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )(x)


def _basic_block(x, planes, stride, name, zero_init_residual):
    out_channels = planes
    shortcut = x
    y = _conv(x, planes, 3, stride, f"{name}_conv1")
    y = _bn(y, f"{name}_bn1")
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, planes, 3, 1, f"{name}_conv2")
    y = _bn(y, f"{name}_bn2", zero_gamma=zero_init_residual)
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, stride, f"{name}_downsample_conv")
        shortcut = _bn(shortcut, f"{name}_downsample_bn")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x, planes, stride, name, zero_init_residual):
    out_channels = planes * EXPANSION["bottleneck"]
    shortcut = x
    y = _conv(x, planes, 1, 1, f"{name}_conv1")
    y = _bn(y, f"{name}_bn1")
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, planes, 3, stride, f"{name}_conv2")  # v1.5: stride here
    y = _bn(y, f"{name}_bn2")
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = _conv(y, out_channels, 1, 1, f"{name}_conv3")
    y = _bn(y, f"{name}_bn3", zero_gamma=zero_init_residual)
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, stride, f"{name}_downsample_conv")
        shortcut = _bn(shortcut, f"{name}_downsample_bn")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet(
    depth,
    input_shape=(32, 32, 3),
    stem="auto",
    width_multiplier=1.0,
    zero_init_residual=False,
    name=None,
):
    """A ResNet encoder (no classifier): images -> R of shape (b, d).

    Args:
        depth: 18, 34 or 50.
        input_shape: ``(height, width, channels)``, any channel count;
            height/width may be ``None`` with an explicit stem.
        stem: ``"cifar"``, ``"imagenet"`` or ``"auto"`` (cifar up to 64 px).
        width_multiplier: scales every channel width (64 w, 128 w, ...).
        zero_init_residual: initialise the last BN gamma of each residual
            block to zero, so every block starts as the identity (Goyal et
            al. 2017; torchvision's ``zero_init_residual``, default False).
        name: model name (default ``"resnet{depth}"``).

    Returns:
        A functional ``keras.Model``; ``d`` = 512 w (ResNet-18/34) or
        2048 w (ResNet-50).
    """
    if depth not in RESNET_CONFIGS:
        raise ValueError(
            f"ResNet depth must be one of {sorted(RESNET_CONFIGS)}; got {depth!r}."
        )
    if not width_multiplier > 0:
        raise ValueError(
            f"`width_multiplier` must be > 0; got {width_multiplier!r}."
        )
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels); got "
            f"{input_shape}."
        )
    stem = resolve_stem(stem, input_shape)
    block_type, blocks = RESNET_CONFIGS[depth]
    block_fn = _basic_block if block_type == "basic" else _bottleneck_block
    widths = [scaled_width(c, width_multiplier) for c in BASE_WIDTHS]
    stem_width = scaled_width(64, width_multiplier)

    inputs = keras.Input(input_shape, name="images")
    if stem == "imagenet":
        x = _conv(inputs, stem_width, 7, 2, "conv1")
    else:
        x = _conv(inputs, stem_width, 3, 1, "conv1")
    x = _bn(x, "bn1")
    x = layers.ReLU(name="relu")(x)
    if stem == "imagenet":
        # Zero padding equals PyTorch's -inf padding here: inputs are >= 0.
        x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, (planes, count) in enumerate(zip(widths, blocks), start=1):
        for i in range(count):
            stride = 2 if stage > 1 and i == 0 else 1
            x = block_fn(
                x, planes, stride, f"layer{stage}_{i}", zero_init_residual
            )
    outputs = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def resnet18(
    input_shape=(32, 32, 3),
    stem="auto",
    width_multiplier=1.0,
    zero_init_residual=False,
    name="resnet18",
):
    """ResNet-18 encoder (BasicBlock, [2, 2, 2, 2]); R of size 512 w."""
    return resnet(
        18, input_shape, stem, width_multiplier, zero_init_residual, name
    )


def resnet34(
    input_shape=(32, 32, 3),
    stem="auto",
    width_multiplier=1.0,
    zero_init_residual=False,
    name="resnet34",
):
    """ResNet-34 encoder (BasicBlock, [3, 4, 6, 3]); R of size 512 w."""
    return resnet(
        34, input_shape, stem, width_multiplier, zero_init_residual, name
    )


def resnet50(
    input_shape=(32, 32, 3),
    stem="auto",
    width_multiplier=1.0,
    zero_init_residual=False,
    name="resnet50",
):
    """ResNet-50 encoder (Bottleneck v1.5, [3, 4, 6, 3]); R of size 2048 w."""
    return resnet(
        50, input_shape, stem, width_multiplier, zero_init_residual, name
    )
