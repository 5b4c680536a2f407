#!/usr/bin/env bash
# The prepared GPU check (issue 14): at most 8 minutes on one GPU, every
# number written as JSON (benchmarks/gpu_check.py says what it measures).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py options]
#
# OUT_DIR defaults to $OUT (the device tool's output folder) or
# runs/gpu_check. It needs Python with Keras 3 and at least one of JAX,
# PyTorch, TensorFlow with GPU support, and this checkout's dependencies
# (numpy; huggingface_hub is not needed). Where Keras is missing but wheels
# were put in .whl/ (the project's lent H200 has JAX and PyTorch but no
# Keras, and TensorFlow is too big to carry: benchmarks/README.md), they
# are installed to /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
shift || true
mkdir -p "$out"
PY=${PYTHON:-python3}
if ! "$PY" -c "import keras" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia_smi.csv"
# The check stops itself inside its budget (420 s); the timeout is a backstop.
PYTHONUNBUFFERED=1 timeout "${GPU_CHECK_TIMEOUT:-470}" "$PY" benchmarks/gpu_check.py --out "$out/gpu_check.json" "$@" 2>&1 | tee "$out/gpu_check.log"
