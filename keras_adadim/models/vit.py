"""Vision Transformers (ViT-Tiny, ViT-Small) for small and large images.

The architecture is timm's ``VisionTransformer`` (``vit_tiny_patch16_224``,
``vit_small_patch16_224``) without the classification head:

* patch embedding: a ``patch_size`` x ``patch_size`` conv with stride
  ``patch_size`` (with bias) -> tokens of size ``dim``;
* a learned CLS token prepended, plus a learned position embedding over all
  ``num_patches + 1`` tokens;
* ``depth`` pre-norm blocks: x + MHSA(LN(x)), x + MLP(LN(x)), LayerNorm eps
  1e-6, MLP = Dense(mlp_dim, exact GELU) -> Dense(dim), attention with
  biased q, k, v and output projections;
* a final LayerNorm; the output is the normalised CLS token, R of shape
  (b, dim).

Trainable parameters equal timm's (5,524,416 for ViT-Tiny and 21,665,664 for
ViT-Small at 224 px / patch 16, without head). Initialisation follows timm:
truncated normal (std 0.02) for Dense kernels and the position embedding,
zero biases, normal (std 1e-6) for the CLS token.

The custom layers (``ClassToken``, ``PositionEmbedding``, ``TokenSelect``)
use ``keras.ops`` only and are registered under ``keras_adadim``, so a model
round-trips through ``.keras`` files under ``safe_mode`` on every backend.
"""

import keras
from keras import layers
from keras import ops

VIT_CONFIGS = {
    "vit_tiny": {"dim": 192, "depth": 12, "num_heads": 3, "mlp_dim": 768},
    "vit_small": {"dim": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536},
}
_PATCH_CANDIDATES = (16, 8, 4, 2, 1)
_LN_EPS = 1e-6


def _dense_init():
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="keras_adadim")
class ClassToken(layers.Layer):
    """Prepends a learned token: (b, n, d) -> (b, n + 1, d)."""

    def __init__(self, initializer_stddev=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.initializer_stddev = float(initializer_stddev)

    def build(self, input_shape):
        self.token = self.add_weight(
            name="token",
            shape=(1, 1, input_shape[-1]),
            initializer=keras.initializers.RandomNormal(
                stddev=self.initializer_stddev
            ),
            trainable=True,
        )

    def call(self, x):
        batch = ops.shape(x)[0]
        token = ops.cast(self.token, x.dtype)
        token = ops.broadcast_to(token, (batch, 1, ops.shape(x)[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, input_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "initializer_stddev": self.initializer_stddev,
        }


@keras.saving.register_keras_serializable(package="keras_adadim")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding per token position: (b, n, d) -> (b, n, d).

    The number of positions n is fixed when the layer is built."""

    def __init__(self, initializer_stddev=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_stddev = float(initializer_stddev)

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError(
                "PositionEmbedding needs a known number of tokens; got "
                f"input shape {input_shape}. Give the ViT a fixed image size."
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.TruncatedNormal(
                stddev=self.initializer_stddev
            ),
            trainable=True,
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "initializer_stddev": self.initializer_stddev,
        }


@keras.saving.register_keras_serializable(package="keras_adadim")
class TokenSelect(layers.Layer):
    """Selects one token: (b, n, d) -> (b, d) (index 0: the CLS token)."""

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def auto_patch_size(input_shape):
    """The patch size chosen by ``patch_size="auto"``: the largest of 16, 8,
    4, 2, 1 that is at most ``side // 8`` and divides both sides — 4 for
    32 px (8 x 8 tokens), 8 for 64 px, 16 for 224 px, 1 for 8 px."""
    h, w = tuple(input_shape)[:2]
    if h is None or w is None:
        raise ValueError(
            f"A ViT needs a fixed image size; got input_shape {input_shape}."
        )
    limit = max(min(h, w) // 8, 1)
    for p in _PATCH_CANDIDATES:
        if p <= limit and h % p == 0 and w % p == 0:
            return p
    return 1


def vision_transformer(
    input_shape=(32, 32, 3),
    patch_size="auto",
    dim=192,
    depth=12,
    num_heads=3,
    mlp_dim=768,
    name="vit",
):
    """A ViT encoder (no head): images -> final-norm CLS token (b, dim).

    Args:
        input_shape: ``(height, width, channels)``, fixed size.
        patch_size: an int dividing height and width, or ``"auto"``
            (``auto_patch_size``: 4 for 32 px, 8 for 64 px, 16 for 224 px).
        dim, depth, num_heads, mlp_dim: width, number of blocks, attention
            heads and MLP hidden size.
        name: model name.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels); got "
            f"{input_shape}."
        )
    if patch_size == "auto":
        patch_size = auto_patch_size(input_shape)
    h, w, _ = input_shape
    if h is None or w is None:
        raise ValueError(
            f"A ViT needs a fixed image size; got input_shape {input_shape}."
        )
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(
            f"`patch_size` must be a positive int or 'auto'; got {patch_size!r}."
        )
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"patch_size={patch_size} does not divide the image size "
            f"{h}x{w}; choose a divisor or patch_size='auto'."
        )
    if dim % num_heads:
        raise ValueError(
            f"dim={dim} must be divisible by num_heads={num_heads}."
        )
    num_patches = (h // patch_size) * (w // patch_size)

    inputs = keras.Input(input_shape, name="images")
    x = layers.Conv2D(
        dim,
        patch_size,
        strides=patch_size,
        padding="valid",
        name="patch_embed",
    )(inputs)
    x = layers.Reshape((num_patches, dim), name="patch_tokens")(x)
    x = ClassToken(name="cls_token")(x)
    x = PositionEmbedding(name="pos_embed")(x)
    for i in range(depth):
        prefix = f"block{i}"
        y = layers.LayerNormalization(epsilon=_LN_EPS, name=f"{prefix}_norm1")(x)
        y = layers.MultiHeadAttention(
            num_heads,
            dim // num_heads,
            kernel_initializer=_dense_init(),
            name=f"{prefix}_attn",
        )(y, y)
        x = layers.Add(name=f"{prefix}_add1")([x, y])
        y = layers.LayerNormalization(epsilon=_LN_EPS, name=f"{prefix}_norm2")(x)
        y = layers.Dense(
            mlp_dim,
            activation="gelu",
            kernel_initializer=_dense_init(),
            name=f"{prefix}_mlp_fc1",
        )(y)
        y = layers.Dense(
            dim, kernel_initializer=_dense_init(), name=f"{prefix}_mlp_fc2"
        )(y)
        x = layers.Add(name=f"{prefix}_add2")([x, y])
    x = layers.LayerNormalization(epsilon=_LN_EPS, name="norm")(x)
    outputs = TokenSelect(0, name="cls_output")(x)
    return keras.Model(inputs, outputs, name=name)


def vit_tiny(input_shape=(32, 32, 3), patch_size="auto", name="vit_tiny"):
    """ViT-Tiny: dim 192, depth 12, 3 heads, MLP 768."""
    return vision_transformer(
        input_shape, patch_size, name=name, **VIT_CONFIGS["vit_tiny"]
    )


def vit_small(input_shape=(32, 32, 3), patch_size="auto", name="vit_small"):
    """ViT-Small: dim 384, depth 12, 6 heads, MLP 1536."""
    return vision_transformer(
        input_shape, patch_size, name=name, **VIT_CONFIGS["vit_small"]
    )
