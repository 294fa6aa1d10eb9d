"""Accelerator figures at the THUMOS14 config: train steps/s, peak memory, inference, MFU.

  python -m bench.device_check [--out bench/results_device.json] [--cpu_smoke]

Run by ``bench/device_check.sh`` on a machine with one NVIDIA GPU (H100/H200). Measures, in
float32 and bfloat16 compute: training steps/s (batch 2, T 2304, C_in 2048, embed 512, arch
(2,2,5), window 19, 20 classes, full ASL), peak device memory, inference ms/video (forward +
decoding + Soft-NMS, batch 1), and model FLOPs utilisation = XLA's FLOP count of the compiled
step / step time / the chip's peak. ``--cpu_smoke`` shrinks everything so the script can be
checked on a CPU. The PyTorch reference (``bench/torch_reference.py``: ActionFormer at the same
config, global and local window, inference at batch 1 and training step at batch 2, on the same
inputs as our model benchmark) is timed only when ``ASL_TORCH_REFERENCE`` points at an
ActionFormer checkout and the interpreter ``ASL_TORCH_PYTHON`` (default python3) has torch that
sees the GPU (any torch with --cpu_smoke); otherwise the result says 'reference not available'
and why, and nothing fails.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Dense peak throughput in FLOP/s (NVIDIA datasheets, SXM parts): float32 matmuls run as TF32
# under JAX's default precision on these chips, so TF32 is the float32 reference.
PEAKS = {
  'H100': {'float32': 494.7e12, 'bfloat16': 989.4e12},
  'H200': {'float32': 494.7e12, 'bfloat16': 989.4e12},
}


def thumos_config(dtype: str, smoke: bool):
  from asl_jax.configs import custom as mod

  config = mod.get_config()
  config.data.update(num_classes=20, input_dim=2048, max_seq_len=2304)
  config.model.update(embed_dim=512, fpn_dim=512, head_dim=512, num_heads=4, window_size=19)
  config.model.arch = (2, 2, 5)
  config.model.dtype = dtype
  config.train.batch_size = 2
  if smoke:
    config.data.update(input_dim=32, max_seq_len=256)
    config.model.update(embed_dim=32, fpn_dim=32, head_dim=32, window_size=9)
  return config


def synthetic_batch(config, rng: np.random.Generator) -> dict:
  b, t, c = config.train.batch_size, config.data.max_seq_len, config.data.input_dim
  m = config.data.max_segments
  starts = rng.uniform(0, t * 0.8, (b, m)).astype(np.float32)
  lengths = rng.uniform(2, t * 0.2, (b, m)).astype(np.float32)
  valid = np.zeros((b, m), bool)
  valid[:, :8] = True
  return {
    'feats': rng.normal(size=(b, t, c)).astype(np.float32),
    'mask': np.ones((b, t), bool),
    'segments': np.stack([starts, np.minimum(starts + lengths, t - 1)], -1),
    'labels': rng.integers(0, config.data.num_classes, (b, m)).astype(np.int32),
    'segment_valid': valid,
  }


def peak_memory_gb() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get('peak_bytes_in_use')
  return None if peak is None else peak / 2**30


def bench_train(config, steps: int) -> dict:
  from asl_jax import parallel
  from asl_jax.train.build import create_training

  # The step training runs: the config's optimizer, schedule (THUMOS14's 100 steps per epoch)
  # and losses, jitted over a one-device mesh.
  training = create_training(config, parallel.create_mesh(), steps_per_epoch=100)
  state, fn = training.state, training.train_step
  n_params = sum(p.size for p in jax.tree.leaves(state.params))  # Before donation.
  batch = synthetic_batch(config, np.random.default_rng(0))
  t0 = time.perf_counter()
  lowered = fn.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  # FLOPs of the lowered (device-independent) program: the compiled GPU program's count leaves
  # out the work inside library calls (cuBLAS/cuDNN), which made MFU look 10x too low.
  flops, flops_source = float('nan'), None
  for source, analysis in (
    ('lowered', lowered.cost_analysis),
    ('compiled', compiled.cost_analysis),
  ):
    try:
      cost = analysis()
    except Exception:  # Not every backend and version offers both.
      continue
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float((cost or {}).get('flops', float('nan')))
    if flops == flops:
      flops_source = source
      break
  # The step's own footprint (XLA's buffer assignment: arguments, outputs, temporaries); the
  # allocator's peak below is process-wide, compilation (autotuning) and earlier runs included.
  mem = compiled.memory_analysis()
  step_memory_gb = None
  if mem is not None:
    step_bytes = (
      mem.argument_size_in_bytes
      + mem.output_size_in_bytes
      + mem.temp_size_in_bytes
      - mem.alias_size_in_bytes
    )
    step_memory_gb = step_bytes / 2**30
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return {
    'params': n_params,
    'compile_s': compile_s,
    'step_s_median': statistics.median(times),
    'step_s_min': min(times),
    'step_s_max': max(times),
    'steps_per_s': 1.0 / statistics.median(times),
    'step_flops': flops,
    'flops_source': flops_source,
    'peak_memory_gb': peak_memory_gb(),
    'step_memory_gb': step_memory_gb,
    'loss_finite': bool(np.isfinite(float(metrics['loss']))),
  }


def bench_inference(config, videos: int) -> dict:
  from asl_jax.data.geometry import FeatureGeometry
  from asl_jax.data.pipeline import Video
  from asl_jax.data.records import VideoRecord
  from asl_jax.model.build import build_model
  from asl_jax.train.build import build_detector

  model = build_model(config)
  t, c = config.data.max_seq_len, config.data.input_dim
  params = jax.jit(model.init)(
    {'params': jax.random.key(0)}, jnp.zeros((1, t, c)), jnp.ones((1, t), bool)
  )['params']
  config = config.copy_and_resolve_references()
  config.test.batch_size = 1  # Per-video latency.
  detector = build_detector(config, model)
  rng = np.random.default_rng(1)
  geometry = FeatureGeometry(4, 16, 30.0)
  items = []
  for i in range(videos + 1):
    rec = VideoRecord(f'v{i}', 'test', t * 4 / 30, 30.0, np.zeros((0, 2)), np.zeros(0, np.int32))
    feats = rng.normal(size=(t, c)).astype(np.float32)
    items.append(Video(rec, feats, geometry, np.zeros((0, 2), np.float32), np.zeros(0, np.int32)))
  detector.detect(params, items[:1])  # Compile.
  t0 = time.perf_counter()
  detector.detect(params, items[1:])
  return {'ms_per_video': 1000 * (time.perf_counter() - t0) / videos, 'videos': videos}


def torch_reference(smoke: bool, runs: int) -> dict:
  """ActionFormer's PyTorch model timed like ours (``bench.torch_reference``), or why not."""
  from bench import reference_env
  from bench import torch_reference as reference

  info = reference_env.status()
  if info['available'] and not smoke and not info.get('cuda'):
    reason = f'the torch of {info["python"]} sees no GPU (a CPU figure would not compare)'
    return {'status': f'{reference.NOT_AVAILABLE}: {reason}', 'reference': info, 'rows': []}
  # T = 2304 (the smoke run: 576, the shortest ActionFormer's window 19 allows), both windows.
  return reference.run_benchmark(quick=smoke, runs=runs, seq_len=576 if smoke else 2304)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='bench/results_device.json')
  parser.add_argument('--cpu_smoke', action='store_true', help='tiny sizes, to check on a CPU')
  parser.add_argument('--steps', type=int, default=10)
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  kind = device.device_kind
  peaks = next((v for k, v in PEAKS.items() if k in kind), None)
  rows = []
  for dtype in ('float32', 'bfloat16'):
    config = thumos_config(dtype, args.cpu_smoke)
    train = bench_train(config, 3 if args.cpu_smoke else args.steps)
    infer = bench_inference(config, 3 if args.cpu_smoke else 20)
    mfu = None
    if peaks and train['flops_source'] == 'lowered':  # Compiled counts miss library calls.
      mfu = train['step_flops'] / train['step_s_median'] / peaks[dtype]
    rows.append({'dtype': dtype, **train, **infer, 'mfu': mfu})
    print(json.dumps(rows[-1]), flush=True)
  header = ['compute', 'params', 'compile (s)', 'step (s)', 'steps/s', 'step mem (GB)']
  header += ['process peak mem (GB)']
  header += ['infer (ms/video)', 'MFU']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in rows:
    mem = '-' if r['peak_memory_gb'] is None else f'{r["peak_memory_gb"]:.2f}'
    step_mem = '-' if r['step_memory_gb'] is None else f'{r["step_memory_gb"]:.2f}'
    mfu = '-' if r['mfu'] is None else f'{100 * r["mfu"]:.1f}%'
    lines.append(
      f'| {r["dtype"]} | {r["params"]:,} | {r["compile_s"]:.1f} | {r["step_s_median"]:.4f} | '
      f'{r["steps_per_s"]:.2f} | {step_mem} | {mem} | {r["ms_per_video"]:.1f} | {mfu} |'
    )
  table = '\n'.join(lines)
  print(table)
  result = {
    'benchmark': 'device_check',
    'device': f'{device.platform}: {kind}',
    'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
    'jax': jax.__version__,
    'cpu_smoke': args.cpu_smoke,
    'rows': rows,
    'table_markdown': table,
    'torch_reference': torch_reference(args.cpu_smoke, 2 if args.cpu_smoke else 5),
  }
  print(result['torch_reference'].get('table_markdown') or result['torch_reference']['status'])
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
  return result


if __name__ == '__main__':
  main()
