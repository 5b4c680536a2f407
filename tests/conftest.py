"""Shared fixtures. The backend is chosen by KERAS_BACKEND (scripts/test.sh
runs the suite once per backend)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The SPEC's test vectors (../shared/SPEC.md, "Test vectors").
SPEC_Z1 = np.array([[1, 2, 0], [0, 1, 1], [2, 0, 1], [1, 1, 1]], "float32")
SPEC_Z2 = np.array([[1, 1, 0], [0, 2, 1], [2, 1, 1], [0, 1, 2]], "float32")


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
