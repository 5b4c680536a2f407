"""Backbones (ResNet-18/34/50, ViT-Tiny/Small, small CNN) and heads.

Parameter counts are checked against the torchvision / timm references and
against closed-form counts derived here from the architecture definitions,
independently of the model code. Large models are only built (with
uninitialised variables, which is fast on every backend), never run; forward
passes, ``fit`` and ``.keras`` round trips use narrow models on small images.
Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import keras
import numpy as np
import pytest
from keras.src.backend.common import global_state  # deferred variables

import keras_adadim as ka
from keras_adadim.models import BACKBONES
from keras_adadim.models import get_backbone
from keras_adadim.models import predictor
from keras_adadim.models import projector
from keras_adadim.models import representation_dim
from keras_adadim.models import vision_transformer
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.vit import auto_patch_size

# torchvision resnet{18,34,50}() parameter counts minus the 1000-class fc
# (512 * 1000 + 1000, 2048 * 1000 + 1000); BN gamma/beta are parameters,
# running statistics are buffers.
TORCHVISION_NO_FC = {18: 11_176_512, 34: 21_284_672, 50: 23_508_032}
# timm vit_{tiny,small}_patch16_224 without head: 5,717,416 - 193,000 and
# 22,050,664 - 385,000.
TIMM_NO_HEAD = {"vit_tiny": 5_524_416, "vit_small": 21_665_664}


# ------------------------------------------------- closed-form references
def resnet_param_count(depth, in_channels=3, stem="imagenet", width=1.0):
    """Trainable parameters of torchvision's ResNet (no fc), re-derived from
    the architecture: conv weights (no bias) + BN gamma/beta."""
    c = lambda n: max(1, int(round(n * width)))  # noqa: E731
    bottleneck = depth == 50
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    k = 7 if stem == "imagenet" else 3
    total = k * k * in_channels * c(64) + 2 * c(64)
    inplanes = c(64)
    for stage, (base, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        planes = c(base)
        out = 4 * planes if bottleneck else planes
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            if bottleneck:
                total += inplanes * planes + 2 * planes  # 1x1 + BN
                total += 9 * planes * planes + 2 * planes  # 3x3 + BN
                total += planes * out + 2 * out  # 1x1 + BN
            else:
                total += 9 * inplanes * planes + 2 * planes
                total += 9 * planes * planes + 2 * planes
            if stride != 1 or inplanes != out:
                total += inplanes * out + 2 * out  # downsample 1x1 + BN
            inplanes = out
    return total


def vit_param_count(dim, depth, mlp, patch, image=224, channels=3):
    """Trainable parameters of timm's VisionTransformer without head."""
    tokens = (image // patch) ** 2 + 1
    patch_embed = patch * patch * channels * dim + dim
    block = (
        2 * 2 * dim  # two LayerNorms
        + 3 * dim * dim + 3 * dim  # qkv with bias
        + dim * dim + dim  # attention output projection
        + dim * mlp + mlp  # fc1
        + mlp * dim + dim  # fc2
    )
    return patch_embed + dim + tokens * dim + depth * block + 2 * dim


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _deferred(builder, *args, **kwargs):
    """``builder(*args, **kwargs)`` with its variables left uninitialised
    (shapes only: on JAX, initialising compiles one XLA program per weight
    shape, which would dominate these tests). They are then dropped from
    Keras' list of deferred variables, so no later StatelessScope
    initialises them."""
    pending = global_state.get_global_attribute("uninitialized_variables")
    pending = list(pending or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            return builder(*args, **kwargs)
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def _build_only(name, input_shape, **kwargs):
    """A backbone built without initialising its variables."""
    return _deferred(get_backbone, name, input_shape, **kwargs)


def _images(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)).astype("float32")


def _tiny_vit(input_shape=(16, 16, 3)):
    return vision_transformer(
        input_shape, patch_size=4, dim=24, depth=2, num_heads=2, mlp_dim=48,
        name="tiny_vit",
    )


# ------------------------------------------------------- reference counts
def test_reference_formulas_reproduce_published_counts():
    for depth, count in TORCHVISION_NO_FC.items():
        assert resnet_param_count(depth) == count
    assert vit_param_count(192, 12, 768, 16) == TIMM_NO_HEAD["vit_tiny"]
    assert vit_param_count(384, 12, 1536, 16) == TIMM_NO_HEAD["vit_small"]


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_counts_equal_torchvision(depth):
    model = _build_only(f"resnet{depth}", (224, 224, 3), stem="imagenet")
    assert _trainable(model) == TORCHVISION_NO_FC[depth]
    assert not model.non_trainable_weights or all(
        "moving" in v.path for v in model.non_trainable_weights
    )


@pytest.mark.parametrize("depth", [18, 50])
def test_cifar_stem_replaces_the_7x7_conv(depth):
    model = _build_only(f"resnet{depth}", (32, 32, 3), stem="cifar")
    expected = TORCHVISION_NO_FC[depth] - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
    assert _trainable(model) == expected
    names = {layer.name for layer in model.layers}
    assert "maxpool" not in names


@pytest.mark.parametrize(
    "depth,stem,channels,width",
    [
        (18, "cifar", 3, 0.5),
        (34, "imagenet", 1, 0.5),
        (50, "cifar", 3, 0.5),
        (50, "imagenet", 3, 0.25),
        (18, "cifar", 1, 2.0),
    ],
)
def test_width_multiplier_and_channels_match_formula(
    depth, stem, channels, width
):
    size = 32 if stem == "cifar" else 64
    model = _build_only(
        f"resnet{depth}", (size, size, channels), stem=stem,
        width_multiplier=width,
    )
    assert _trainable(model) == resnet_param_count(depth, channels, stem, width)
    base = 2048 if depth == 50 else 512
    assert representation_dim(model) == int(base * width)


@pytest.mark.parametrize("name,dims", [
    ("vit_tiny", (192, 12, 768)), ("vit_small", (384, 12, 1536)),
])
def test_vit_counts_equal_timm(name, dims):
    model = _build_only(name, (224, 224, 3))  # patch 16 by "auto"
    assert _trainable(model) == TIMM_NO_HEAD[name]
    # 32 px, patch 4: 64 + 1 position embeddings instead of 197.
    small = _build_only(name, (32, 32, 3))
    assert _trainable(small) == vit_param_count(*dims, patch=4, image=32)
    assert _trainable(small) == TIMM_NO_HEAD[name] - (
        16 * 16 * 3 - 4 * 4 * 3 + 197 - 65
    ) * dims[0]


def test_vit_patch_size():
    assert auto_patch_size((32, 32, 3)) == 4
    assert auto_patch_size((64, 64, 3)) == 8
    assert auto_patch_size((224, 224, 3)) == 16
    assert auto_patch_size((8, 8, 1)) == 1
    model = _build_only("vit_tiny", (32, 32, 1), patch_size=8)
    assert _trainable(model) == vit_param_count(192, 12, 768, 8, 32, 1)
    with pytest.raises(ValueError, match="does not divide"):
        _build_only("vit_tiny", (32, 32, 3), patch_size=5)


# --------------------------------------------------------------- shapes
@pytest.mark.parametrize("name,dim", [
    ("resnet18", 512), ("resnet34", 512), ("resnet50", 2048),
    ("vit_tiny", 192), ("vit_small", 384), ("small_cnn", 128),
])
@pytest.mark.parametrize("size", [32, 64])
def test_output_shapes(name, dim, size):
    model = _build_only(name, (size, size, 3))
    assert model.output_shape == (None, dim)
    assert representation_dim(model) == dim
    if name.startswith("resnet"):  # stem "auto": cifar up to 64 px
        assert "maxpool" not in {layer.name for layer in model.layers}


@pytest.mark.parametrize("size,stem,final", [
    (32, "cifar", 4), (33, "cifar", 5), (8, "cifar", 1),
    (224, "imagenet", 7), (225, "imagenet", 8), (96, "auto", 3),
])
def test_resnet_feature_map_sizes_follow_pytorch(size, stem, final):
    """PyTorch: out = floor((n + 2p - k) / s) + 1 at every strided layer."""
    model = _build_only("resnet18", (size, size, 3), stem=stem)
    last = model.get_layer("layer4_1_out").output.shape
    assert tuple(last[1:3]) == (final, final)


def test_imagenet_stem_for_large_images_and_size_checks():
    model = _build_only("resnet18", (96, 96, 3))
    names = [layer.name for layer in model.layers]
    assert "maxpool" in names
    assert model.get_layer("conv1").kernel_size == (7, 7)
    with pytest.raises(ValueError, match="too small"):
        _build_only("resnet18", (4, 4, 3), stem="cifar")
    with pytest.raises(ValueError, match="too small"):
        _build_only("resnet18", (16, 16, 3), stem="imagenet")


# ------------------------------------------- forward and serialisation
# Small models are built once per module: on JAX every new weight shape
# compiles its initialiser, which dominates the run time of these tests.
@pytest.fixture(scope="module")
def tiny_resnet():
    return get_backbone("resnet18", (16, 16, 3), width_multiplier=0.25)


@pytest.fixture(scope="module")
def tiny_vit():
    return _tiny_vit((16, 16, 1))


@pytest.mark.parametrize("which", ["tiny_resnet", "tiny_vit"])
def test_forward_and_keras_round_trip(which, request, tmp_path):
    """Training and inference passes, then a ``.keras`` file (safe_mode)
    that gives identical outputs."""
    model = request.getfixturevalue(which)
    x = _images(4, model.input_shape[1:])
    d = representation_dim(model)
    # Training mode updates the BN statistics, so the saved ones are not
    # their initial values.
    train = keras.ops.convert_to_numpy(model(x, training=True))
    infer = keras.ops.convert_to_numpy(model(x, training=False))
    assert train.shape == infer.shape == (4, d)
    assert np.all(np.isfinite(train)) and np.all(np.isfinite(infer))
    if which == "tiny_resnet":  # batch vs moving statistics
        assert not np.allclose(train, infer)
    path = tmp_path / "encoder.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        infer, keras.ops.convert_to_numpy(loaded(x, training=False))
    )
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


