"""RepresentationMonitor: logged diagnostics equal an offline recomputation."""

import keras
import numpy as np
import pytest

import reference_numpy as ref
import keras_adadim as ka
from keras_adadim.data import digits_views, load_digits, two_view_dataset
from keras_adadim.models.small_cnn import mlp_projector, small_cnn_encoder


def test_monitor_matches_offline_recomputation_from_saved_weights(tmp_path):
    """On a short digits run the logged values equal a NumPy float64
    recomputation from the saved model's encoder and projector."""
    data = load_digits()
    ds = two_view_dataset(data["train_images"], augment=digits_views(), batch_size=64)
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=4), mlp_projector(32, 16),
        method="vicreg",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    monitor = ka.RepresentationMonitor(data["test_images"], max_samples=200)
    history = model.fit(ds, epochs=2, callbacks=[monitor], verbose=0).history
    for key in ("r_effective_rank", "r_entropy", "mutual_information",
                "r_uniformity", "z_eigenvalue_count", "monitor_seconds"):
        assert len(history[key]) == 2, key
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    r = np.asarray(loaded.encoder.predict(monitor.images, verbose=0), "float64")
    z = np.asarray(loaded.projector.predict(r.astype("float32"), verbose=0), "float64")
    expected = {
        "r_effective_rank": ref.effective_rank(r),
        "z_effective_rank": ref.effective_rank(z),
        "r_entropy": ref.renyi_entropy(r),
        "z_entropy": ref.renyi_entropy(z),
        "mutual_information": ref.matrix_mutual_information(r, z),
        "r_uniformity": ref.uniformity(r),
        "z_uniformity": ref.uniformity(z),
        "r_eigenvalue_count": ref.eigenvalue_count(r),
        "z_top30_variance": ref.explained_variance_ratio(z),
    }
    for key, value in expected.items():
        assert history[key][-1] == pytest.approx(value, rel=2e-3, abs=1e-3), key
    # The subset is fixed: at most max_samples images.
    assert len(monitor.images) == 200


def test_monitor_every_and_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        ka.RepresentationMonitor(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="every"):
        ka.RepresentationMonitor(np.zeros((4, 8, 8, 1), "float32"), every=0)
    monitor = ka.RepresentationMonitor(np.zeros((4, 8, 8, 1), "float32"))
    monitor.set_model(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="encoder"):
        monitor.on_train_begin()
