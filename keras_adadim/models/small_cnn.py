"""A small convolutional encoder and MLP projector for small images (digits,
CPU-sized runs, tests and benchmarks). The paper's ResNet backbones are for
GPUs."""

import keras
from keras import layers

from keras_adadim.models.heads import mlp_head


def small_cnn_encoder(input_shape=(8, 8, 1), width=32, name="small_cnn"):
    """Conv-BN-ReLU x 3 (widths w, 2w, 4w; the second with stride 2) and
    global average pooling: representations of size 4w."""
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i, (filters, stride) in enumerate(
        ((width, 1), (2 * width, 2), (4 * width, 1))
    ):
        x = layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=False,
            name=f"conv{i}",
        )(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def mlp_projector(
    hidden_dim=256, output_dim=128, num_layers=3, final_bn=False,
    name="projector",
):
    """The SSL projector: (Dense-BN-ReLU) x (num_layers - 1) then Dense,
    optionally followed by a BatchNorm (the paper's expanded setting).

    A thin alias of ``keras_adadim.models.heads.mlp_head`` with Keras'
    default BatchNorm settings (layer names ``dense{i}``, ``bn{i}``,
    ``relu{i}``, ``final_bn``, as the shipped pre-trained models expect).
    For the paper's projectors use ``keras_adadim.models.heads.projector``."""
    return mlp_head(
        hidden_dim, output_dim, num_layers=num_layers, final_bn=final_bn,
        name=name,
    )
