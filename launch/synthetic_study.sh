#!/usr/bin/env bash
# The synthetic study of docs/synthetic_study.md: Table 5's six rows plus the two options beyond
# the paper, five seeds, at one equal budget, on the dense (MultiThumos-like) synthetic data
# (configs/demo.py:dense, where the paper ran Table 5); then, on configs/demo.py:hard (with that
# study's earlier settings: 240 videos, 2 + 15 epochs, so they compare with its other rows), the
# two ASCL rows after the fix of ASCL's ranges and the baseline they are tested against; then the
# summary table (mean ± std and Welch t against the baseline row).
#
#   bash launch/synthetic_study.sh [WORKDIR_ROOT]        (default workdirs/study)
#
# Settings (environment): STUDY_SEEDS (default "1 2 3 4 5"), STUDY_EPOCHS (epochs after the 2
# warm-up epochs, default 18), STUDY_VIDEOS (videos generated, 3/4 for training, default 160),
# STUDY_STREAMS (parallel runs, default 2), STUDY_HARD (1: also the :hard ASCL reruns, default 1),
# STUDY_RUNS (a file of "<dense|hard> <row> <seed>" lines: run those, in that order, instead).
# With the defaults a dense run is 20 epochs x 15 steps = 300 optimizer steps of batch 8 (about
# 4 minutes on a quiet 2-core CPU). Runs go seed by seed (each seed: the dense rows, then the
# :hard reruns), so a partial study covers every row with its first seeds; a run whose workdir
# already holds metrics.json is skipped (restartable).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${1:-workdirs/study}"
PY="${PYTHON:-.venv/bin/python}"
SEEDS="${STUDY_SEEDS:-1 2 3 4 5}"
EPOCHS="${STUDY_EPOCHS:-18}"
VIDEOS="${STUDY_VIDEOS:-160}"
STREAMS="${STUDY_STREAMS:-2}"
HARD="${STUDY_HARD:-1}"

# Row directory names: the variants joined with '+'; 'asl' is the full model (no variant).
TABLE5="no_class_level+no_instance_level+no_ascl no_instance_level+no_ascl no_class_level+no_ascl"
TABLE5="$TABLE5 no_class_level+no_instance_level no_ascl asl"
OPTIONS="positives_inside normalize_sensitivity"
# Table 5's rows with ASCL, and the baseline for their Welch t.
HARD_ROWS="no_class_level+no_instance_level+no_ascl no_class_level+no_instance_level asl"

# One line per run: "<data> <row> <seed>".
runs() {
  for seed in $SEEDS; do
    for row in $TABLE5 $OPTIONS; do
      echo "dense ${row} ${seed}"
    done
    if [[ "$HARD" == 1 ]]; then
      for row in $HARD_ROWS; do
        echo "hard ${row} ${seed}"
      done
    fi
  done
}

run_one() {
  local data="$1" row="$2" seed="$3"
  local variant="${data}"
  [[ "$row" != asl ]] && variant="${data},${row//+/,}"
  local workdir="$ROOT/demo_${data}/table5/${row}/seed${seed}"
  [[ -f "$workdir/metrics.json" ]] && return 0
  mkdir -p "$workdir"
  local data_flags=(
    --config.train.num_epochs="$EPOCHS" --config.data.synthetic.num_videos="$VIDEOS"
    --config.data.annotation_file="data/study_${data}_${VIDEOS}/annotations.json"
    --config.data.feature_dir="data/study_${data}_${VIDEOS}/features"
  )
  # :hard as in the earlier study (data/synthetic_hard, 240 videos, 2 + 15 epochs).
  [[ "$data" == hard ]] && data_flags=(--config.train.num_epochs=15)
  echo "$(date +%T) start ${data} ${row} seed ${seed}"
  "$PY" -m asl_jax.cli.train --config="demo.py:${variant}" --workdir="$workdir" \
    --config.seed="$seed" --config.train.warmup_epochs=2 --config.train.write_figures=False \
    "${data_flags[@]}" >"$workdir.log" 2>&1 \
    || echo "FAILED ($?): ${data} ${row} seed ${seed} (log: $workdir.log)"
  echo "$(date +%T) done ${data} ${row} seed ${seed}"
}
export -f run_one
export ROOT PY EPOCHS VIDEOS

# Generate each dataset once before the parallel runs (a run generates it when missing).
for data in dense hard; do
  [[ "$data" == hard && "$HARD" != 1 ]] && continue
  "$PY" - "$data" "$VIDEOS" <<'EOF'
import sys
from asl_jax.configs import demo
from asl_jax.train import loop
name, videos = sys.argv[1], int(sys.argv[2])
config = demo.get_config(name)
if name == 'dense':
  config.data.synthetic.num_videos = videos
  config.data.annotation_file = f'data/study_{name}_{videos}/annotations.json'
  config.data.feature_dir = f'data/study_{name}_{videos}/features'
loop.maybe_synthesize(config.data)
EOF
done

if [[ -n "${STUDY_RUNS:-}" ]]; then cat "$STUDY_RUNS"; else runs; fi |
  xargs -P "$STREAMS" -L 1 bash -c 'run_one "$0" "$1" "$2"'
"$PY" -m launch.summarize_study "$ROOT" --out docs/synthetic_study_results.md
