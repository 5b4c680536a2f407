"""Representation diagnostics, as pure functions over ``keras.ops``.

Every function takes matrices (n samples, k features) of any float dtype and
computes in float32.
"""

from keras_adadim.metrics.entropy import matrix_mutual_information
from keras_adadim.metrics.entropy import normalized_gram
from keras_adadim.metrics.entropy import renyi_entropy
from keras_adadim.metrics.gaussian import gaussian_mutual_information
from keras_adadim.metrics.gaussian import (
    gaussian_mutual_information_from_covariance,
)
from keras_adadim.metrics.spectrum import effective_rank
from keras_adadim.metrics.spectrum import eigenvalue_count
from keras_adadim.metrics.spectrum import explained_variance_ratio
from keras_adadim.metrics.spectrum import normalized_eigenvalues
from keras_adadim.metrics.spectrum import rankme
from keras_adadim.metrics.spectrum import singular_values
from keras_adadim.metrics.uniformity import alignment
from keras_adadim.metrics.uniformity import uniformity

__all__ = [
    "alignment",
    "effective_rank",
    "eigenvalue_count",
    "explained_variance_ratio",
    "gaussian_mutual_information",
    "gaussian_mutual_information_from_covariance",
    "matrix_mutual_information",
    "normalized_eigenvalues",
    "normalized_gram",
    "rankme",
    "renyi_entropy",
    "singular_values",
    "uniformity",
]
