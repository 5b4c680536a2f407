"""The Appendix B.4 neural-network simulation reproduces Figure 11's trends."""

import numpy as np
import pytest

from keras_adadim.analysis import nn_simulation
from keras_adadim.analysis.plots import figure11


@pytest.fixture(scope="module")
def result():
    return nn_simulation(epochs=20, verbose=0)


def test_mutual_information_rises_and_vicreg_ends_higher(result):
    """I(R; Z) increases during training for both methods, and the
    dimension-contrastive VICReg reaches a higher I(R; Z) than SimCLR."""
    for method in ("simclr", "vicreg"):
        v = np.asarray(result[method])
        assert len(v) == 20 and np.all(np.isfinite(v))
        assert np.mean(v[-3:]) > np.mean(v[:3]) + 0.1, method
    assert np.mean(result["vicreg"][-3:]) > np.mean(result["simclr"][-3:])


def test_figure11_renders(result, tmp_path):
    fig, paths = figure11(result, tmp_path / "fig11")
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "svg"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and "I(R; Z)" in ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 2


def test_bad_input():
    with pytest.raises(ValueError, match="Unknown methods"):
        nn_simulation(methods=("byol",), epochs=1)
    with pytest.raises(ValueError, match="batch of one"):
        nn_simulation(n_samples=251, batch_size=250, epochs=1)
