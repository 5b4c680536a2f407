"""SwAV and DINO on multi-crop batches (2 global + k local views of a
smaller size), on the current backend: the loss over every crop equals a
float64 NumPy re-computation (codes / teacher from the global crops only),
``fit`` trains through them, and the two-view methods refuse local crops.
The runner's multi-crop run and its resume are in
tests/test_multi_crop_run.py."""

import keras
import numpy as np
import pytest

import keras_adadim as ka
import reference_numpy as ref
from keras_adadim.methods import get_method
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder
from method_outputs import make_model as shared_make_model  # tests/
from method_outputs import np_
from method_outputs import outputs

B, K = 8, 2  # batch, local crops


def make_model(name, **kwargs):
    # (None, None, 1): the encoder takes the global and the local size.
    return shared_make_model(name, input_shape=(None, None, 1), **kwargs)


@pytest.fixture(scope="module")
def crops():
    """Two 8x8 global views and K 4x4 local views of 2B images."""
    rng = np.random.default_rng(0)
    x1 = rng.random((2 * B, 8, 8, 1)).astype("float32")
    x2 = (np.roll(x1, 1, 2) * 0.9 + 0.05).astype("float32")
    local = [np.ascontiguousarray(x1[:, i:i + 4, 2 * i:2 * i + 4])
             for i in range(K)]
    return (x1, x2, *local)


def test_swav_swaps_predictions_over_all_crops_with_global_codes(crops):
    model = make_model("swav", num_prototypes=6, queue_size=0)
    v = tuple(x[:B] for x in crops)
    r, loss = outputs(model, v)
    scores = [r[f"s{i}"] for i in range(1, 3 + K)]
    assert f"s{3 + K}" not in r and all(s.shape == (B, 6) for s in scores)
    codes = [ref.sinkhorn_knopp(s, 0.05, 3) for s in scores[:2]]
    want = ref.swav(scores, codes, 0.1)
    assert loss == pytest.approx(want, rel=1e-4)
    # The local crops count: the two-view loss of the same rows differs.
    assert abs(want - ref.swav(scores[:2], codes, 0.1)) > 1e-3
    # A local crop's scores are the cosines of its own embedding.
    enc, proj = model.encoder, model.projector
    with keras.StatelessScope():
        z = np_(proj(enc(v[2], training=True), training=True))
    c = ref.l2_normalize_rows(np_(model.method.prototypes.kernel))
    np.testing.assert_allclose(r["s3"], ref.l2_normalize_rows(z) @ c.T,
                               rtol=1e-4, atol=1e-5)


def test_dino_student_sees_every_crop_teacher_the_global_ones(crops):
    model = make_model("dino", num_prototypes=6)
    method = model.method
    v = tuple(x[:B] for x in crops)
    model(v)  # build
    method.center.assign(np.linspace(-0.2, 0.2, 6).astype("float32"))
    r, loss = outputs(model, v)
    student = [r[f"s{i}"] for i in range(1, 3 + K)]
    assert {"t1", "t2"} <= set(r) and "t3" not in r and "s5" not in r
    want = ref.dino(student, [r["t1"], r["t2"]], np_(method.center), 0.1,
                    0.04)
    assert loss == pytest.approx(want, rel=1e-4)
    assert abs(want - ref.dino(student[:2], [r["t1"], r["t2"]],
                               np_(method.center), 0.1, 0.04)) > 1e-4


@pytest.mark.parametrize("name", ["swav", "dino"])
def test_fit_trains_on_multi_crop_batches(crops, name):
    model = make_model(name, num_prototypes=6, **(
        {"queue_size": 0, "freeze_prototypes_epochs": 0} if name == "swav"
        else {"freeze_last_layer_epochs": 0}))
    model(tuple(x[:2] for x in crops))  # build
    before = np_(model.encoder.weights[0]).copy()
    history = model.fit(crops, batch_size=B, epochs=2, shuffle=False,
                        verbose=0).history
    assert len(history[name]) == 2 and np.all(np.isfinite(history[name]))
    assert not np.allclose(before, np_(model.encoder.weights[0]))
    r, loss = outputs(model, tuple(x[:B] for x in crops))
    assert np.isfinite(loss) and f"s{2 + K}" in r


def test_two_view_methods_refuse_local_crops(crops):
    model = make_model("byol")
    with pytest.raises(ValueError, match=r"local_crops=0 \(--local-crops 0\)"):
        model(tuple(x[:B] for x in crops))
    swav = make_model("swav", num_prototypes=6, queue_size=0)
    odd = (*crops[:3], crops[3][:, :3, :3])  # local crops of two sizes
    with pytest.raises(ValueError, match=r"local views .* share one shape"):
        swav(tuple(x[:B] for x in odd))
    assert getattr(swav.method, "multi_crop", False)
    keras.utils.set_random_seed(1)
    in_step = ka.AdaDimModel(small_cnn_encoder((None, None, 1), width=4),
                             mlp_projector(hidden_dim=16, output_dim=8),
                             method=get_method("swav", num_prototypes=6),
                             augmentation=keras.layers.Identity())
    with pytest.raises(ValueError, match=r"augmentation=None"):
        in_step(tuple(x[:B] for x in crops))
    from keras_adadim.config_checks import MULTI_CROP_METHODS

    multi = sorted(n for n in ka.METHODS
                   if getattr(get_method(n), "multi_crop", False))
    assert multi == sorted(MULTI_CROP_METHODS)
