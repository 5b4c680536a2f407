"""The paper's analyses: the Gaussian simulation of Section 3.1 (Figure 2),
the neural-network simulation of Appendix B.4 (Figure 11), correlation
tables between accuracy and the information diagnostics (Table 1), and plots (``keras_adadim.analysis.plots``, needs matplotlib)."""

from keras_adadim.analysis import plots
from keras_adadim.analysis.correlation import correlation_table
from keras_adadim.analysis.correlation import format_correlation_table
from keras_adadim.analysis.gaussian_simulation import GaussianSimulationResult
from keras_adadim.analysis.gaussian_simulation import gaussian_simulation
from keras_adadim.analysis.gaussian_simulation import pca_project
from keras_adadim.analysis.gaussian_simulation import (
    projection_mutual_information,
)
from keras_adadim.analysis.nn_simulation import nn_simulation

__all__ = [
    "GaussianSimulationResult",
    "correlation_table",
    "format_correlation_table",
    "gaussian_simulation",
    "nn_simulation",
    "pca_project",
    "plots",
    "projection_mutual_information",
]
