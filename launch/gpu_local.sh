#!/usr/bin/env bash
# Runs asl_jax.main on local NVIDIA GPUs; --debug shrinks the run and turns on NaN checks.
#
#   launch/gpu_local.sh --config=configs/demo.py --workdir=workdirs/gpu_demo \
#       [--gpus=0 | --gpus=0,1,2,3 | --gpus=all] [--debug] [--no_jit] \
#       [--mem_fraction=0.5 | --preallocate] [--cuda=12] [--dry_run] \
#       [--coordinator_address=HOST:PORT --num_processes=N --process_id=I] \
#       [--config.train.batch_size=4 ...]
#
# One host, several GPUs: one process drives every GPU it sees (--gpus=all, or a list); the batch
# is split over them. Several hosts: run this once per host with the same --coordinator_address
# (host 0's address and a free port), --num_processes (the number of hosts) and each host's
# --process_id (0 .. N-1); the workdir must be the same folder on every host. The exit status is
# asl_jax.main's (0 finished, 1 error, 2 usage, 75 preempted or a host lost: run it again).
#
# 1. Creates .venv from requirements.txt when missing (make venv) and installs
#    jax[cuda12]==0.10.2 into it when its CUDA plugin is missing (--cuda=13: jax[cuda13]).
# 2. Memory: JAX preallocates 75% of the GPU at start-up by default. This script sets
#    XLA_PYTHON_CLIENT_PREALLOCATE=false (allocate on demand: several processes or a notebook
#    can share the GPU, and nvidia-smi shows the real use); --preallocate restores the default
#    (slightly faster, fewer fragmentation OOMs); --mem_fraction=F sets
#    XLA_PYTHON_CLIENT_MEM_FRACTION=F (the share preallocated, or the cap otherwise).
#    --gpus sets CUDA_VISIBLE_DEVICES (default 0: one GPU, even on a multi-GPU machine; all: every
#    GPU, the variable left unset).
# 3. --debug: JAX_DEBUG_NANS=True (a jitted function producing NaN/inf is re-run op by op and
#    raises at the op), JAX_LOG_COMPILES=True (shows recompilations), and config overrides for a
#    small model and a short run (listed in DEBUG_OVERRIDES); later --config.* arguments win.
#    --no_jit: JAX_DISABLE_JIT=True, everything runs eagerly (print/pdb work inside the model;
#    very slow, use with --debug).
#    --config.debug=True (passed through; asl_jax/debug.py) is the config's own debug mode, for
#    any launcher: a tiny model (width 16, <= 3 pyramid levels), data.max_videos=8, batch 2,
#    one epoch, jax_debug_nans and jax_disable_jit, every change logged; other --config.*
#    arguments keep their values. Eager steps are slow (minutes on a CPU), hence the tiny run.
# --dry_run prints the environment and the commands instead of running them.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${REPO_ROOT}/.venv/bin/python"
JAX_VERSION=0.10.2

DEBUG_OVERRIDES=(
  --config.model.embed_dim=64 --config.model.fpn_dim=64 --config.model.head_dim=64
  --config.model.num_heads=4
  --config.train.batch_size=2 --config.test.batch_size=2
  --config.train.num_epochs=1 --config.train.warmup_epochs=0
  --config.train.log_every_steps=1 --config.train.checkpoint_every_steps=20
)

config='' workdir='' debug=0 no_jit=0 dry_run=0 preallocate=0 mem_fraction='' cuda=12 gpus=''
overrides=() multihost=()
for arg in "$@"; do
  case "$arg" in
    --config=*) config="${arg#--config=}" ;;
    --workdir=*) workdir="${arg#--workdir=}" ;;
    --debug) debug=1 ;;
    --no_jit) no_jit=1 ;;
    --dry_run) dry_run=1 ;;
    --preallocate) preallocate=1 ;;
    --mem_fraction=*) mem_fraction="${arg#--mem_fraction=}" ;;
    --cuda=*) cuda="${arg#--cuda=}" ;;
    --gpus=*) gpus="${arg#--gpus=}" ;;
    --coordinator_address=* | --num_processes=* | --process_id=*) multihost+=("$arg") ;;
    --config.*=*) overrides+=("$arg") ;;
    -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "gpu_local.sh: unknown argument '$arg' (--config.a.b=value passes through)" >&2; exit 2 ;;
  esac
done
if [[ -z "$config" || -z "$workdir" ]]; then
  echo 'gpu_local.sh: --config=FILE and --workdir=DIR are required (see --help)' >&2
  exit 2
fi
if (( ${#multihost[@]} != 0 && ${#multihost[@]} != 3 )); then
  echo 'gpu_local.sh: several hosts need all of --coordinator_address, --num_processes and' \
    '--process_id' >&2
  exit 2
fi
if [[ "$cuda" != 12 && "$cuda" != 13 ]]; then
  echo "gpu_local.sh: --cuda must be 12 or 13, got '$cuda'" >&2
  exit 2
fi

run() {  # Prints the command; runs it unless --dry_run.
  echo "+ $*"
  if (( ! dry_run )); then "$@"; fi
}

# ---------------------------------------------------------------- install
if [[ ! -x "$PY" ]]; then
  run make -C "$REPO_ROOT" venv
fi
if (( dry_run )) || ! "$PY" -m pip show -q "jax-cuda${cuda}-plugin" > /dev/null 2>&1; then
  run "$PY" -m pip install -q "jax[cuda${cuda}]==${JAX_VERSION}"
fi

# ---------------------------------------------------------------- environment
if [[ "$gpus" == all ]]; then
  unset CUDA_VISIBLE_DEVICES
elif [[ -n "$gpus" ]]; then
  export CUDA_VISIBLE_DEVICES="$gpus"
else
  export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if (( preallocate )); then
  unset XLA_PYTHON_CLIENT_PREALLOCATE
else
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
if [[ -n "$mem_fraction" ]]; then
  export XLA_PYTHON_CLIENT_MEM_FRACTION="$mem_fraction"
fi
args=(--config="$config" --workdir="$workdir" "${multihost[@]+"${multihost[@]}"}")
if (( debug )); then
  export JAX_DEBUG_NANS=True JAX_LOG_COMPILES=True
  args+=("${DEBUG_OVERRIDES[@]}")
fi
if (( no_jit )); then
  export JAX_DISABLE_JIT=True
fi
args+=("${overrides[@]+"${overrides[@]}"}")

env | grep -E '^(CUDA_VISIBLE_DEVICES|XLA_PYTHON_CLIENT_[A-Z_]+|JAX_[A-Z_]+|TF_CPP_MIN_LOG_LEVEL)=' \
  | sort | sed 's/^/  env /'
cd "$REPO_ROOT"
run "$PY" -m asl_jax.main "${args[@]}"
