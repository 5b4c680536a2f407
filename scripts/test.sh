#!/usr/bin/env bash
# Sets up a virtual environment with all three Keras backends (CPU builds)
# and runs the test suite once per backend: TensorFlow, JAX, PyTorch.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import keras_adadim, jax, torch, pytest, scipy, tensorboard" 2>/dev/null; then
  python -m pip install -q --upgrade pip
  # torch==2.13.0 is a local CPU build; an unpinned torch pulls a multi-GB
  # CUDA build. The pin lives here, not in the package requirements.
  python -m pip install -q "torch==2.13.0" -e ".[test,jax]"
fi
export TF_CPP_MIN_LOG_LEVEL=3
status=0
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=$backend ==="
  KERAS_BACKEND=$backend python -m pytest tests "$@" || status=1
done
exit $status
