"""Model cost at the THUMOS14 config: parameters, compile, forward, forward+backward, peak RSS.

python -m bench.bench_model [--quick] [--seq_len T] [--out bench/results_model.json]

Model: ``configs/custom.py`` (ASL defaults on: theta-fused channel attention, class Gaussians,
instance evaluators, ASCL) with THUMOS14 I3D geometry: input 2048, embed 512, 4 heads, arch
(2, 2, 5), 20 classes, batch 2, float32. Cases: local attention (window 19, ActionFormer's) at
T = 2304 / 4608 / 9216, to show the cost grows linearly in T, and global attention
(``window_size = -1``, what the authors' ASL code runs) at T = 2304, the equal-work comparison
with the reference, and (not with --quick) at 4608 / 9216, where the attention maps grow as T^2.
When the PyTorch reference is available (``bench/torch_reference.py``: ``ASL_TORCH_REFERENCE``
set), the ActionFormer-equivalent ``:baseline`` is measured too at T = 2304, global and local:
the like-for-like comparison with it. ``--seq_len`` replaces 2304 (and its multiples) for a
reduced run.

Each case runs in a fresh subprocess (so ``ru_maxrss`` is that case's peak RSS and nothing is
reused from a compilation cache) and measures, with random features and 8 ground-truth segments
per video:
  * forward: inference (deterministic) at batch 2; at T = 2304 also batch 1, per video;
  * forward+backward: ``jax.value_and_grad`` of the full training objective
    (``asl_jax.train.objective.compute_losses``: label assignment, focal, DIoU, L_s, ASCL) in
    training mode (drop-path on);
  * compile: trace + lower + XLA compile of each, ahead of time;
  * peak RSS: after the forward and after the forward+backward (the high-water mark only grows).
Times are the median of 5 runs after one warm-up run (2 with --quick), wall clock, with the
process CPU time alongside (robust to other load on a shared machine). The optimizer update
(clip + AdamW + EMA over all parameters) is timed once, in the T = 2304 local case: a training
step is forward+backward plus that update.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from bench import common, reference_env

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BATCH = 2
INPUT_DIM = 2048
NUM_CLASSES = 20
BASE_LEN = 2304  # THUMOS14 max_seq_len.
GT_PER_VIDEO = 8

# The authors' PyTorch ASL code on this machine type, as given in the model issue (not re-measured
# here). THUMOS config, global attention. ActionFormer's PyTorch code is measured on the same
# inputs when available: bench/torch_reference.py, and the side-by-side section of bench.run.
REFERENCE = {
  'provenance': (
    "authors' PyTorch code (JonnyS1226/ego4d_asl, ActionFormer-based), THUMOS14 config, global "
    'attention, on this machine type; figures from the model issue, not re-measured here'
  ),
  'train_step_s': 14.0,  # Batch 2.
  'infer_per_video_s': 2.7,  # Batch 1, no NMS.
  'train_peak_rss_gb': 5.7,
}
TARGET_SPEEDUP = {'global': 1.0, 'local': 3.0}  # Ours vs the reference, training step.
# ActionFormer-equivalent parameter count at this config (docs asl-reference.md sec. 12).
REFERENCE_ACTIONFORMER_PARAMS = 29_251_612


def cases(quick: bool, base_len: int = BASE_LEN, with_baseline: bool = False) -> list[dict]:
  lens = (base_len, 2 * base_len, 4 * base_len)
  out = [dict(attention='local', window=19, seq_len=t) for t in lens]
  out += [dict(attention='global', window=-1, seq_len=t) for t in (lens[:1] if quick else lens)]
  if with_baseline:  # The ActionFormer-equivalent model, next to the PyTorch reference.
    out += [
      dict(attention=a, window=w, seq_len=base_len, variant='baseline')
      for a, w in (('global', -1), ('local', 19))
    ]
  return [dict(c, base_len=base_len) for c in out]


def build_config(window: int, baseline: bool = False, base_len: int = BASE_LEN):
  """configs/custom.py with the THUMOS14 overrides (and the ``:baseline`` variant if asked)."""
  from asl_jax.configs import custom

  config = custom.get_config('baseline' if baseline else None)
  config.data.input_dim = INPUT_DIM
  config.data.num_classes = NUM_CLASSES
  config.data.max_seq_len = base_len
  config.model.embed_dim = config.model.fpn_dim = config.model.head_dim = 512
  config.model.num_heads = 4
  config.model.arch = (2, 2, 5)
  config.model.window_size = window
  config.train.batch_size = BATCH
  return config


def param_count(tree) -> int:
  import jax

  return int(sum(x.size for x in jax.tree.leaves(tree)))


def cpu_seconds() -> float:
  """User + system CPU time of this process (all its threads)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def make_batch(seq_len: int, batch: int, max_segments: int, seed: int = 0) -> dict:
  """Random |N(0,1)| features, full masks and ``GT_PER_VIDEO`` segments per video (grid units)."""
  import numpy as np

  rng = np.random.default_rng(seed)
  starts = rng.uniform(0, seq_len - 200, (batch, max_segments)).astype(np.float32)
  lengths = rng.uniform(4, 150, (batch, max_segments)).astype(np.float32)
  valid = np.arange(max_segments)[None] < GT_PER_VIDEO
  return {
    'feats': np.abs(rng.standard_normal((batch, seq_len, INPUT_DIM), dtype=np.float32)),
    'mask': np.ones((batch, seq_len), bool),
    'segments': np.where(valid[..., None], np.stack([starts, starts + lengths], -1), 0.0),
    'labels': np.where(valid, rng.integers(0, NUM_CLASSES, (batch, max_segments)), 0).astype(
      np.int32
    ),
    'segment_valid': np.broadcast_to(valid, (batch, max_segments)).copy(),
  }


