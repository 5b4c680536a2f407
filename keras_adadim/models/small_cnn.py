"""A small convolutional encoder and MLP projector for small images (digits,
CPU-sized runs, tests and benchmarks). The paper's ResNet backbones are for
GPUs."""

import keras
from keras import layers


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
    optionally followed by a BatchNorm (the paper's expanded setting)."""
    stack = []
    for i in range(num_layers - 1):
        stack += [
            layers.Dense(hidden_dim, use_bias=False, name=f"dense{i}"),
            layers.BatchNormalization(name=f"bn{i}"),
            layers.ReLU(name=f"relu{i}"),
        ]
    stack.append(layers.Dense(output_dim, name=f"dense{num_layers - 1}"))
    if final_bn:
        stack.append(layers.BatchNormalization(name="final_bn"))
    return keras.Sequential(stack, name=name)