def test_zero_init_residual(tiny_resnet):
    model = get_backbone(
        "resnet18", (16, 16, 3), width_multiplier=0.25,
        zero_init_residual=True,
    )
    for block in ("layer1_0_bn2", "layer4_1_bn2"):
        gamma = keras.ops.convert_to_numpy(model.get_layer(block).gamma)
        assert not np.any(gamma)
    assert not np.any(
        keras.ops.convert_to_numpy(model.get_layer("layer1_0_bn1").gamma) == 0
    )
    bottleneck = _build_only(
        "resnet50", (32, 32, 3), zero_init_residual=True
    )
    initializer = bottleneck.get_layer("layer2_0_bn3").gamma_initializer
    assert type(initializer).__name__ == "Zeros"


# ----------------------------------------------------------------- heads
def _names(model):
    return [layer.name for layer in model.layers]


def test_projector_kinds():
    base = _deferred(projector, "baseline", input_dim=24)
    assert base.output_shape == (None, 2048)
    assert base.get_layer("dense0").units == 2048  # hidden width
    assert _names(base) == [
        "dense0", "bn0", "relu0", "dense1", "bn1", "relu1", "dense2",
    ]
    expanded = _deferred(projector, "expanded", input_dim=24)
    assert expanded.output_shape == (None, 512)
    assert _names(expanded)[-1] == "final_bn"
    simclr = _deferred(projector, "simclr", input_dim=24)
    assert simclr.output_shape == (None, 128)
    assert _names(simclr) == ["dense0", "relu0", "dense1"]
    # 24*8 + 2*8 + 8*8 + 2*8 + 8*6 + 6 (no bias before BN) + 4*8 BN stats
    small = _deferred(
        projector, "baseline", input_dim=24, hidden_dim=8, output_dim=6
    )
    assert small.count_params() == 24 * 8 + 16 + 8 * 8 + 16 + 8 * 6 + 6 + 32
    with pytest.raises(ValueError, match="projector kind"):
        projector("byol")


