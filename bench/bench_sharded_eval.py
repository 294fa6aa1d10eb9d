"""Sharded evaluation: the same evaluation as 1 process and as 2 local processes, timed.

python -m bench.bench_sharded_eval [--quick] [--out bench/results_sharded_eval.json]

The demo config's model (``configs/demo.py``, randomly initialised: the cost does not depend on
the weights) over the validation videos of a synthetic dataset (60 videos; 24 with --quick),
evaluated by :func:`asl_jax.evaluation.sharded.evaluate`: once by one process, once by two
processes on localhost (``jax.distributed``, one CPU device each) that each detect half of the
videos, gather the detections and compute the mAP. Each configuration is timed after one
warm-up evaluation (compilation), the median of N (5, or 2 with --quick) evaluations with min and
max; the two must give the same detections (a digest of their bytes) and the same mAP. On a
2-core machine the single process already uses both cores for its kernels, so the speed-up is
below 2; on a pod every host has its own cores and the time is about 1/N.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(data_dir: pathlib.Path, quick: bool):
  from asl_jax.configs import demo

  config = demo.get_config()
  config.data.annotation_file = str(data_dir / 'annotations.json')
  config.data.feature_dir = str(data_dir / 'features')
  config.data.synthetic.num_videos = 96 if quick else 240  # A quarter is the validation split.
  return config


def worker(process_id: int, num_processes: int, port: int, data_dir: str, quick: bool, out: str):
  import jax

  if num_processes > 1:
    jax.distributed.initialize(
      coordinator_address=f'localhost:{port}', num_processes=num_processes, process_id=process_id
    )
  import jax.numpy as jnp
  import numpy as np

  from asl_jax import configuration
  from asl_jax.data import pipeline
  from asl_jax.evaluation import sharded
  from asl_jax.model.build import build_model
  from asl_jax.train import build

  config = _config(pathlib.Path(data_dir), quick)
  videos, _ = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.eval_subset)
  )
  model = build_model(config)
  length, dim = config.data.max_seq_len, config.data.input_dim
  params = model.init(
    jax.random.PRNGKey(0), jnp.zeros((1, length, dim), jnp.float32), jnp.ones((1, length), bool)
  )['params']
  detector = build.build_detector(config, model)
  tious = config.test.tiou_thresholds
  detections, result = sharded.evaluate(detector, params, videos, tious=tious)  # Compiles.
  times = []
  for _ in range(2 if quick else 5):
    t0 = time.perf_counter()
    detections, result = sharded.evaluate(detector, params, videos, tious=tious)
    times.append(time.perf_counter() - t0)
  if process_id == 0:
    digest = hashlib.sha256()
    for vid, det in detections.items():  # Values, in order: not pickles (memory layout differs).
      digest.update(vid.encode())
      for key in ('segments', 'scores', 'labels'):
        digest.update(np.ascontiguousarray(det[key]).tobytes())
    digest = digest.hexdigest()[:16]
    record = {
      'videos': len(videos),
      'median_s': statistics.median(times),
      'min_s': min(times),
      'max_s': max(times),
      'average_mAP': float(result.average_map),
      'detections_sha256': digest,
    }
    pathlib.Path(out).write_text(json.dumps(record))


def _env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(ROOT))
  env.pop('JAX_NUM_CPU_DEVICES', None)
  env['XLA_FLAGS'] = ' '.join(
    f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f
  )
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def run(num_processes: int, data_dir: pathlib.Path, quick: bool, scratch: pathlib.Path) -> dict:
  out, port = scratch / f'{num_processes}.json', _free_port()
  cmd = [sys.executable, '-m', 'bench.bench_sharded_eval', '--worker']
  args = [f'--num_processes={num_processes}', f'--port={port}', f'--data_dir={data_dir}']
  args += [f'--out={out}'] + (['--quick'] if quick else [])
  procs = [
    subprocess.Popen([*cmd, *args, f'--process_id={i}'], cwd=ROOT, env=_env())
    for i in range(num_processes)
  ]
  if any(p.wait() for p in procs):
    raise SystemExit(f'{num_processes}-process evaluation failed')
  return json.loads(out.read_text())


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--out', default=None)
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  for name in ('num_processes', 'process_id', 'port'):
    parser.add_argument(f'--{name}', type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument('--data_dir', default='', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    worker(args.process_id, args.num_processes, args.port, args.data_dir, args.quick, args.out)
    return
  from bench import common

  load_before = os.getloadavg()
  with tempfile.TemporaryDirectory() as tmp:
    scratch = pathlib.Path(tmp)
    data_dir = scratch / 'data'
    from asl_jax.train import loop

    loop.maybe_synthesize(_config(data_dir, args.quick).data)
    one, two = (run(n, data_dir, args.quick, scratch) for n in (1, 2))
  same = one['detections_sha256'] == two['detections_sha256']
  if not same or one['average_mAP'] != two['average_mAP']:
    raise SystemExit(f'2 processes disagree with 1: {one} vs {two}')
  rows = [dict(processes=n, **r) for n, r in ((1, one), (2, two))]
  rows[1]['speedup'] = one['median_s'] / two['median_s']
  result = {
    'benchmark': 'sharded_eval',
    'rows': rows,
    'notes': [
      f'{one["videos"]} validation videos of the synthetic demo data, demo model (random '
      'weights); 2 local processes with one CPU device each on the same machine.',
      'Same detections (digest of their bytes) and the same mAP from 1 and 2 processes.',
      f'Machine: {os.cpu_count()} cores; load average before {load_before[0]:.1f}, after '
      f'{os.getloadavg()[0]:.1f} (other work on the machine slows both runs).',
    ],
    'machine': common.process_machine(load_before),
  }
  print(json.dumps(rows, indent=1))
  common.write_result(result, args.out, announce=True)


if __name__ == '__main__':
  main()
