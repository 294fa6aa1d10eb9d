#!/usr/bin/env bash
# The synthetic study of docs/synthetic_study.md: Table 5's rows x 3 seeds, at one equal budget,
# on the demo data and on its harder variant (configs/demo.py:hard), then the summary table.
#
#   bash launch/synthetic_study.sh [WORKDIR_ROOT]        (default workdirs/study)
#
# The two datasets run as two parallel streams (about 2 x 18 runs of ~2 minutes on 2 CPU cores);
# inside a stream the runs go seed by seed, so a partial study still covers every row. A run whose
# workdir already holds metrics.json is skipped, so the script can be restarted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${1:-workdirs/study}"
PY="${PYTHON:-.venv/bin/python}"
EPOCHS="${STUDY_EPOCHS:-15}"

stream() {
  local config="$1"
  for seed in 1 2 3; do
    "$PY" -m launch.sweep --config="$config" --sweep=table5 --seeds "$seed" \
      --workdir_root "$ROOT" --config.train.num_epochs="$EPOCHS" \
      --config.train.write_figures=False | grep '^python' | while read -r cmd; do
      local workdir
      workdir=$(sed -E 's/.*--workdir=([^ ]+).*/\1/' <<<"$cmd")
      if [[ -f "$workdir/metrics.json" ]]; then continue; fi
      mkdir -p "$workdir"
      echo "$(date +%T) $cmd"
      # shellcheck disable=SC2086
      ${cmd/python/$PY} >"$workdir.log" 2>&1 || echo "FAILED ($?): $cmd (log: $workdir.log)"
    done
  done
}

stream configs/demo.py &
stream configs/demo.py:hard &
wait
"$PY" -m launch.summarize_study "$ROOT"