def test_heads_are_built_lazily_for_any_input_size():
    head = projector("expanded", hidden_dim=8, output_dim=4)
    assert not head.built
    z = keras.ops.convert_to_numpy(head(_images(4, (7,)), training=True))
    assert z.shape == (4, 4) and np.all(np.isfinite(z))
    # The final BN standardises each feature over the batch (training mode).
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    pred = predictor(hidden_dim=8, output_dim=4)
    p = keras.ops.convert_to_numpy(pred(z, training=False))
    assert p.shape == (4, 4) and np.all(np.isfinite(p))


def test_predictor_defaults():
    head = _deferred(predictor, input_dim=512)
    assert _names(head) == ["dense0", "bn0", "relu0", "dense1"]
    assert head.get_layer("dense0").units == 4096
    assert head.output_shape == (None, 512)


def test_mlp_projector_alias_keeps_its_layers():
    head = mlp_projector(16, 8, final_bn=True)
    assert [layer.name for layer in head.layers] == [
        "dense0", "bn0", "relu0", "dense1", "bn1", "relu1", "dense2",
        "final_bn",
    ]
    assert head.layers[1].momentum == 0.99  # Keras' defaults, as before


# ------------------------------------------------------- in AdaDimModel
def test_adadim_fit_step_with_resnet(tiny_resnet):
    model = ka.AdaDimModel(
        tiny_resnet,
        projector("expanded", hidden_dim=32, output_dim=16),
        alpha=0.5,
        predictor=predictor(hidden_dim=32, output_dim=16),
    )
    # XLA-compiling a ResNet training step takes minutes on TensorFlow's
    # CPU build; JAX always compiles (eager JAX is slower still).
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        jit_compile=keras.backend.backend() == "jax",
    )
    x1, x2 = _images(8, (16, 16, 3), 1), _images(8, (16, 16, 3), 2)
    history = model.fit((x1, x2), batch_size=8, epochs=1, verbose=0)
    loss = history.history["loss"][-1]
    assert np.isfinite(loss)


