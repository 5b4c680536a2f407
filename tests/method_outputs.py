"""Shared by the method tests: a tiny model of one registered method and
the rows its loss sees (tests/methods/test_clustering_methods.py,
test_multi_crop_methods.py)."""

import keras
import numpy as np
from keras import ops

import keras_adadim as ka
from keras_adadim.methods import get_method
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def make_model(name, input_shape=(8, 8, 1), **kwargs):
    """A small-CNN model of method ``name`` (``kwargs`` to the method);
    ``input_shape=(None, None, 1)`` takes views of several sizes."""
    keras.utils.set_random_seed(1)
    model = ka.AdaDimModel(small_cnn_encoder(input_shape, width=4),
                           mlp_projector(hidden_dim=16, output_dim=8),
                           method=get_method(name, **kwargs))
    # One or two steps per fit in these tests: compiling would cost more.
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    return model


def outputs(model, v):
    """The rows the loss sees (float64) and the model's loss, without
    moving any state."""
    if not model.built:
        model(v)  # state variables are made outside the stateless scope
    with keras.StatelessScope():
        out = model(v, training=True)
        rows = model.step_rows(out, training=False)
        loss = float(np_(model.compute_loss(y_pred=out, training=False)))
    return {k: np_(t).astype("float64") for k, t in rows.items()}, loss
