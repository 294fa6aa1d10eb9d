#!/usr/bin/env bash
# Accelerator check for one NVIDIA GPU (H100/H200), under 8 minutes:
#   1. the device-independent test subset (ops, model, mAP) on the GPU;
#   2. bench/device_check.py: train steps/s, peak memory, inference ms/video, MFU in fp32 and bf16;
#   3. (within 2) when ASL_TORCH_REFERENCE names an ActionFormer checkout on this machine and
#      ASL_TORCH_PYTHON (default python3) has a torch that sees the GPU, the PyTorch reference on
#      the same inputs (bench/torch_reference.py); otherwise it says 'reference not available'.
#   4. bench/device_training.py: a whole THUMOS14-shaped training run (synthetic features, 200 + 213
#      videos of T <= 2304, C = 2048; 2 epochs + the final evaluation) through the training loop:
#      epoch wall vs sum of step times, evaluation time, projected 35-epoch time (~4 minutes).
#      It needs no TensorFlow or clu; tqdm, orbax-checkpoint, absl-py, ml-collections (and
#      tensorboard for event files, optional) must be importable or carried in .whl/.
# SKIP_DEVICE_TESTS=1, SKIP_DEVICE_STEP=1, SKIP_DEVICE_TRAINING=1 leave out parts 1, 2 (+3), 4.
# Uses the machine's python3 (its JAX with CUDA); pure-Python packages it lacks (ml-collections,
# clu) can be carried as wheels in .whl/ and are installed into /tmp/site first.
# DEVICE_TEST_TIMEOUT (seconds, default 240) caps step 1.
# Results: bench/results_device.json, bench/results_training.json (and $OUT when set).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import jax; print('jax', jax.__version__, jax.devices())"
# Only tests whose imports the GPU image has (jax, flax, optax, etils; ml-collections from .whl):
# the test suite's other modules import TensorFlow (TFDS tests), which the image lacks.
tests_rc=0
if [ "${SKIP_DEVICE_TESTS:-0}" != 1 ]; then
  timeout "${DEVICE_TEST_TIMEOUT:-240}" $PY -m pytest -p no:cacheprovider -q tests/ops tests/model \
    tests/evaluation/test_metrics.py 2>&1 | tail -8
  tests_rc=${PIPESTATUS[0]}
fi
# The reference adds about a minute on the GPU (two cases, no compilation).
rc=0
if [ "${SKIP_DEVICE_STEP:-0}" != 1 ]; then
  timeout "$([ -n "${ASL_TORCH_REFERENCE:-}" ] && echo 360 || echo 300)" \
    $PY -m bench.device_check --out bench/results_device.json
  rc=$?
  [ -n "${OUT:-}" ] && cp bench/results_device.json "$OUT/" 2>/dev/null
fi
if [ "${SKIP_DEVICE_TRAINING:-0}" != 1 ]; then
  timeout "${DEVICE_TRAINING_TIMEOUT:-420}" $PY -m bench.device_training \
    --out bench/results_training.json
  training_rc=$?
  [ -n "${OUT:-}" ] && cp bench/results_training.json "$OUT/" 2>/dev/null
  if [ "$training_rc" -ne 0 ]; then
    echo "device training failed (exit $training_rc)"
    [ "$rc" -eq 0 ] && rc=$training_rc
  fi
fi
[ "$tests_rc" -ne 0 ] && echo "device tests failed (pytest exit $tests_rc)"
[ "$rc" -ne 0 ] && exit $rc
exit "$tests_rc"
