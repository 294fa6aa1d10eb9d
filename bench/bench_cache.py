"""Warm starts: the persistent compilation cache, cold against warm, in fresh processes.

  python -m bench.bench_cache [--quick] [--out bench/results_cache.json] [--seq_len T]

1. Time to first step at the THUMOS14 config (``bench.bench_train.build_config('asl')``: batch 2,
   T = 2304, full ASL): a fresh process builds the model and state, compiles the step and runs one
   step; timed from before the model is built to the first step's metrics on the host. Cold: an
   empty cache folder; warm: a second process on the same folder. Target: warm <= 0.3x cold.
2. A whole small run, ``asl-train --config=demo.py:tiny`` (train 2 epochs + evaluate), wall time
   of the process: with ``--compilation_cache=off`` against warm (a first run fills the cache).
   Target: warm <= 0.7x off.
Each process uses the cache as every command does (:mod:`asl_jax.compilation_cache`), with JAX's
default threshold (programs that compile in under 1 s are not written). ``--quick`` halves T.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from bench import bench_train, common

ROOT = pathlib.Path(__file__).resolve().parents[1]


# JAX's duration events, summed over every program the first step needs (seconds).
PHASES = {
  '/jax/core/compile/jaxpr_trace_duration': 'trace_s',
  '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower_s',
  '/jax/core/compile/backend_compile_duration': 'compile_or_cache_read_s',
  '/jax/compilation_cache/cache_retrieval_time_sec': 'cache_read_s',
}


def first_step(cache_dir: str, seq_len: int) -> dict:
  """In this (fresh) process: build, compile and run one THUMOS14 step; seconds it took."""
  from asl_jax import compilation_cache

  compilation_cache.apply(cache_dir)
  import jax

  from asl_jax import parallel
  from asl_jax.train.build import create_training

  # Where the time goes: cache hits and misses, and JAX's duration events for every trace,
  # lowering, XLA compilation and cache read the first step needs.
  counts = {'cache_hits': 0, 'cache_misses': 0}
  phases = dict.fromkeys(PHASES.values(), 0.0)

  def on_event(event: str, **kw) -> None:
    name = event.rsplit('/', 1)[-1]
    if name in counts:
      counts[name] += 1

  def on_duration(event: str, duration: float, **kw) -> None:
    if event in PHASES:
      phases[PHASES[event]] += duration

  jax.monitoring.register_event_listener(on_event)
  jax.monitoring.register_event_duration_secs_listener(on_duration)
  config = bench_train.build_config('asl', seq_len)
  t0 = time.perf_counter()
  mesh = parallel.create_mesh()
  training = create_training(config, mesh, steps_per_epoch=100)
  batch = parallel.to_global(bench_train.make_batch(config), mesh)
  _, metrics = training.train_step(training.state, batch)
  loss = float(jax.device_get(metrics['loss']))
  total = time.perf_counter() - t0
  return {'first_step_s': total, 'loss': loss, **counts, **phases}


def _subprocess(args: list[str], env: dict | None = None, cwd=ROOT) -> tuple[float, str]:
  t0 = time.perf_counter()
  proc = subprocess.run(
    [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=3600
  )
  wall = time.perf_counter() - t0
  if proc.returncode != 0:
    raise RuntimeError(f'{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
  return wall, proc.stdout


def _cache_entries(folder: pathlib.Path) -> int:
  return len(list(folder.rglob('*-cache')))


def time_to_first_step(seq_len: int, scratch: pathlib.Path) -> dict:
  cache = scratch / 'cache_first_step'
  rows = {}
  for name in ('cold', 'warm'):
    _, out = _subprocess(
      ['-m', 'bench.bench_cache', '--first_step', str(cache), f'--seq_len={seq_len}']
    )
    rows[name] = json.loads(out.strip().splitlines()[-1])
    rows[name]['cache_entries'] = _cache_entries(cache)
  rows['warm_over_cold'] = rows['warm']['first_step_s'] / rows['cold']['first_step_s']
  return rows


def whole_run(scratch: pathlib.Path) -> dict:
  cache = scratch / 'cache_run'
  env = {k: v for k, v in os.environ.items() if not k.startswith('JAX_COMPILATION_CACHE')}
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
  base = ['-m', 'asl_jax.main', '--config=demo.py:tiny', '--config.train.num_epochs=2']
  runs = {}
  # First: fills the cache (and generates the tiny data set in scratch, used by the others).
  for name, flag in (('cold', str(cache)), ('off', 'off'), ('warm', str(cache))):
    workdir = scratch / f'run_{name}'
    wall, _ = _subprocess(
      [*base, f'--workdir={workdir}', f'--compilation_cache={flag}'], env=env, cwd=scratch
    )
    runs[name] = {'wall_s': wall, 'cache_entries': _cache_entries(cache)}
  runs['warm_over_off'] = runs['warm']['wall_s'] / runs['off']['wall_s']
  return runs


def main(argv=None) -> dict | None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--out', default=None)
  parser.add_argument('--seq_len', type=int, default=None)
  parser.add_argument('--first_step', default=None, help=argparse.SUPPRESS)  # Child process.
  args = parser.parse_args(argv)
  seq_len = args.seq_len or bench_train.default_seq_len(args.quick)
  if args.first_step:
    print(json.dumps(first_step(args.first_step, seq_len)), flush=True)
    return None
  load = os.getloadavg()
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    first = time_to_first_step(seq_len, scratch)
    run = whole_run(scratch)
  rows = [
    {
      'measure': f'time to first step, THUMOS14 config (T {seq_len}, batch 2)',
      'cold_s': first['cold']['first_step_s'],
      'warm_s': first['warm']['first_step_s'],
      'warm / cold': first['warm_over_cold'],
      'target': '<= 0.3',
    },
    {
      'measure': 'whole run, demo.py:tiny, 2 epochs + evaluation (process wall)',
      'cold_s': run['cold']['wall_s'],
      'off_s': run['off']['wall_s'],
      'warm_s': run['warm']['wall_s'],
      'warm / off': run['warm_over_off'],
      'target': '<= 0.7',
    },
  ]
  result = {
    'benchmark': 'cache',
    'seq_len': seq_len,
    'rows': rows,
    'first_step': first,
    'whole_run': run,
    'machine': common.process_machine(load),
    'notes': [
      f'Warm first step: {first["warm"]["cache_hits"]} programs read from the cache '
      f'({first["warm"]["cache_entries"]} entries), {first["warm"]["cache_misses"]} compiled '
      '(under the 1 s threshold, not written); the rest of the warm time is Python, tracing, '
      'lowering (the cache key hashes the lowered program) and the step itself.',
      'Seconds, cold -> warm: '
      + ', '.join(
        f'{k} {first["cold"][k]:.1f} -> {first["warm"][k]:.1f}'
        for k in ('first_step_s', *PHASES.values())
      )
      + ' (compile_or_cache_read_s: XLA compilation, or the key and the read on a hit).',
      'cold: empty cache folder; warm: a second process on the same folder; off: '
      '--compilation_cache=off. Each row is one process per case on a shared machine (noisy).',
    ],
  }
  print(json.dumps(rows, indent=1))
  common.write_result(result, args.out, announce=True)
  return result


if __name__ == '__main__':
  main()