def compile_and_time(fn, args, runs: int) -> dict:
  """AOT compile time, XLA's flop estimate, and medians of ``runs`` timed calls after a warm-up.

  Wall time is the measurement; the process's CPU time per call is kept alongside, since on a
  shared machine other processes' load inflates wall time but hardly the CPU time.
  """
  import jax

  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  jax.block_until_ready(compiled(*args))  # Warm-up.
  times, cpu = [], []
  for _ in range(runs):
    t0, c0 = time.perf_counter(), cpu_seconds()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
    cpu.append(cpu_seconds() - c0)
  return {
    'compile_s': compile_s,
    'median_s': statistics.median(times),
    'times_s': times,
    'cpu_s': statistics.median(cpu),
    'gflops': float((cost or {}).get('flops', float('nan'))) / 1e9,
  }


def run_case(case: dict, runs: int) -> dict:
  """One configuration, in this (fresh) process."""
  import jax
  import jax.numpy as jnp
  import optax

  from asl_jax.model.build import build_model
  from asl_jax.ops import segments as seg_ops
  from asl_jax.train import optim
  from asl_jax.train.build import build_loss_config
  from asl_jax.train.objective import compute_losses

  jax.config.update('jax_enable_compilation_cache', False)
  base_len = case.get('base_len', BASE_LEN)
  baseline = case.get('variant', 'asl') == 'baseline'
  config = build_config(case['window'], baseline=baseline, base_len=base_len)
  model = build_model(config)
  t_len = case['seq_len']
  batch = jax.device_put(make_batch(t_len, BATCH, config.data.max_segments))
  params = jax.jit(model.init)(
    {'params': jax.random.key(0)}, batch['feats'][:1, :base_len], batch['mask'][:1, :base_len]
  )['params']
  points = jnp.asarray(seg_ops.make_points(t_len, config.model.regression_ranges))
  loss_cfg = dataclasses.replace(build_loss_config(config), num_classes=NUM_CLASSES)

  @jax.jit
  def forward(params, feats, mask):
    out = model.apply({'params': params}, feats, mask)
    return out['cls_logits'], out['offsets']

  @jax.jit
  def forward_backward(params, batch, rng):
    def loss_fn(p):
      drop, path = jax.random.split(rng)
      outputs = model.apply(
        {'params': p},
        batch['feats'],
        batch['mask'],
        deterministic=False,
        rngs={'dropout': drop, 'droppath': path},
      )
      return compute_losses(
        outputs, batch, points, jnp.float32(config.train.init_loss_norm), loss_cfg
      )

    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  result = dict(case, batch=BATCH, runs=runs, params=param_count(params))
  result['load_average_start'] = os.getloadavg()
  result['forward'] = compile_and_time(forward, (params, batch['feats'], batch['mask']), runs)
  if t_len == base_len:
    result['infer_b1'] = compile_and_time(
      forward, (params, batch['feats'][:1], batch['mask'][:1]), runs
    )
  result['peak_rss_forward_mb'] = common.peak_rss_mb()
  result['forward_backward'] = compile_and_time(
    forward_backward, (params, batch, jax.random.key(1)), runs
  )
  result['peak_rss_mb'] = common.peak_rss_mb()
  if t_len == base_len and (case['attention'] == 'local' or baseline):
    result['update'] = time_update(params, config, runs, optax, optim)
  result['load_average_end'] = os.getloadavg()
  return result


