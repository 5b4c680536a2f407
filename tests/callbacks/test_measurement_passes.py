"""The callbacks' measurement passes (``AlphaUpdater``'s effective rank,
``RepresentationMonitor``'s statistics) record no autograd graph: on
PyTorch they run under ``torch.no_grad`` (``_backend.no_grad``); on
TensorFlow and JAX nothing records outside a tape / ``jax.grad``."""

import keras
import numpy as np

import keras_adadim as ka
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder


def _grad_enabled():
    if keras.backend.backend() != "torch":
        return False  # no autograd recording outside a tape / jax.grad
    import torch

    return torch.is_grad_enabled()


def test_alpha_updater_and_monitor_passes_record_no_graph(monkeypatch):
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    x2 = (x1 + 0.1 * rng.normal(size=x1.shape)).astype("float32")
    model = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4),
                           mlp_projector(hidden_dim=16, output_dim=8))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    seen = {}
    ratio = model.embedding_rank_ratio

    def recording_ratio(x):
        seen.setdefault("alpha", []).append(_grad_enabled())
        out = ratio(x)
        return out

    monkeypatch.setattr(model, "embedding_rank_ratio", recording_ratio)
    from keras_adadim.callbacks import representation_monitor as rm

    stats = rm.representation_statistics

    def recording_stats(*args, **kwargs):
        seen.setdefault("monitor", []).append(_grad_enabled())
        return stats(*args, **kwargs)

    monkeypatch.setattr(rm, "representation_statistics", recording_stats)
    model.fit((x1, x2), batch_size=16, epochs=1, verbose=0, callbacks=[
        ka.AlphaUpdater(batches=1, data=[((x1[:16], x2[:16]),)]),
        ka.callbacks.RepresentationMonitor(x1, every=1, max_samples=32)])
    assert seen["alpha"] and seen["monitor"]
    assert not any(seen["alpha"]) and not any(seen["monitor"])
    if keras.backend.backend() == "torch":
        import torch

        assert torch.is_grad_enabled()  # restored after the passes
