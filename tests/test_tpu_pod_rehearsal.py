"""``launch/tpu_pod.py`` end to end on localhost: its real steps, a stand-in ``gcloud``, 2 workers.

``tests/fake_gcloud/gcloud`` (first on PATH) runs every ``ssh --worker=all --command=...`` once
per worker, each in its own home folder with the coordinator variables set. The launcher builds
the wheel, copies and unpacks it, installs it (offline: a venv per worker that sees this venv's
dependencies), and starts ``asl-train`` with ``--distributed`` on both (a ``v4-16`` has 2 hosts).
Both workers get SIGTERM mid-run: the launch exits 75 and both saved the same step. The same
command again resumes there and finishes (exit 0, ``metrics.json`` at the last step).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import sysconfig
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TOTAL_STEPS = 12  # 9 tiny training videos in batches of 8: 1 step per epoch, 1 warmup + 11.
TIMEOUT_S = 900  # Compiling dominates: minutes per launch on a loaded 2-core machine.


def _launch(root: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
  env = dict(os.environ, FAKE_GCLOUD_ROOT=str(root / 'workers'), FAKE_GCLOUD_WORKERS='2')
  env['PATH'] = os.pathsep.join([str(REPO_ROOT / 'tests' / 'fake_gcloud'), env['PATH']])
  env.update(JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('JAX_NUM_CPU_DEVICES', None)  # One CPU device per worker process.
  flags = env.get('XLA_FLAGS', '').split()
  env['XLA_FLAGS'] = ' '.join(f for f in flags if 'device_count' not in f)
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO_ROOT / '.jax_cache'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  data = root / 'data'
  cmd = [
    sys.executable,
    str(REPO_ROOT / 'launch' / 'tpu_pod.py'),
    '--tpu=rehearsal',
    '--zone=localhost',
    '--accelerator_type=v4-16',
    '--config=demo.py:tiny',
    f'--workdir={root / "workdir"}',
    f'--worker_python={sys._base_executable}',
    f'--offline_site_packages={sysconfig.get_paths()["purelib"]}',
    f'--config.data.annotation_file={data / "annotations.json"}',
    f'--config.data.feature_dir={data / "features"}',
    '--config.train.batch_size=8',
    f'--config.train.num_epochs={TOTAL_STEPS - 1}',
    '--config.train.min_steps=0',
    '--config.train.log_every_steps=1',
    '--config.train.checkpoint_every_steps=4',
  ]
  with open(log, 'w') as out:
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)


def _logged_step(workdir: pathlib.Path) -> int:
  path = workdir / 'metrics.jsonl'
  lines = path.read_text().splitlines() if path.exists() else []
  return max((json.loads(line)['step'] for line in lines if line.endswith('}')), default=0)


def _worker_pids(root: pathlib.Path) -> list[int]:
  """The processes the stand-in gcloud started by its last ssh, one per worker."""
  files = [root / 'workers' / f'worker{i}' / '.fake_gcloud' / 'ssh.pid' for i in range(2)]
  return [int(f.read_text()) for f in files]


def _finish(proc: subprocess.Popen, log: pathlib.Path, deadline: float) -> int:
  try:
    return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    for pid in _worker_pids(log.parent):  # Their own sessions: not the launcher's children.
      try:
        os.killpg(pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
    pytest.fail(f'the launch did not end in time:\n{log.read_text()[-6000:]}')


@pytest.mark.slow
def test_launch_preempt_relaunch_on_local_workers(tmp_path):
  deadline = time.monotonic() + TIMEOUT_S
  workdir = tmp_path / 'workdir'
  first_log = tmp_path / 'launch1.log'
  proc = _launch(tmp_path, first_log)
  while _logged_step(workdir) < 3:
    assert proc.poll() is None, first_log.read_text()[-6000:]
    assert time.monotonic() < deadline, first_log.read_text()[-6000:]
    time.sleep(0.05)
  for pid in _worker_pids(tmp_path):  # The maintenance event: SIGTERM to every worker's run.
    os.kill(pid, signal.SIGTERM)
  status = _finish(proc, first_log, deadline)
  out = first_log.read_text()
  assert status == 75, out[-6000:]
  for step in ('copy code', 'unpack code', 'install', 'train'):
    assert f'# {step}\n' in out
  assert '--distributed' in out.split('# train\n')[1].splitlines()[0]
  assert 'worker 0: exit 75' in out and 'worker 1: exit 75' in out
  saved = sorted(
    line.split('] ', 1)[1] for line in out.splitlines() if 'preempted: SIGTERM' in line
  )
  assert len(saved) == 2 and saved[0] == saved[1], saved  # The same step on both workers.
  assert 'run this same command again to resume' in out
  assert not (workdir / 'metrics.json').exists()
  for i in range(2):  # Each worker runs the installed wheel from its own venv.
    venv = tmp_path / 'workers' / f'worker{i}' / 'asl-jax' / '.venv'
    assert (venv / 'bin' / 'asl-train').is_file()

  second_log = tmp_path / 'launch2.log'
  status = _finish(_launch(tmp_path, second_log), second_log, deadline)
  out = second_log.read_text()
  assert status == 0, out[-6000:]
  assert 'worker 0: exit 0' in out and 'worker 1: exit 0' in out
  assert 'resuming from step' in out
  assert json.loads((workdir / 'metrics.json').read_text())['step'] == TOTAL_STEPS
