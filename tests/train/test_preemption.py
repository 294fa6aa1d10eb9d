"""Preemption as one job, lost peers and sharded evaluation (asl_jax.train.preemption, .sharded).

The fast tests drive the pieces in this process (a fake key-value store for the watchdog). The
slow ones start ``python -m asl_jax.main`` twice on localhost (``--coordinator_address``,
``--num_processes=2``) on the tiny demo config, whose synthetic data the processes write
themselves (process 0; the other waits): an uninterrupted run, a run SIGTERMed on both processes
and relaunched, and a run whose process 1 is killed with -9 and then relaunched. The relaunched
runs must end with the uninterrupted run's ``detections.json``, byte for byte; a one-process
evaluation of its checkpoint must give the same bytes and mAP as the two processes' sharded one.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from asl_jax import configuration, errors
from asl_jax.configs import demo
from asl_jax.evaluation import sharded
from asl_jax.train import preemption
from tests.train import helpers

# ---------------------------------------------------------------- in-process pieces


class FakeStore:
  """The runtime client's key-value calls; ``frozen`` processes stop counting, ``down`` fails."""

  def __init__(self):
    self.values, self.frozen, self.down = {}, set(), False
    self.lock = threading.Lock()

  def key_value_set(self, key, value, allow_overwrite=False):
    if self.down:
      raise RuntimeError('UNAVAILABLE: coordinator gone')
    with self.lock:
      self.values[key] = value

  def key_value_dir_get(self, prefix):
    if self.down:
      raise RuntimeError('UNAVAILABLE: coordinator gone')
    with self.lock:
      return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]

  def beat(self, process: int, value: str) -> None:
    with self.lock:
      self.values[f'asl_jax/heartbeat/{process}'] = value


def _watch(store, timeout_s, until_s, on_tick=None):
  """Runs a watchdog for process 0 of 2; returns (exit statuses, seconds until the first)."""
  exits, t0 = [], time.monotonic()
  dog = preemption.PeerWatchdog(
    timeout_s, client=store, process_index=0, process_count=2, exit_fn=exits.append
  )
  dog.start()
  n = 0
  while time.monotonic() - t0 < until_s and not exits:
    n += 1
    if on_tick is not None:
      on_tick(store, n, dog)
    time.sleep(0.05)
  elapsed = time.monotonic() - t0
  dog.finish()
  dog._stopped.set()
  dog.join(2)
  return exits, elapsed


def test_watchdog_ends_the_process_when_a_peer_stops_and_not_before():
  store = FakeStore()

  def peer_beats_until_1s(store, n, dog):
    if n * 0.05 < 1.0:
      store.beat(1, str(n))

  exits, elapsed = _watch(store, 5, 10, peer_beats_until_1s)
  assert exits == [errors.EXIT_PREEMPTED]
  assert 5 <= elapsed <= 5 + 1 + 2  # Silent for peer_timeout_s after its last beat, then at once.
  assert store.values['asl_jax/heartbeat/0'] == 'done'  # finish() told the others.


def test_watchdog_ignores_a_peer_that_finished_and_a_coordinator_gone_after_finish():
  store = FakeStore()
  store.beat(1, 'done')  # Finished: waits in JAX's shutdown barrier, sends nothing.
  exits, _ = _watch(store, 5, 7)
  assert exits == []

  store = FakeStore()

  def coordinator_goes_after_finish(store, n, dog):
    store.beat(1, str(n))
    if n == 10:
      dog.finish()
      store.down = True

  exits, _ = _watch(store, 5, 3, coordinator_goes_after_finish)
  assert exits == []


def test_watchdog_ends_the_process_when_the_coordinator_stops_answering():
  store = FakeStore()

  def coordinator_goes(store, n, dog):
    store.beat(1, str(n))
    store.down = n >= 10

  exits, elapsed = _watch(store, 5, 5, coordinator_goes)
  assert exits == [errors.EXIT_PREEMPTED] and elapsed < 2.5


def test_one_process_stop_agreement_is_the_sigterm_flag():
  before = signal.getsignal(signal.SIGTERM)
  stop = preemption.StopAgreement()
  assert not stop.multiprocess and not stop.reached(1)
  os.kill(os.getpid(), signal.SIGTERM)
  assert stop.reached(2)
  stop.close()
  assert signal.getsignal(signal.SIGTERM) is before
  exc = stop.preempted(2)
  assert isinstance(exc, errors.Preempted) and 'saved step 2;' in str(exc)


