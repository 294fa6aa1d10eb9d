"""Training step cost at the THUMOS14 config: full ASL against the ``:baseline`` (ActionFormer).

python -m bench.bench_train [--quick] [--out bench/results_train.json] [--seq_len T] [--steps N]
                            [--breakdown]

Config: ``configs/custom.py`` (ASL: theta-fused channel attention, class Gaussians, instance
evaluators, L_s and ASCL) and ``configs/custom.py:baseline`` (every ASL part off), both with the
THUMOS14 I3D settings written out: batch 2, T = 2304, input 2048, embed 512, 4 heads, arch
(2, 2, 5), local attention window 19, 20 classes, float32. The step is the one training runs
(``asl_jax.train.build.create_training``: forward, label assignment, losses, gradient clipping,
AdamW, EMA), jitted over a one-axis mesh of the local devices, on random |N(0, 1)| features
with 8 ground-truth segments per video.

Each variant runs in a fresh subprocess (so ``ru_maxrss`` is that variant's peak RSS and no
compilation cache is used) and reports: compile = trace + lower + XLA compile, ahead of time;
step = median wall time of ``--steps`` steps after one warm-up step (5 by default, 3 with
--quick); steps/s = 1 / step; peak RSS after the last step. The ratio row is ASL / baseline
(target: the ASL parts cost < 15% extra per step).

--quick also halves T to 1152 (both variants alike, so the ratio stays meaningful) to fit in a
few minutes on 2 CPU cores; pass --seq_len 2304 to measure the real length. ``bench.run`` sets
the baseline's step beside ActionFormer's PyTorch training step at the same T (same shapes and
inputs, ``bench/torch_reference.py``) when that reference is available.

--breakdown adds where the extra cost comes from: XLA's FLOP estimate of the lowered step (no
compile, no run) as the ASL parts are switched off one by one: ASCL (lambda = 0), then the
instance-level evaluators (q), then the channel attention (theta = 0), down to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import common

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ('asl', 'baseline')
GT_PER_VIDEO = 8
THUMOS = dict(batch_size=2, input_dim=2048, embed_dim=512, arch=(2, 2, 5), window=19, classes=20)
SEQ_LEN, QUICK_SEQ_LEN = 2304, 1152


def default_seq_len(quick: bool) -> int:
  """T when --seq_len is not given (the PyTorch reference is timed at the same T)."""
  return QUICK_SEQ_LEN if quick else SEQ_LEN


def build_config(variant: str, seq_len: int):
  """configs/custom.py[:baseline] with the THUMOS14 settings set explicitly."""
  from asl_jax.configs import custom

  config = custom.get_config('baseline' if variant == 'baseline' else None)
  config.data.input_dim = THUMOS['input_dim']
  config.data.num_classes = THUMOS['classes']
  config.data.max_seq_len = seq_len
  config.model.embed_dim = config.model.fpn_dim = config.model.head_dim = THUMOS['embed_dim']
  config.model.num_heads = 4
  config.model.arch = THUMOS['arch']
  config.model.window_size = THUMOS['window']
  config.train.batch_size = THUMOS['batch_size']
  return config


def make_batch(config, seed: int = 0) -> dict:
  import numpy as np

  rng = np.random.default_rng(seed)
  b, t, m = config.train.batch_size, config.data.max_seq_len, config.data.max_segments
  lengths = rng.uniform(4, min(150, t / 4), (b, m)).astype(np.float32)
  starts = rng.uniform(0, t - lengths, (b, m)).astype(np.float32)
  valid = np.broadcast_to(np.arange(m)[None] < GT_PER_VIDEO, (b, m)).copy()
  return {
    'feats': np.abs(rng.standard_normal((b, t, config.data.input_dim), dtype=np.float32)),
    'mask': np.ones((b, t), bool),
    'segments': np.where(valid[..., None], np.stack([starts, starts + lengths], -1), 0.0).astype(
      np.float32
    ),
    'labels': np.where(valid, rng.integers(0, config.data.num_classes, (b, m)), 0).astype(np.int32),
    'segment_valid': valid,
  }


# Cumulative ablations for --breakdown: (name, config overrides on top of the previous row).
ABLATIONS = (
  ('asl', {}),
  ('- ASCL', {'train.contrastive_weight': 0.0}),
  ('- instance evaluators', {'model.ase.instance_evaluator': False}),
  ('- channel attention', {'model.channel_theta': 0.0}),
)


def run_case(variant: str, seq_len: int, steps: int) -> dict:
  """One variant, in this (fresh) process."""
  import jax

  jax.config.update('jax_enable_compilation_cache', False)
  from asl_jax import parallel
  from asl_jax.train.build import create_training

  config = build_config(variant, seq_len)
  mesh = parallel.create_mesh()
  t0 = time.perf_counter()
  training = create_training(config, mesh, steps_per_epoch=100)
  init_s = time.perf_counter() - t0
  state, batch = training.state, parallel.to_global(make_batch(config), mesh)
  t0 = time.perf_counter()
  compiled = training.train_step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  times = []
  for i in range(steps + 1):  # The first step is the warm-up.
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i:
      times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  return {
    'variant': variant,
    'seq_len': seq_len,
    'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
    'init_s': init_s,
    'compile_s': compile_s,
    'step_s': step_s,
    'steps_per_s': 1.0 / step_s,
    'times_s': times,
    'gflops': float((cost or {}).get('flops', float('nan'))) / 1e9,
    'loss': float(metrics['loss']),
    'loss_terms': sorted(k for k in metrics if k.endswith('_loss')),
    'peak_rss_mb': common.peak_rss_mb(),
    'device': str(jax.devices()[0].platform),
  }


def flops_breakdown(seq_len: int) -> list[dict]:
  """GFLOP per step (XLA's estimate of the lowered, unoptimised step) along ``ABLATIONS``."""
  import jax

  from asl_jax import parallel
  from asl_jax.train.build import create_training

  mesh = parallel.create_mesh()
  config, rows = build_config('asl', seq_len), []
  for name, overrides in [*ABLATIONS, ('baseline', None)]:
    if overrides is None:
      config = build_config('baseline', seq_len)
    else:
      config.update_from_flattened_dict(overrides)
    training = create_training(config, mesh, steps_per_epoch=100)
    batch = parallel.to_global(make_batch(config), mesh)
    cost = training.train_step.lower(training.state, batch).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    params = int(sum(x.size for x in jax.tree.leaves(training.state.params)))
    rows.append({'variant': name, 'gflops': float(cost['flops']) / 1e9, 'params': params})
  return rows


def run_in_subprocess(case: dict, timeout: float) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  for key in ('JAX_COMPILATION_CACHE_DIR', 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'):
    env.pop(key, None)
  t0 = time.perf_counter()
  proc = subprocess.run(
    [sys.executable, '-m', 'bench.bench_train', '--case', json.dumps(case)],
    cwd=REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  wall_s = time.perf_counter() - t0
  if proc.returncode != 0:
    return dict(case, error=proc.stderr[-3000:], wall_s=wall_s)
  return dict(json.loads(proc.stdout.strip().splitlines()[-1]), wall_s=wall_s)


def summarize(rows: dict[str, dict]) -> tuple[str, dict]:
  lines = [
    '| variant | T | params (M) | compile s | step s (median) | steps/s | GFLOP/step '
    '| peak RSS MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for name in VARIANTS:
    r = rows[name]
    if 'error' in r:
      lines.append(f'| {name} | {r["seq_len"]} | failed: see JSON | | | | | |')
      continue
    lines.append(
      f'| {name} | {r["seq_len"]} | {r["params"] / 1e6:.2f} | {r["compile_s"]:.1f} | '
      f'{r["step_s"]:.2f} | {r["steps_per_s"]:.3f} | {r["gflops"]:.0f} | {r["peak_rss_mb"]:.0f} |'
    )
  ratio = {}
  if not any('error' in r for r in rows.values()):
    asl, base = rows['asl'], rows['baseline']
    ratio = {
      k: asl[k] / base[k] for k in ('step_s', 'compile_s', 'gflops', 'peak_rss_mb', 'params')
    }
    lines.append(
      f'| ASL / baseline | | {ratio["params"]:.3f} | {ratio["compile_s"]:.2f} | '
      f'{ratio["step_s"]:.3f} | | {ratio["gflops"]:.3f} | {ratio["peak_rss_mb"]:.2f} |'
    )
  return '\n'.join(lines), ratio


def format_breakdown(breakdown: dict) -> str:
  if 'error' in breakdown:
    return f'breakdown failed:\n{breakdown["error"]}'
  rows = breakdown['rows']
  base = rows[-1]['gflops']
  lines = [
    '\n| step without (cumulative) | GFLOP/step (XLA estimate) | vs baseline | params (M) |',
    '|---|---:|---:|---:|',
  ]
  for r in rows:
    lines.append(
      f'| {r["variant"]} | {r["gflops"]:.1f} | {r["gflops"] / base:.3f} | {r["params"] / 1e6:.2f} |'
    )
  return '\n'.join(lines)


def main(argv=None) -> dict | None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='T = 1152 and 3 timed steps')
  parser.add_argument('--seq_len', type=int, default=None, help='T (default 2304; 1152 quick)')
  parser.add_argument('--steps', type=int, default=None, help='timed steps (default 5; 3 quick)')
  parser.add_argument('--breakdown', action='store_true', help='FLOPs as ASL parts go off')
  parser.add_argument('--out', default='bench/results_train.json', help='JSON results')
  parser.add_argument('--case', default=None, help=argparse.SUPPRESS)  # Internal: one process.
  args = parser.parse_args(argv)
  if args.case:
    case = json.loads(args.case)
    if case.get('breakdown'):
      print(json.dumps({'rows': flops_breakdown(case['seq_len'])}))
    else:
      print(json.dumps(run_case(case['variant'], case['seq_len'], case['steps'])))
    return None

  seq_len = args.seq_len or default_seq_len(args.quick)
  steps = args.steps or (3 if args.quick else 5)
  load_before = os.getloadavg()
  rows = {}
  for variant in VARIANTS:
    case = {'variant': variant, 'seq_len': seq_len, 'steps': steps}
    rows[variant] = run_in_subprocess(case, timeout=3600)
    print(f'{variant}: {json.dumps(rows[variant])[:300]}', file=sys.stderr)
  table, ratio = summarize(rows)
  print(table)
  if ratio:
    extra = 100 * (ratio['step_s'] - 1)
    verdict = 'within' if extra < 15 else 'over'
    print(
      f'\nASL costs {extra:+.1f}% per training step vs the baseline ({verdict} the 15% target).'
    )
  breakdown = None
  if args.breakdown:
    breakdown = run_in_subprocess({'breakdown': True, 'seq_len': seq_len}, timeout=3600)
    print(format_breakdown(breakdown))
  result = {
    'benchmark': 'train',
    'quick': args.quick,
    'seq_len': seq_len,
    'timed_steps': steps,
    'config': dict(THUMOS, seq_len=seq_len),
    'rows': rows,
    'ratio_asl_over_baseline': ratio,
    'flops_breakdown': breakdown,
    'machine': common.process_machine(load_before),
    'table': table,
  }
  common.write_result(result, args.out, announce=True)
  return result


if __name__ == '__main__':
  from asl_jax import hugepages

  hugepages.reexec_with_hugepages()  # Children (and the PyTorch reference) inherit it.
  main()
