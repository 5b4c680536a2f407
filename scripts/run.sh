#!/usr/bin/env bash
# Sets up a virtual environment (TensorFlow backend) and runs the main job:
# `adadim pretrain` with its defaults -- a short AdaDim pre-training on the
# bundled digits data, then linear probes of the encoder and two baselines.
# Usage: bash scripts/run.sh [adadim pretrain flags, e.g. --epochs 30]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import keras_adadim, sklearn, matplotlib, tensorboard" 2>/dev/null; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".[plot]"
fi
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
adadim pretrain "$@"