def time_update(params, config, runs: int, optax, optim) -> dict:
  """Clip + AdamW + EMA over the parameter tree: what a training step adds to forward+backward."""
  import jax

  tx = optim.build_optimizer(
    schedule=optim.build_schedule(learning_rate=1e-4, warmup_steps=10, total_steps=100),
    weight_decay=config.train.weight_decay,
    clip_grad_norm=config.train.clip_grad_norm,
  )
  grads = jax.tree.map(lambda p: p * 1e-3, params)

  @jax.jit
  def update(params, ema, opt_state, grads, step):
    updates, opt_state = tx.update(grads, opt_state, params)
    new = optax.apply_updates(params, updates)
    return new, optim.ema_update(ema, new, step, config.train.ema_decay), opt_state

  return compile_and_time(
    update, (params, params, tx.init(params), grads, jax.numpy.int32(0)), runs
  )


def run_in_subprocess(case: dict, runs: int, timeout: float) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  for key in ('JAX_COMPILATION_CACHE_DIR', 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'):
    env.pop(key, None)
  cmd = [sys.executable, '-m', 'bench.bench_model', '--case', json.dumps(case), f'--runs={runs}']
  t0 = time.perf_counter()
  proc = subprocess.run(
    cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
  )
  if proc.returncode != 0:
    return dict(case, error=proc.stderr[-3000:], wall_s=time.perf_counter() - t0)
  return dict(json.loads(proc.stdout.strip().splitlines()[-1]), wall_s=time.perf_counter() - t0)


def jax_version() -> str:
  import jax

  return jax.__version__


def count_params() -> dict:
  """ASL and ActionFormer-baseline parameter counts (shapes only, no compute)."""
  import jax
  import jax.numpy as jnp

  from asl_jax.model.build import build_model

  counts = {}
  for name, baseline in (('asl', False), ('actionformer_baseline', True)):
    model = build_model(build_config(19, baseline=baseline))
    shapes = jax.eval_shape(
      model.init,
      jax.random.key(0),
      jnp.zeros((1, BASE_LEN, INPUT_DIM)),
      jnp.ones((1, BASE_LEN), bool),
    )
    counts[name] = param_count(shapes['params'])
  return counts


def step_seconds(row: dict, rows: list[dict], key: str = 'median_s') -> float:
  """fwd+bwd + optimizer update: the row's own update, else the ASL one measured at base T."""
  update = row.get('update') or next(
    (r['update'] for r in rows if 'update' in r and r.get('variant', 'asl') == 'asl'), None
  )
  return row['forward_backward'][key] + (update[key] if update else 0.0)


def summarize(rows: list[dict], counts: dict, cores: int, base_len: int = BASE_LEN) -> str:
  ref = REFERENCE
  lines = [
    f'Parameters: ASL {counts["asl"]:,}; ActionFormer baseline {counts["actionformer_baseline"]:,} '
    f'(reference sec. 12: {REFERENCE_ACTIONFORMER_PARAMS:,}).',
    '',
    '| attention | T | fwd s (b2) | fwd+bwd s (b2) | fwd+bwd CPU s | step s | infer s/video '
    '(b1) | fwd GFLOP (b2) | compile fwd / fwd+bwd s | peak RSS fwd / train GB | fwd+bwd time '
    f'/ T={base_len} | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  asl_rows = [r for r in rows if r.get('variant', 'asl') == 'asl']
  update_s = next((r['update']['median_s'] for r in asl_rows if 'update' in r), 0.0)
  update_cpu = next((r['update']['cpu_s'] for r in asl_rows if 'update' in r), 0.0)
  base = {r['attention']: r for r in asl_rows if r['seq_len'] == base_len and 'error' not in r}
  for r in rows:
    label = r['attention'] + (' (baseline)' if r.get('variant') == 'baseline' else '')
    if 'error' in r:
      lines.append(f'| {label} | {r["seq_len"]} | failed: {r["error"][-200:]!r} |')
      continue
    fb, fw = r['forward_backward'], r['forward']
    infer = f'{r["infer_b1"]["median_s"]:.2f}' if 'infer_b1' in r else '-'
    b = base.get(r['attention']) if r.get('variant', 'asl') == 'asl' else None
    growth = f'{fb["median_s"] / b["forward_backward"]["median_s"]:.2f}x' if b else '-'
    load = f'{r["load_average_start"][0]:.1f}-{r["load_average_end"][0]:.1f}'
    lines.append(
      f'| {label} | {r["seq_len"]} | {fw["median_s"]:.2f} | {fb["median_s"]:.2f} | '
      f'{fb["cpu_s"]:.1f} | {step_seconds(r, rows):.2f} | {infer} | {fw["gflops"]:.0f} | '
      f'{fw["compile_s"]:.1f} / {fb["compile_s"]:.1f} | {r["peak_rss_forward_mb"] / 1024:.2f} / '
      f'{r["peak_rss_mb"] / 1024:.2f} | {growth} | {load} |'
    )
  lines += [
    '',
    f'Reference ({ref["provenance"]}): training step {ref["train_step_s"]} s (batch 2), '
    f'inference {ref["infer_per_video_s"]} s/video (batch 1, no NMS), training peak RSS '
    f'{ref["train_peak_rss_gb"]} GB.',
    '',
    f'| ours vs reference (T={base_len}) | step speed-up (wall) | target | step speed-up (CPU s / '
    f'{cores} cores) | inference speed-up (wall) | peak RSS ref / ours |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  if base_len != BASE_LEN:  # Those figures are at T=2304: no ratio at a reduced length.
    lines[-3:] = [f'(not compared at T={base_len}: these figures are at T={BASE_LEN})']
    base = {}
  for attention, r in base.items():
    fb = r['forward_backward']
    speedup = ref['train_step_s'] / (fb['median_s'] + update_s)
    speedup_cpu = ref['train_step_s'] / ((fb['cpu_s'] + update_cpu) / cores)
    target = TARGET_SPEEDUP[attention]
    infer = ref['infer_per_video_s'] / r['infer_b1']['median_s']
    mem = ref['train_peak_rss_gb'] / (r['peak_rss_mb'] / 1024)
    verdict = 'met' if speedup >= target else 'NOT met'
    lines.append(
      f'| {attention} | {speedup:.2f}x | >= {target:.0f}x ({verdict} on wall time) | '
      f'{speedup_cpu:.2f}x | {infer:.2f}x | {mem:.2f}x |'
    )
  lines += [
    '',
    f'step = fwd+bwd + optimizer update ({update_s:.2f} s: clip, AdamW, EMA). The CPU-time '
    f'column divides the process CPU seconds by the {cores} cores: what the wall time would be '
    'on an otherwise idle machine with perfect thread scaling (an estimate; load avg is the '
    '1-minute load at the start and end of each case).',
  ]
  return '\n'.join(lines)


def main(argv=None) -> dict | None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument(
    '--quick', action='store_true', help='2 timed runs; global attention at T=2304 only'
  )
  parser.add_argument('--out', default='bench/results_model.json', help='JSON results')
  parser.add_argument('--case', default=None, help=argparse.SUPPRESS)  # Child process: one case.
  parser.add_argument('--runs', type=int, default=None, help='timed runs per measurement')
  parser.add_argument('--seq_len', type=int, default=None, help='base T (default 2304; reduced)')
  args = parser.parse_args(argv)
  runs = args.runs or (2 if args.quick else 5)
  if args.case:
    print(json.dumps(run_case(json.loads(args.case), runs)))
    return None

  load_before = os.getloadavg()
  counts = count_params()
  base_len = args.seq_len or BASE_LEN
  reference = reference_env.status()
  rows = []
  for case in cases(args.quick, base_len, with_baseline=reference['available']):
    print(f'running {case} ...', file=sys.stderr, flush=True)
    rows.append(run_in_subprocess(case, runs, timeout=1800))
    if 'error' in rows[-1]:
      print(rows[-1]['error'], file=sys.stderr)
  table = summarize(rows, counts, os.cpu_count() or 1, base_len)
  print(table)
  result = {
    'benchmark': 'model',
    'quick': args.quick,
    'runs': runs,
    'config': dict(
      input_dim=INPUT_DIM,
      embed_dim=512,
      num_heads=4,
      arch=(2, 2, 5),
      num_classes=NUM_CLASSES,
      seq_len=base_len,
    ),
    'params': counts,
    'reference': REFERENCE,
    'torch_reference': reference,
    'rows': rows,
    'table': table,
    'machine': {
      'platform': platform.platform(),
      'python': platform.python_version(),
      'jax': jax_version(),
      'cpu_count': os.cpu_count(),
      'load_average_before': load_before,
      'load_average_after': os.getloadavg(),
    },
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=1)
  print(f'wrote {args.out}', file=sys.stderr)
  return result


if __name__ == '__main__':
  from asl_jax import hugepages

  hugepages.reexec_with_hugepages()  # Children (and the PyTorch reference) inherit it.
  main()
