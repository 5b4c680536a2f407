"""Projector and predictor heads (``keras.Sequential``, built lazily).

Projectors (R -> Z), by ``kind``:

* ``"baseline"``: the paper's baseline setting (Table 7, projector output
  2048): (Dense-BN-ReLU) x 2, then Dense -> 2048. This is solo-learn's
  VICReg projector (``proj_hidden_dim`` 2048, ``proj_output_dim`` 2048,
  ``scripts/pretrain/*/vicreg.yaml``), which the paper follows for
  method-specific settings.
* ``"expanded"``: the expanded setting (Table 7, momentum encoder, output
  512): the same 3-layer MLP -> 512, "and the final layer is passed through a
  1D batch normalization" — a BatchNorm on the output (with its own
  gamma/beta).
* ``"simclr"``: solo-learn's SimCLR projector, Dense(2048)-ReLU-Dense(128)
  (no BatchNorm; the SimCLR baseline of Table 10, projector output 128).

Predictor (momentum variant, Table 5 / Table 7 "P"): BYOL's 2-layer MLP,
Dense-BN-ReLU-Dense, with solo-learn's BYOL default hidden size 4096
(``scripts/pretrain/{cifar,imagenet-100}/byol.yaml``: ``pred_hidden_dim:
4096``). Its output must match the projector's (512 for ``"expanded"``).

Dense layers followed by BatchNorm have no bias (it would be cancelled by the
BN mean; solo-learn's ``nn.Linear`` keeps a redundant one, so counts differ
by ``hidden_dim`` per such layer). BatchNorm uses PyTorch's defaults
(momentum 0.1 -> Keras ``momentum=0.9``, eps 1e-5), as solo-learn.

Without ``input_dim`` the heads are built on first call, so they accept any
representation size; with it they are built immediately (and
``summary()``/``count_params()`` work before the first call).
"""

import keras
from keras import layers

PROJECTORS = ("baseline", "expanded", "simclr")
# Default embedding size F per projector kind (hidden width: 2048 for all).
PROJECTOR_OUTPUT_DIMS = {"baseline": 2048, "expanded": 512, "simclr": 128}
TORCH_BN = {"momentum": 0.9, "epsilon": 1e-5}


def mlp_head(
    hidden_dim,
    output_dim,
    num_layers=3,
    batch_norm=True,
    final_bn=False,
    input_dim=None,
    bn_kwargs=None,
    name="projector",
):
    """(Dense-[BN]-ReLU) x (num_layers - 1), then Dense(output_dim),
    optionally a final BatchNorm. Layers are named ``dense{i}``, ``bn{i}``,
    ``relu{i}`` and ``final_bn``.

    Args:
        hidden_dim: width of the hidden layers.
        output_dim: output size.
        num_layers: number of Dense layers (>= 1).
        batch_norm: BatchNorm after each hidden Dense (which then has no
            bias).
        final_bn: BatchNorm on the output.
        input_dim: if given, the model is built for inputs of this size.
        bn_kwargs: extra BatchNormalization arguments (default: Keras').
        name: model name.
    """
    if num_layers < 1:
        raise ValueError(f"`num_layers` must be >= 1; got {num_layers}.")
    bn_kwargs = dict(bn_kwargs or {})
    stack = [keras.Input((int(input_dim),), name="features")] if input_dim else []
    for i in range(num_layers - 1):
        stack.append(
            layers.Dense(hidden_dim, use_bias=not batch_norm, name=f"dense{i}")
        )
        if batch_norm:
            stack.append(layers.BatchNormalization(**bn_kwargs, name=f"bn{i}"))
        stack.append(layers.ReLU(name=f"relu{i}"))
    stack.append(layers.Dense(output_dim, name=f"dense{num_layers - 1}"))
    if final_bn:
        stack.append(layers.BatchNormalization(**bn_kwargs, name="final_bn"))
    return keras.Sequential(stack, name=name)


def projector(
    kind="baseline",
    input_dim=None,
    hidden_dim=2048,
    output_dim=None,
    name="projector",
):
    """The projector R -> Z of the paper's settings.

    Args:
        kind: ``"baseline"`` (3-layer MLP -> 2048), ``"expanded"`` (3-layer
            MLP -> 512 + final BatchNorm) or ``"simclr"`` (Dense-ReLU-Dense
            -> 128).
        input_dim: representation size; ``None`` builds on first call.
        hidden_dim: hidden width (2048).
        output_dim: embedding size F; default 2048 / 512 / 128 by kind.
        name: model name.
    """
    if kind not in PROJECTORS:
        raise ValueError(
            f"Unknown projector kind {kind!r}; choose one of {PROJECTORS}."
        )
    if output_dim is None:
        output_dim = PROJECTOR_OUTPUT_DIMS[kind]
    if kind == "simclr":
        return mlp_head(
            hidden_dim, output_dim, num_layers=2, batch_norm=False,
            input_dim=input_dim, name=name,
        )
    return mlp_head(
        hidden_dim,
        output_dim,
        num_layers=3,
        final_bn=kind == "expanded",
        input_dim=input_dim,
        bn_kwargs=TORCH_BN,
        name=name,
    )


def predictor(
    hidden_dim=4096,
    output_dim=PROJECTOR_OUTPUT_DIMS["expanded"],
    input_dim=None,
    name="predictor",
):
    """BYOL-style predictor Z -> P: Dense-BN-ReLU-Dense.

    Args:
        hidden_dim: hidden width (4096, solo-learn's BYOL configs).
        output_dim: must equal the projector's output size (512, the
            expanded projector's, by default).
        input_dim: embedding size; ``None`` builds on first call.
        name: model name.
    """
    return mlp_head(
        hidden_dim,
        output_dim,
        num_layers=2,
        input_dim=input_dim,
        bn_kwargs=TORCH_BN,
        name=name,
    )