# ----------------------------------------------------------------- names
def test_unknown_backbone_name():
    with pytest.raises(ValueError) as info:
        get_backbone("resnet19", (32, 32, 3))
    message = str(info.value)
    for name in BACKBONES:
        assert name in message
    assert "Did you mean 'resnet18'" in message
    with pytest.raises(ValueError, match="vit_tiny"):
        get_backbone("vit-tny", (32, 32, 3))


def test_backbone_options():
    assert BACKBONES == (
        "resnet18", "resnet34", "resnet50", "vit_tiny", "vit_small",
        "small_cnn",
    )
    assert representation_dim(
        _build_only("small_cnn", (8, 8, 1), width_multiplier=0.5)
    ) == 64
    with pytest.raises(ValueError, match="fixed width"):
        _build_only("vit_tiny", (32, 32, 3), width_multiplier=0.5)
    with pytest.raises(ValueError, match="ResNets only"):
        _build_only("vit_tiny", (32, 32, 3), stem="cifar")
    with pytest.raises(ValueError, match="stem"):
        _build_only("resnet18", (32, 32, 3), stem="tiny")
    # Any image size with an explicit stem; "auto" needs the size.
    free = _build_only("resnet18", (None, None, 1), stem="cifar")
    assert free.output_shape == (None, 512)
    with pytest.raises(ValueError, match="known image size"):
        _build_only("resnet18", (None, None, 1))
