"""Encoders by name: ``get_backbone("resnet18", (32, 32, 3))``."""

import difflib

from keras_adadim.models.resnet import resnet
from keras_adadim.models.small_cnn import small_cnn_encoder
from keras_adadim.models.vit import vit_small
from keras_adadim.models.vit import vit_tiny

BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vit_tiny",
    "vit_small",
    "small_cnn",
)
_RESNET_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50}
_VITS = {"vit_tiny": vit_tiny, "vit_small": vit_small}
SMALL_CNN_WIDTH = 32


def get_backbone(
    name, input_shape, width_multiplier=1.0, stem="auto", **kwargs
):
    """An encoder (images -> R of shape (b, d)) by name.

    Args:
        name: one of ``BACKBONES``: ``"resnet18"``, ``"resnet34"``,
            ``"resnet50"`` (torchvision topology, ``models.resnet``),
            ``"vit_tiny"``, ``"vit_small"`` (``models.vit``) or
            ``"small_cnn"`` (``models.small_cnn.small_cnn_encoder``).
        input_shape: ``(height, width, channels)``.
        width_multiplier: scales channel widths: ResNets (64 w, ...) and the
            small CNN (width 32 w). ViTs have fixed widths (use vit_tiny or
            vit_small); any other value raises.
        stem: ResNets only: ``"auto"`` (``"cifar"`` for images of at most
            64 px, else ``"imagenet"``), ``"cifar"`` or ``"imagenet"``.
        **kwargs: passed to the builder: ``zero_init_residual``, ``name``
            (ResNets); ``patch_size``, ``name`` (ViTs); ``name`` (small CNN).

    Raises:
        ValueError: unknown name (listing the known ones and the closest
            match), or an option the backbone does not have.
    """
    key = str(name).lower().replace("-", "_")
    key = {"resnet_18": "resnet18", "resnet_34": "resnet34",
           "resnet_50": "resnet50"}.get(key, key)
    if key not in BACKBONES:
        close = difflib.get_close_matches(key, BACKBONES, n=1, cutoff=0.0)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown backbone {name!r}; known backbones: "
            f"{', '.join(BACKBONES)}.{hint}"
        )
    if not width_multiplier > 0:
        raise ValueError(
            f"`width_multiplier` must be > 0; got {width_multiplier!r}."
        )
    if key in _RESNET_DEPTHS:
        return resnet(
            _RESNET_DEPTHS[key],
            input_shape,
            stem=stem,
            width_multiplier=width_multiplier,
            **kwargs,
        )
    if stem != "auto":
        raise ValueError(
            f"`stem` applies to ResNets only; {key!r} got stem={stem!r}."
        )
    if key in _VITS:
        if width_multiplier != 1.0:
            raise ValueError(
                f"{key!r} has a fixed width; got width_multiplier="
                f"{width_multiplier}. Choose vit_tiny (dim 192) or vit_small "
                "(dim 384)."
            )
        return _VITS[key](input_shape, **kwargs)
    width = max(1, int(round(SMALL_CNN_WIDTH * width_multiplier)))
    return small_cnn_encoder(input_shape, width=width, **kwargs)


def representation_dim(model):
    """Size d of the representations R = model(images), shape (b, d)."""
    shape = getattr(model, "output_shape", None)
    if shape is None:
        raise ValueError(
            f"{getattr(model, 'name', model)!r} has no known output shape; "
            "build it (call it once) first."
        )
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 2 or shape[-1] is None:
        raise ValueError(
            f"Expected representations of shape (batch, d); "
            f"{model.name!r} outputs {tuple(shape)}."
        )
    return int(shape[-1])
