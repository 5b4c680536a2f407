#!/usr/bin/env bash
# Sets up a virtual environment with all three Keras backends (CPU builds)
# and runs the test suite once per backend: TensorFlow, JAX, PyTorch.
# Usage: bash scripts/test.sh [extra pytest args]
#
# The TensorFlow pass (the longest) runs beside the JAX pass and then the
# PyTorch pass: the passes are independent processes that each keep about
# one core busy (Python, tracing and compiling), so on 2 cores this takes
# about the TensorFlow pass's time instead of the sum of all three.
# TEST_PARALLEL=0 runs them one after another. The TensorFlow pass prints as
# it goes; the others' output follows when each is done.
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
work=$(mktemp -d)
others=
cleanup() {  # also on Ctrl-C: a background pass would run on unseen
  if [ -n "$others" ]; then
    pkill -P "$others" 2>/dev/null || true
    kill "$others" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_pass() {  # backend: one pytest session, its own temporary directory
  echo "=== KERAS_BACKEND=$1 ==="
  # Concurrent sessions each get their own basetemp and no shared cache.
  KERAS_BACKEND=$1 python -m pytest tests -p no:cacheprovider \
    --basetemp="$work/tmp-$1" "${@:2}"
}

status=0
if [ "${TEST_PARALLEL:-1}" = 0 ]; then
  for backend in tensorflow jax torch; do
    run_pass "$backend" "$@" || status=1
  done
  exit $status
fi

(
  rc=0
  for backend in jax torch; do
    run_pass "$backend" "$@" >"$work/$backend.log" 2>&1 || rc=1
    echo "(the $backend pass finished at $(date +%T))" >>"$work/$backend.log"
  done
  exit $rc
) &
others=$!
run_pass tensorflow "$@" || status=1
echo "(waiting for the JAX and PyTorch passes, running since the start)"
wait "$others" || status=1
cat "$work/jax.log" "$work/torch.log"
exit $status
