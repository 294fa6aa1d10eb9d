"""Two CPU processes on localhost train together through the real loop (``jax.distributed``).

The test starts this file twice as a script (``python tests/test_multiprocess.py worker ...``):
each worker calls ``jax.distributed.initialize`` (what ``asl_jax.main`` would do on a pod), then
``train_and_evaluate`` on the tiny synthetic config, recording the video ids of its own batches
and its parameters at the final checkpoint. Checked: both exit 0 with 2 global devices; the two
processes' batches are disjoint and together form the single-process global batches; their
parameters are bitwise equal; only process 0 wrote the artefacts, and the checkpoint holds them;
process 0 alone can draw the figures from the replicated weights (as the loop would at the end).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_PROCESSES = 2
TIMEOUT_S = 300  # Both together. ~70 CPU-seconds in all: ~40 s on 2 idle cores, 150 s loaded.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _recording_batches(base, record: list):
  """A TrainBatches subclass that appends each batch's video ids to ``record``."""

  class RecordingBatches(base):
    def _make_batch(self, items, epoch):
      record.append([video.video_id for _, video in items])
      return super()._make_batch(items, epoch)

  return RecordingBatches


def _flat(tree) -> dict[str, np.ndarray]:
  import jax

  def local(x):  # A replicated global array: this process's copy.
    return np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x)

  return {jax.tree_util.keystr(k): local(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _worker(process_id: int, port: int, root: pathlib.Path, out: pathlib.Path) -> None:
  import jax

  jax.distributed.initialize(
    coordinator_address=f'localhost:{port}',
    num_processes=NUM_PROCESSES,
    process_id=process_id,
    initialization_timeout=60,
  )
  from asl_jax.data import pipeline
  from asl_jax.train import checkpoint as checkpoint_lib
  from asl_jax.train import loop
  from tests.train.helpers import tiny_config

  batches, saved = [], {}
  pipeline.TrainBatches = _recording_batches(pipeline.TrainBatches, batches)

  class RecordingCheckpointer(checkpoint_lib.Checkpointer):
    def save(self, step, state, meta, **kwargs):
      saved.update(step=step, params=_flat(state.params), ema_params=_flat(state.ema_params))
      saved['state'] = state
      return super().save(step, state, meta, **kwargs)

  checkpoint_lib.Checkpointer = RecordingCheckpointer
  config = tiny_config(root)
  config.train.checkpoint_every_steps = 1000  # One checkpoint, at the end.
  result = loop.train_and_evaluate(config, str(root / 'workdir'))
  figures = []
  if process_id == 0:
    # What the loop would do at the end on process 0 only: figures from the replicated EMA
    # weights. Nothing in it may need the other process (it would hang here).
    from asl_jax import configuration
    from asl_jax.model.build import build_model
    from asl_jax.visualization import report as visualize

    videos, annotations = pipeline.load_split_from_config(
      config.data, configuration.parse_subsets(config.data.eval_subset)
    )
    figures = visualize.write_figures(
      root / 'workdir',
      config=config,
      model=build_model(config),
      params=saved['state'].ema_params,
      eval_videos=videos,
      class_names=annotations.class_names,
      max_videos=1,
    )
  np.savez(out / f'params_{process_id}.npz', **saved['params'])
  np.savez(out / f'ema_params_{process_id}.npz', **saved['ema_params'])
  report = {
    'process_index': jax.process_index(),
    'process_count': jax.process_count(),
    'num_devices': jax.device_count(),
    'num_local_devices': jax.local_device_count(),
    'batches': batches,
    'saved_step': saved['step'],
    'step': result['step'],
    'ema_average_mAP': result['ema']['average_mAP'],
    'pid': os.getpid(),
    'figures': sorted(p.name for p in figures),
  }
  (out / f'process_{process_id}.json').write_text(json.dumps(report))


def _env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT))
  env.pop('JAX_NUM_CPU_DEVICES', None)  # One CPU device per process.
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join(flags)
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO_ROOT / '.jax_cache'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  return env


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
  from asl_jax import configuration
  from asl_jax.data import pipeline
  from asl_jax.model.build import build_model, params_template
  from asl_jax.train import checkpoint as checkpoint_lib
  from asl_jax.train import loop
  from tests.train.helpers import tiny_config

  config = tiny_config(tmp_path)
  loop.maybe_synthesize(config.data)  # Once, here: two workers would race to write it.
  out = tmp_path / 'out'
  out.mkdir()
  port = _free_port()
  logs = [out / f'worker_{i}.log' for i in range(NUM_PROCESSES)]
  procs = []
  for i, log in enumerate(logs):
    with open(log, 'w') as f:  # A file, not a pipe: a chatty worker never blocks on it.
      procs.append(
        subprocess.Popen(
          [sys.executable, __file__, 'worker', str(i), str(port), str(tmp_path), str(out)],
          cwd=REPO_ROOT,
          env=_env(),
          stdout=f,
          stderr=subprocess.STDOUT,
        )
      )
  deadline = time.monotonic() + TIMEOUT_S
  try:
    for proc in procs:
      proc.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    pass
  finally:
    timed_out = [proc.poll() is None for proc in procs]
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  for i, (proc, log) in enumerate(zip(procs, logs)):
    status = f'did not finish in {TIMEOUT_S} s' if timed_out[i] else f'exited {proc.returncode}'
    assert proc.returncode == 0, f'process {i} {status}:\n{log.read_text()[-6000:]}'

  reports = [json.loads((out / f'process_{i}.json').read_text()) for i in range(NUM_PROCESSES)]
  for i, r in enumerate(reports):
    assert (r['process_index'], r['process_count']) == (i, NUM_PROCESSES)
    assert (r['num_devices'], r['num_local_devices']) == (NUM_PROCESSES, 1)
    assert r['step'] == r['saved_step'] == 2
  assert reports[0]['ema_average_mAP'] == reports[1]['ema_average_mAP']

  # Input sharding: each process reads its own half of every global batch, none twice.
  videos, _ = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.train_subset)
  )
  expected = []
  single = _recording_batches(pipeline.TrainBatches, expected)(
    videos,
    batch_size=config.train.batch_size,
    max_seq_len=config.data.max_seq_len,
    max_segments=config.data.max_segments,
    trunc_thresh=config.data.trunc_thresh,
    crop_ratio=config.data.crop_ratio,
    seed=config.seed,
  )
  for _ in single.epoch(0):
    pass
  local = config.train.batch_size // NUM_PROCESSES
  first, second = (r['batches'] for r in reports)
  assert len(first) == len(second) == len(expected) == 2
  for a, b, whole in zip(first, second, expected):
    assert len(a) == len(b) == local and not set(a) & set(b)
    assert a + b == whole

  # Replicated state: bitwise the same parameters in both processes.
  for name in ('params', 'ema_params'):
    p0, p1 = (np.load(out / f'{name}_{i}.npz') for i in range(NUM_PROCESSES))
    assert sorted(p0) == sorted(p1) and len(p0) > 10
    for key in p0:
      np.testing.assert_array_equal(p0[key], p1[key], err_msg=f'{name}{key}')

  # Artefacts: written once, by process 0; the checkpoint holds the trained EMA weights.
  workdir = tmp_path / 'workdir'
  events = list(workdir.glob('events.out.tfevents.*'))
  assert len(events) == 1 and f'.{reports[0]["pid"]}.' in events[0].name
  logged = [
    json.loads(line)['step'] for line in (workdir / 'metrics.jsonl').read_text().splitlines()
  ]
  assert logged == [1, 2]
  for name in ('config.json', 'metrics.json', 'detections.json'):
    assert (workdir / name).is_file(), name
  assert 'precision_recall.png' in reports[0]['figures'] and not reports[1]['figures']
  assert sorted(p.name for p in (workdir / 'figures').iterdir()) == reports[0]['figures']
  model = build_model(config)
  restored, _, _ = checkpoint_lib.restore_params(workdir, params_template(model, config))
  ema0 = np.load(out / 'ema_params_0.npz')
  for key, value in _flat(restored).items():
    np.testing.assert_array_equal(value, ema0[key], err_msg=key)


if __name__ == '__main__' and len(sys.argv) == 6 and sys.argv[1] == 'worker':
  _worker(int(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4]), pathlib.Path(sys.argv[5]))