@pytest.mark.parametrize('value, ok', [(120.0, True), (5, True), (4.9, False), (7200, False)])
def test_peer_timeout_is_validated(value, ok):
  config = demo.get_config('tiny')
  config.train.peer_timeout_s = value
  if ok:
    configuration.validate_config(config)
  else:
    with pytest.raises(configuration.ConfigError, match='train.peer_timeout_s must be in'):
      configuration.validate_config(config)


class _Video:
  def __init__(self, video_id, length):
    self.video_id, self.feats = video_id, np.zeros((length, 1))


def test_shards_cover_every_video_once_in_the_one_process_order():
  # Padded lengths: 128 for <= 128 frames, 256 for 129..256: one process detects c, a, e, b, d.
  videos = [_Video(v, n) for v, n in zip('abcde', (100, 200, 30, 256, 128))]
  order = sharded.detection_order(videos, 128)
  assert [videos[i].video_id for i in order] == ['a', 'c', 'e', 'b', 'd']
  shares = [[v.video_id for v in sharded.shard(videos, 128, p, 2)] for p in range(2)]
  assert shares == [['a', 'e', 'd'], ['c', 'b']]
  assert [v.video_id for v in sharded.shard(videos, 128, 0, 1)] == ['a', 'c', 'e', 'b', 'd']


def test_gather_round_trips_float64_bit_for_bit():
  local = {'v': {'segments': np.array([[0.1, 1 / 3]]), 'labels': np.array([2], np.int64)}}
  (back,) = sharded.gather(local)
  assert back['v']['segments'].tobytes() == local['v']['segments'].tobytes()
  assert back['v']['labels'].dtype == np.int64


# ---------------------------------------------------------------- two processes on localhost

STEPS_PER_EPOCH = 2  # 9 training videos of the tiny demo data, batch 4.
TOTAL_STEPS = 16  # 1 warmup epoch + 7 epochs.
LAUNCH_TIMEOUT_S = 600  # Compiling dominates: minutes on a loaded 2-core machine.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(helpers.REPO_ROOT), env.get('PYTHONPATH')]))
  env.pop('JAX_NUM_CPU_DEVICES', None)  # One CPU device per process.
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join(flags)
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(helpers.REPO_ROOT / '.jax_cache'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  return env


def train_args(root: pathlib.Path, workdir: pathlib.Path) -> list[str]:
  """The training command's flags (minus the process flags) shared by every run here."""
  data = root / 'data'
  return [
    '--config=asl_jax/configs/demo.py:tiny',
    f'--workdir={workdir}',
    f'--config.data.annotation_file={data / "annotations.json"}',
    f'--config.data.feature_dir={data / "features"}',
    f'--config.train.num_epochs={TOTAL_STEPS // STEPS_PER_EPOCH - 1}',
    '--config.train.min_steps=0',
    '--config.train.log_every_steps=1',
    '--config.train.checkpoint_every_steps=4',
    '--config.train.peer_timeout_s=5',
  ]


class Job:
  """``python -m asl_jax.main`` as 2 processes on localhost, output in ``workdir.log<i>``."""

  def __init__(self, args: list[str], workdir: pathlib.Path, tag: str):
    port, self.logs, self.procs = _free_port(), [], []
    for i in range(2):
      log = workdir.parent / f'{workdir.name}.{tag}.log{i}'
      self.logs.append(log)
      flags = [f'--coordinator_address=localhost:{port}', '--num_processes=2', f'--process_id={i}']
      with open(log, 'w') as out:
        self.procs.append(
          subprocess.Popen(
            [sys.executable, '-m', 'asl_jax.main', *args, *flags],
            cwd=helpers.REPO_ROOT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
          )
        )
    self.workdir = workdir

  def wait(self, timeout_s: float = LAUNCH_TIMEOUT_S) -> list[int | None]:
    deadline = time.monotonic() + timeout_s
    for proc in self.procs:
      try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        pass
    codes = [proc.poll() for proc in self.procs]
    for proc in self.procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    return codes

  def logged_step(self) -> int:
    path = self.workdir / 'metrics.jsonl'
    lines = path.read_text().splitlines() if path.exists() else []
    steps = [json.loads(line)['step'] for line in lines if line.endswith('}')]
    return max(steps, default=0)

  def wait_for_step(self, step: int, timeout_s: float = LAUNCH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while self.logged_step() < step:
      assert time.monotonic() < deadline, self.tails()
      assert all(p.poll() is None for p in self.procs), self.tails()
      time.sleep(0.02)

  def tails(self) -> str:
    return '\n'.join(f'--- {log.name}\n{helpers.tail(log)}' for log in self.logs)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  """One uninterrupted 2-process run; its synthetic data is written by the run itself."""
  root = tmp_path_factory.mktemp('two_processes')
  workdir = root / 'reference'
  job = Job(train_args(root, workdir), workdir, 'run')
  assert job.wait() == [0, 0], job.tails()
  return root, workdir


@pytest.mark.slow
def test_two_processes_write_shared_files_once_and_evaluate_like_one(uninterrupted):
  root, workdir = uninterrupted
  assert (root / 'data' / 'annotations.json').is_file()  # Written by process 0 only.
  assert json.loads((workdir / 'metrics.json').read_text())['step'] == TOTAL_STEPS
  assert json.loads((workdir / 'config.json').read_text())['train']['peer_timeout_s'] == 5

  # The 2-process sharded evaluation equals a one-process evaluation of the same checkpoint.
  import jax

  from asl_jax import parallel
  from asl_jax.data import pipeline
  from asl_jax.evaluation import evaluator
  from asl_jax.train import build, checkpoint

  config = demo.get_config('tiny')
  config.data.annotation_file = str(root / 'data' / 'annotations.json')
  config.data.feature_dir = str(root / 'data' / 'features')
  config.train.num_epochs, config.train.min_steps = TOTAL_STEPS // STEPS_PER_EPOCH - 1, 0
  videos, annotations = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.eval_subset)
  )
  mesh = parallel.create_mesh(jax.devices()[:1])  # What one process with one device restores.
  training = build.create_training(config, mesh, steps_per_epoch=STEPS_PER_EPOCH)
  checkpointer = checkpoint.Checkpointer(workdir)
  state, _ = checkpointer.restore(training.state, TOTAL_STEPS)
  checkpointer.close()
  model, params = training.model, state.ema_params
  detections, result = evaluator.evaluate(
    build.build_detector(config, model), params, videos, tious=config.test.tiou_thresholds
  )
  one = root / 'one_process_detections.json'
  evaluator.write_detections(one, detections, annotations.class_names)
  assert one.read_bytes() == (workdir / 'detections.json').read_bytes()
  metrics = json.loads((workdir / 'metrics.json').read_text())
  assert metrics['ema']['average_mAP'] == pytest.approx(result.average_map, abs=0, rel=0)


