"""`make demo` end to end: wall time and mAP of the demo config, full ASL vs ASL parts off.

  python -m bench.bench_demo [--quick] [--out bench/results_demo.json]

Each run is ``python -m asl_jax.main --config=configs/demo.py[:baseline]`` in a fresh workdir
(the synthetic data is generated once, outside the timing). The baseline is the same demo with
every ASL part switched off (``:baseline``), measured in the same run, so the ratio is what ASL
costs end to end. ``--quick`` shortens training to 3 epochs (mAP is then not meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_demo(variant: str, workdir: str, extra: list[str]) -> dict:
  config = 'configs/demo.py' + (f':{variant}' if variant else '')
  cmd = [sys.executable, '-m', 'asl_jax.main', f'--config={config}', f'--workdir={workdir}', *extra]
  t0 = time.time()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  wall = time.time() - t0
  if proc.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
  metrics = json.loads((pathlib.Path(workdir) / 'metrics.json').read_text())
  return {'wall_s': wall, 'average_mAP': metrics['ema']['average_mAP']}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='1 run each, 3 epochs')
  parser.add_argument(
    '--runs', type=int, default=None, help='runs per variant (default 3; 1 quick)'
  )
  parser.add_argument('--out', default='bench/results_demo.json')
  args = parser.parse_args(argv)
  runs = args.runs or (1 if args.quick else 3)
  extra = ['--config.train.num_epochs=3'] if args.quick else []
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    # Generate the data once (untimed) so every timed run does the same work.
    run_demo('', os.path.join(scratch, 'warm'), ['--config.train.num_epochs=1'])
    for variant, name in (
      ('baseline', 'ASL parts off (:baseline)'),
      ('', 'full ASL (demo default)'),
    ):
      walls, maps = [], []
      for i in range(runs):
        r = run_demo(variant, os.path.join(scratch, f'{variant or "full"}_{i}'), extra)
        walls.append(r['wall_s'])
        maps.append(r['average_mAP'])
      rows.append(
        {
          'variant': name,
          'runs': runs,
          'median_wall_s': statistics.median(walls),
          'min_wall_s': min(walls),
          'max_wall_s': max(walls),
          'average_mAP': statistics.mean(maps),
        }
      )
  base = rows[0]['median_wall_s']
  for row in rows:
    row['time_vs_baseline'] = row['median_wall_s'] / base
  lines = ['| variant | runs | median wall (s) | min-max (s) | time vs baseline | avg mAP |']
  lines.append('|---|---|---|---|---|---|')
  for r in rows:
    lines.append(
      f'| {r["variant"]} | {r["runs"]} | {r["median_wall_s"]:.1f} | {r["min_wall_s"]:.1f}-'
      f'{r["max_wall_s"]:.1f} | {r["time_vs_baseline"]:.2f}x | {r["average_mAP"]:.4f} |'
    )
  table = '\n'.join(lines)
  print(table)
  result = {
    'benchmark': 'demo',
    'quick': args.quick,
    'rows': rows,
    'table_markdown': table,
    'notes': ['Wall time of the training run itself (the venv already exists; data generated).'],
  }
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
  return result


if __name__ == '__main__':
  main()
