"""Runs every benchmark and writes ``bench/RESULTS.md`` and ``bench/results.json``.

  python -m bench.run [--quick] [--only model,train] [--seq_len T] [--out_dir bench] [--merge]

Each benchmark runs in its own subprocess (so peak-memory figures are its own) as
``python -m bench.<name> [--quick] --out <json>``; it reports medians of repeated runs after a
warm-up, min-max, and ratios against a baseline measured in the same run. This file only runs
them and renders their JSON: the machine first, then one section per benchmark, then our model
side by side with the PyTorch reference (ActionFormer, ``bench/torch_reference.py``) timed in the
same run on the same inputs, with ratios; where ``ASL_TORCH_REFERENCE`` is unset or unusable,
that section says 'reference not available' and why. Nothing in RESULTS.md is written by hand.
``--seq_len`` runs the T-dependent benchmarks (model, train, torch_reference) at a reduced T.
``--merge`` keeps the other benchmarks' results from the existing ``results.json`` (and its
machine record) and replaces or adds only those run now, in the order above.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

from asl_jax import hugepages

ROOT = pathlib.Path(__file__).resolve().parents[1]
# name -> what it measures (the order is the order of RESULTS.md).
BENCHMARKS = {
  'bench_input': 'Input pipeline: examples/s from TFDS shards vs plain np.load',
  'bench_model': 'Model: forward, forward+backward, compile time, peak memory; T scaling',
  'bench_train': 'Training step: steps/s, compile time, peak memory; full ASL vs its parts off',
  'torch_reference': 'PyTorch reference (ActionFormer) on the same inputs: forward, train step',
  'bench_evaluation': 'Evaluation: jitted mAP and Soft-NMS vs straightforward implementations',
  'bench_demo': '`make demo` end to end (train + evaluate on the synthetic benchmark)',
  'bench_sharded_eval': 'Evaluation split over 2 local processes vs 1: time, same detections',
  'bench_cache': 'Warm starts: persistent compilation cache, cold vs warm (fresh processes)',
  'bench_memory': 'Training step memory (XLA buffer assignment): attention, T, batch, remat',
  'bench_overlap': 'Input overlap: share of the loop waiting for batches, prefetch off vs on',
}
NO_GPU_NOTE = (
  'No GPU figures exist yet: `bench/device_check.sh` has not been run on a machine with an NVIDIA '
  'GPU. When it is, its results are added here with the device named.'
)
# Results of bench/device_check.sh (its results_device.json), one file per device run, kept.
DEVICE_RESULTS = ROOT / 'bench' / 'device_results'


def machine_info() -> dict:
  import jax
  import jaxlib

  cpu = platform.processor() or ''
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(
        (line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu
      )
  except OSError:
    pass
  return {
    'date': datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC'),
    'cpu': cpu,
    'cores': os.cpu_count(),
    'memory_gb': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
    'python': platform.python_version(),
    'jax': jax.__version__,
    'jaxlib': jaxlib.__version__,
    'backend': jax.default_backend(),
    'device_kind': jax.devices()[0].device_kind,
    'load_average': os.getloadavg(),
    'transparent_hugepages': hugepages.thp_mode(),
    'GLIBC_TUNABLES': os.environ.get('GLIBC_TUNABLES'),
  }


SEQ_LEN_AWARE = ('bench_model', 'bench_train', 'torch_reference')


def run_one(name: str, quick: bool, scratch: pathlib.Path, seq_len: int | None = None) -> dict:
  """Runs ``bench.<name>`` in a subprocess; a failure is recorded, not raised."""
  out = scratch / f'{name}.json'
  cmd = [sys.executable, '-m', f'bench.{name}', '--out', str(out)] + (['--quick'] if quick else [])
  if seq_len and name in SEQ_LEN_AWARE:
    cmd.append(f'--seq_len={seq_len}')
  t0 = time.time()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  wall = time.time() - t0
  if proc.returncode != 0 or not out.exists():
    tail = (proc.stdout + proc.stderr)[-2000:]
    return {
      'benchmark': name,
      'error': f'exit code {proc.returncode}',
      'log_tail': tail,
      'wall_s': wall,
    }
  result = json.loads(out.read_text())
  result.setdefault('wall_s', wall)
  return result


def render_rows(rows: list[dict]) -> str:
  """A markdown table of a benchmark's rows (their keys, in first-seen order)."""
  if not rows:
    return '(no rows)'
  keys = []
  for row in rows:
    keys += [k for k in row if k not in keys and not isinstance(row[k], (dict, list))]

  def cell(v):
    if isinstance(v, float):
      return f'{v:.4g}'
    return str(v)

  lines = ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
  lines += ['| ' + ' | '.join(cell(r.get(k, '')) for k in keys) + ' |' for r in rows]
  return '\n'.join(lines)