@pytest.mark.slow
def test_sigterm_on_both_processes_then_relaunch_ends_bit_for_bit(uninterrupted):
  root, reference = uninterrupted
  workdir = root / 'sigterm'
  job = Job(train_args(root, workdir), workdir, 'first')
  job.wait_for_step(3)
  for proc in job.procs:
    proc.send_signal(signal.SIGTERM)
  assert job.wait() == [errors.EXIT_PREEMPTED] * 2, job.tails()
  saved = [
    line for log in job.logs for line in log.read_text().splitlines() if 'preempted:' in line
  ]
  assert len(saved) == 2 and saved[0] == saved[1], saved  # Both saved the same step.
  stopped = int(saved[0].split('saved step ')[1].split(';')[0])
  assert 3 <= stopped < TOTAL_STEPS and helpers.checkpoint_steps(workdir)[-1] == stopped
  assert not (workdir / 'metrics.json').exists()

  again = Job(train_args(root, workdir), workdir, 'relaunch')
  assert again.wait() == [0, 0], again.tails()
  assert 'resuming from step' in again.logs[0].read_text()
  assert (workdir / 'detections.json').read_bytes() == (reference / 'detections.json').read_bytes()


@pytest.mark.slow
def test_a_killed_peer_ends_the_other_in_bounded_time_and_the_relaunch_resumes(uninterrupted):
  root, reference = uninterrupted
  workdir = root / 'sigkill'
  job = Job(train_args(root, workdir), workdir, 'first')
  job.wait_for_step(6)
  job.procs[1].kill()
  t0 = time.monotonic()
  codes = job.wait(timeout_s=60)
  assert codes == [errors.EXIT_PREEMPTED, -signal.SIGKILL], job.tails()
  assert time.monotonic() - t0 < 5 + 15  # peer_timeout_s and a few heartbeats.
  last = job.logs[0].read_text().strip().splitlines()[-1]
  assert last.startswith('preempted: peer lost: process 1 sent no heartbeat for 5 s'), last

  again = Job(train_args(root, workdir), workdir, 'relaunch')
  assert again.wait() == [0, 0], again.tails()
  assert 'resuming from step' in again.logs[0].read_text()
  assert (workdir / 'detections.json').read_bytes() == (reference / 'detections.json').read_bytes()