def _ratio(ref: float | None, ours: float | None) -> str:
  return f'{ref / ours:.2f}x' if ref and ours else '-'


def side_by_side(results: list[dict]) -> list[str]:
  """Ours next to the PyTorch reference, case by case, with reference / ours ratios."""
  from bench import bench_model

  by_name = {r.get('benchmark'): r for r in results}
  if not {'model', 'train', 'torch_reference'} & set(by_name):
    return []
  reference = by_name.get('torch_reference')
  lines = ['## Side by side with the PyTorch reference', '']
  if reference is None:
    return lines + ['Not run (`--only` left out torch_reference).', '']
  if 'error' in reference or not reference.get('rows'):
    status = reference.get('status') or f'failed ({reference.get("error")})'
    return lines + [f'{status}; skipped.', '']
  ref_info = reference.get('reference', {})
  lines += [
    f'Reference: ActionFormer {ref_info.get("commit") or ""} under torch {ref_info.get("torch")} '
    f'({ref_info.get("threads")} threads); ours: JAX, in this run. Ratios are reference / ours '
    '(above 1: ours is faster or smaller). Model rows: bench_model (step = fwd+bwd + optimizer '
    'update); train rows: bench_train (the whole jitted training step).',
    '',
    '| attention | T | implementation | infer s/video (b1) | fwd+bwd s (b2) | step s (b2) | '
    'peak RSS GB | infer ref/ours | fwd+bwd ref/ours | step ref/ours | RSS ref/ours |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  model_rows = [r for r in by_name.get('model', {}).get('rows', []) if 'error' not in r]
  train = by_name.get('train', {})
  for ref in reference['rows']:
    key = (ref['attention'], ref['seq_len'])
    if 'error' in ref:
      lines.append(f'| {key[0]} | {key[1]} | reference failed: {ref["error"][-150:]!r} |')
      continue
    r_inf, r_fb = ref['forward_b1']['median_s'], ref['forward_backward']['median_s']
    r_step, r_rss = ref['step']['median_s'], ref['peak_rss_mb'] / 1024
    lines.append(
      f'| {key[0]} | {key[1]} | PyTorch ActionFormer | {r_inf:.3f} | {r_fb:.3f} | {r_step:.3f} | '
      f'{r_rss:.2f} | | | | |'
    )
    for row in model_rows:
      if (row['attention'], row['seq_len']) != key or 'infer_b1' not in row:
        continue
      inf, fb = row['infer_b1']['median_s'], row['forward_backward']['median_s']
      step, rss = bench_model.step_seconds(row, model_rows), row['peak_rss_mb'] / 1024
      lines.append(
        f'| {key[0]} | {key[1]} | ours, {row.get("variant", "asl")} (bench_model) | {inf:.3f} | '
        f'{fb:.3f} | {step:.3f} | {rss:.2f} | {_ratio(r_inf, inf)} | {_ratio(r_fb, fb)} | '
        f'{_ratio(r_step, step)} | {_ratio(r_rss, rss)} |'
      )
    if key[0] == 'local' and train.get('seq_len') == key[1]:
      for variant, row in train.get('rows', {}).items():
        if 'error' in row:
          continue
        step, rss = row['step_s'], row['peak_rss_mb'] / 1024
        lines.append(
          f'| {key[0]} | {key[1]} | ours, {variant} (bench_train) | | | {step:.3f} | {rss:.2f} '
          f'| | | {_ratio(r_step, step)} | {_ratio(r_rss, rss)} |'
        )
  return lines + ['']


def accelerators(directory: pathlib.Path = DEVICE_RESULTS) -> list[str]:
  """The Accelerators section: each kept device run, with the reference timed on the same GPU."""
  files = sorted(directory.glob('*.json')) if directory.is_dir() else []
  if not files:
    return [NO_GPU_NOTE, '']
  lines = [
    'From `bash bench/device_check.sh` on a lent machine (files in `bench/device_results/`). '
    'Ours: full ASL (channel attention, Gaussians, instance evaluators, ASCL) at the THUMOS14 '
    'config, local window 19, batch 2, T = 2304; the reference, ActionFormer, does less work. '
    "MFU: FLOPs of the lowered step over the chip's dense peak (TF32 for float32).",
    '',
  ]
  for path in files:
    result = json.loads(path.read_text())
    lines += [
      f'### {result.get("device", "?")}, {result.get("date", "date not recorded")}, '
      f'jax {result.get("jax", "?")} (`{path.name}`)',
      '',
      result.get('table_markdown', ''),
      '',
    ]
    lines += [f'- {note}' for note in result.get('notes', [])]
    lines += [''] if result.get('notes') else []
    ref = result.get('torch_reference') or {}
    ours = {r['dtype']: r for r in result.get('rows', [])}.get('float32')
    if ref.get('status') != 'ok' or not ours:
      lines += [f'PyTorch reference: {ref.get("status", "not run")}', '']
      continue
    lines += [ref.get('table_markdown', ''), '']
    for row in ref.get('rows', []):
      step = row['step']['median_s'] / ours['step_s_median']
      infer = row['forward_b1']['median_s'] / (ours['ms_per_video'] / 1000)
      lines.append(
        f'- reference {row["attention"]} / ours (float32): training step {step:.2f}x, '
        f'inference {infer:.2f}x (ours includes decoding and Soft-NMS)'
      )
    lines.append('')
  return lines


def render(machine: dict, results: list[dict], quick: bool) -> str:
  lines = [
    '# Benchmark results',
    '',
    f'Generated by `python -m bench.run{" --quick" if quick else ""}`.',
    '',
  ]
  lines += ['## Machine', '']
  lines += [f'- {k}: {v}' for k, v in machine.items()]
  lines += ['', '## Accelerators', '', *accelerators()]
  for result in results:
    name = result.get('benchmark', '?')
    lines += [f'## {name}', '', BENCHMARKS.get(f'bench_{name}', BENCHMARKS.get(name, '')), '']
    if 'error' in result:
      lines += [
        f'**Failed** ({result["error"]}):',
        '',
        '```',
        result.get('log_tail', ''),
        '```',
        '',
      ]
      continue
    rows = result.get('rows', [])
    rows = list(rows.values()) if isinstance(rows, dict) else rows  # bench_train: by variant.
    lines += [result.get('table_markdown') or result.get('table') or render_rows(rows), '']
    for note in result.get('notes', []):
      lines.append(f'- {note}')
    if 'wall_s' in result:  # Not recorded by a benchmark taken from its own file (--add).
      lines.append(f'Wall time: {result["wall_s"]:.0f} s.')
    lines.append('')
  lines += side_by_side(results)
  return '\n'.join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='fewer repetitions and smaller cases')
  parser.add_argument(
    '--only', default='', help='comma-separated subset of: ' + ', '.join(BENCHMARKS)
  )
  parser.add_argument('--out_dir', default=str(ROOT / 'bench'))
  parser.add_argument(
    '--merge', action='store_true', help='keep the other results of the existing results.json'
  )
  parser.add_argument(
    '--add',
    action='append',
    default=[],
    metavar='NAME=JSON',
    help='take benchmark NAME from a result file it wrote (--out) instead of running it',
  )
  parser.add_argument(
    '--seq_len', type=int, default=None, help='reduced T for model, train and torch_reference'
  )
  args = parser.parse_args(argv)
  names = [
    n if n.startswith('bench_') or n in BENCHMARKS else f'bench_{n}'
    for n in args.only.split(',')
    if n
  ] or list(BENCHMARKS)
  unknown = [n for n in names if n not in BENCHMARKS]
  if unknown:
    parser.error(f'unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}')
  added = dict(item.split('=', 1) for item in args.add)
  added = {n if n.startswith('bench_') else f'bench_{n}': path for n, path in added.items()}
  machine = machine_info()
  results = []
  with tempfile.TemporaryDirectory() as scratch:
    for name in names:
      if not (ROOT / 'bench' / f'{name}.py').exists():
        results.append(
          {'benchmark': name, 'error': 'not available', 'log_tail': f'bench/{name}.py missing'}
        )
        continue
      if name in added:  # Measured earlier (a long benchmark run on its own).
        results.append(json.loads(pathlib.Path(added[name]).read_text()))
        continue
      print(f'running {name} ...', file=sys.stderr, flush=True)
      results.append(run_one(name, args.quick, pathlib.Path(scratch), args.seq_len))
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  if args.merge and (out_dir / 'results.json').exists():
    previous = json.loads((out_dir / 'results.json').read_text())
    ran = {r['benchmark'] for r in results}
    kept = [r for r in previous['results'] if r.get('benchmark') not in ran]
    order = [name.removeprefix('bench_') for name in BENCHMARKS]
    rank = lambda r: order.index(r['benchmark']) if r['benchmark'] in order else len(order)
    machine, results = previous['machine'], sorted(kept + results, key=rank)
  (out_dir / 'results.json').write_text(  # First: the figures survive a rendering error.
    json.dumps({'machine': machine, 'results': results}, indent=2)
  )
  (out_dir / 'RESULTS.md').write_text(render(machine, results, args.quick))
  print(f'wrote {out_dir / "RESULTS.md"} and {out_dir / "results.json"}', file=sys.stderr)


if __name__ == '__main__':
  hugepages.reexec_with_hugepages()  # Children (and the PyTorch reference) inherit it.
  main()
