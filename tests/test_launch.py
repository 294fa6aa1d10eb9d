"""Launchers: the TPU-pod and local-GPU commands they would run (``--dry_run``; no gcloud here)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shlex
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from asl_jax import configuration

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO_ROOT / 'launch'


def _tpu_pod():
  spec = importlib.util.spec_from_file_location('tpu_pod', LAUNCH / 'tpu_pod.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run(cmd, **kwargs):
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, **kwargs)


def test_tpu_pod_dry_run_prints_every_step():
  proc = _run(
    [
      sys.executable,
      str(LAUNCH / 'tpu_pod.py'),
      '--tpu=asl-pod',
      '--zone=us-central2-b',
      '--accelerator_type=v4-32',
      '--config=configs/demo.py:small',
      '--workdir=gs://bucket/asl/demo',
      '--project=my-project',
      '--sync_data=gs://bucket/data/demo:/data/demo',
      '--dry_run',
      '--config.train.batch_size=32',
      '--config.train.learning_rate=2e-3',
    ]
  )
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert out.startswith('v4-32: 16 devices on 4 host(s)')
  commands = [shlex.split(line) for line in out.splitlines() if line.startswith('gcloud ')]
  assert [c[4] for c in commands] == ['scp', 'ssh', 'ssh', 'ssh', 'ssh']
  for cmd in commands:
    assert cmd[:4] == ['gcloud', 'compute', 'tpus', 'tpu-vm']
    assert {'--zone=us-central2-b', '--worker=all', '--project=my-project'} <= set(cmd)
  scp, unpack, install, sync, train = commands
  assert scp[5].endswith('.tgz') and scp[6] == 'asl-pod:~/asl_jax_code.tgz'
  assert 'tar xzf ~/asl_jax_code.tgz' in unpack[6]
  assert '-c requirements.txt "$(ls dist/asl_jax-*.whl)[tpu]"' in install[6]
  assert 'uv venv -q --seed --python 3.11 .venv' in install[6]  # When no python3.11+ is found.
  assert install[6].index('asl-jax needs Python >= 3.11') < install[6].index('pip install')
  assert 'gcloud storage rsync --recursive gs://bucket/data/demo /data/demo' in sync[6]
  remote = train[6].removeprefix('--command=')
  assert remote.startswith('cd ~/asl-jax && ')
  assert shlex.split(remote.removeprefix('cd ~/asl-jax && '))[3:] == [
    '.venv/bin/asl-train',
    '--config=configs/demo.py:small',
    '--workdir=gs://bucket/asl/demo',
    '--distributed',  # 4 hosts: always, without being asked.
    '--config.train.batch_size=32',
    '--config.train.learning_rate=2e-3',
  ]
  assert '# build the wheel and pack ' in out and 'asl_jax/main.py' in _tpu_pod().code_files()


def test_tpu_pod_git_mode_detach_and_refusals():
  tpu_pod = _tpu_pod()
  args, overrides = tpu_pod.parse_args(
    '--tpu=t --zone=z --accelerator_type=v5litepod-16 --config=configs/demo.py --workdir=gs://b/w '
    '--code=git --git_url=https://example.com/asl-jax.git --git_ref=v1 --skip_install '
    '--detach --distributed --config.seed=3'.split()
  )
  steps = tpu_pod.build_commands(args, overrides, '/tmp/unused.tgz')
  assert [what for what, _ in steps] == ['clone code', 'train']
  assert 'git checkout --force v1' in steps[0][1][6]
  train = steps[1][1][6]
  assert 'setsid nohup bash -c' in train and '> ~/asl-jax/train.log 2>&1' in train
  assert '--distributed --config.seed=3' in train
  assert tpu_pod.check_batch_size(args, overrides).startswith('v5litepod-16: 16 devices on 4')

  with pytest.raises(SystemExit, match='not divisible by 16'):
    tpu_pod.check_batch_size(args, ['--config.train.batch_size=24'])
  with pytest.raises(SystemExit):
    tpu_pod.parse_args('--tpu=t --zone=z --accelerator_type=v4-8 --config=c --workdir=w -x'.split())
  with pytest.raises(ValueError, match='unknown --accelerator_type'):
    tpu_pod.tpu_topology('a100-8')


def test_tpu_pod_one_host_runs_without_distributed_and_offline_install():
  tpu_pod = _tpu_pod()
  args, overrides = tpu_pod.parse_args(
    '--tpu=t --zone=z --accelerator_type=v4-8 --config=demo.py --workdir=/w '
    '--worker_python=/opt/py311/bin/python3.11 --offline_site_packages=/opt/deps'.split()
  )
  steps = dict(tpu_pod.build_commands(args, overrides, '/tmp/unused.tgz'))
  assert '--distributed' not in steps['train'][6]
  assert 'exec env TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/asl-train --config=demo.py' in steps['train'][6]
  install = steps['install'][6]
  assert '/opt/py311/bin/python3.11 -m venv --without-pip .venv' in install
  assert 'echo /opt/deps > ' in install and '--no-index --no-deps' in install
  assert 'uv' not in install.split() and '[tpu]' not in install


@pytest.mark.parametrize(
  'version, ok', [((3, 10, 12), False), ((3, 11, 0), True), ((3, 13, 1), True)]
)
def test_worker_python_check_is_one_clear_line(version, ok):
  # The install step's check, run as if by an interpreter of that version.
  fake = f'import sys; sys.version_info = {version}; sys.executable = "/usr/bin/python3"; '
  proc = _run([sys.executable, '-c', fake + _tpu_pod().PYTHON_CHECK])
  assert proc.returncode == (0 if ok else 1)
  want = '' if ok else 'asl-jax needs Python >= 3.11 on the workers; /usr/bin/python3 is 3.10\n'
  assert proc.stderr == want


@pytest.mark.parametrize(
  'accelerator, devices, hosts',
  [('v2-8', 8, 1), ('v3-32', 32, 4), ('v4-8', 4, 1), ('v4-32', 16, 4), ('v5p-128', 64, 16),
   ('v5litepod-8', 8, 1), ('v5litepod-16', 16, 4), ('v6e-64', 64, 16)],
)  # fmt: skip
def test_tpu_topology(accelerator, devices, hosts):
  assert _tpu_pod().tpu_topology(accelerator) == (devices, hosts)


def test_linear_learning_rate_scaling():
  tpu_pod = _tpu_pod()
  # The reference THUMOS14 recipe (batch 2, lr 1e-4) on a v4-32's 16 devices with batch 16.
  assert tpu_pod.linear_scaled_lr(1e-4, 2, 16) == pytest.approx(8e-4)


def _gpu_dry_run(*args):
  env = {k: v for k, v in os.environ.items() if not k.startswith(('JAX_', 'XLA_PYTHON'))}
  env.pop('CUDA_VISIBLE_DEVICES', None)
  return _run(['bash', str(LAUNCH / 'gpu_local.sh'), '--dry_run', *args], env=env)


@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
def test_gpu_local_dry_run_and_debug_overrides_make_a_valid_config(monkeypatch):
  assert _run(['bash', '-n', str(LAUNCH / 'gpu_local.sh')]).returncode == 0
  proc = _gpu_dry_run(
    '--config=configs/demo.py', '--workdir=/tmp/w', '--debug', '--mem_fraction=0.5',
    '--config.train.num_epochs=2',
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert 'pip install -q jax[cuda12]==0.10.2' in out
  for line in (
    'env XLA_PYTHON_CLIENT_PREALLOCATE=false',
    'env XLA_PYTHON_CLIENT_MEM_FRACTION=0.5',
    'env JAX_DEBUG_NANS=True',
    'env CUDA_VISIBLE_DEVICES=0',
  ):
    assert f'  {line}' in out.splitlines(), (line, out)
  run = shlex.split(next(line for line in out.splitlines() if 'asl_jax.main' in line))[1:]
  assert run[:5] == [str(REPO_ROOT / '.venv/bin/python'), '-m', 'asl_jax.main',
                     '--config=configs/demo.py', '--workdir=/tmp/w']  # fmt: skip
  assert run[-1] == '--config.train.num_epochs=2'  # After the debug overrides: it wins.

  # The debug overrides apply to a real config and pass validation.
  overrides = [a for a in run[5:] if a.startswith('--config.')]
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file('config', None, 'x', flag_values=flag_values)
  argv = ['main', f'--config={REPO_ROOT / "asl_jax/configs/demo.py"}', *overrides]
  monkeypatch.setattr(sys, 'argv', argv)  # config_flags finds the overrides in sys.argv.
  flag_values(argv)
  config = holder.value
  configuration.validate_config(config)
  assert config.model.embed_dim == 64 and config.train.num_epochs == 2

  plain = _gpu_dry_run('--config=c', '--workdir=w', '--preallocate', '--cuda=13').stdout
  assert 'jax[cuda13]==0.10.2' in plain and 'XLA_PYTHON_CLIENT_PREALLOCATE' not in plain
  assert _gpu_dry_run('--config=c').returncode == 2

  # Several GPUs on one host (one process sees them all); several hosts with coordinator flags.
  many = _gpu_dry_run(
    '--config=c', '--workdir=w', '--gpus=all', '--coordinator_address=h0:1234',
    '--num_processes=2', '--process_id=1',
  ).stdout  # fmt: skip
  assert 'CUDA_VISIBLE_DEVICES' not in many
  run = shlex.split(next(line for line in many.splitlines() if 'asl_jax.main' in line))[1:]
  assert run[3:] == ['--config=c', '--workdir=w', '--coordinator_address=h0:1234',
                     '--num_processes=2', '--process_id=1']  # fmt: skip
  assert (
    'env CUDA_VISIBLE_DEVICES=0,1' in _gpu_dry_run('--config=c', '--workdir=w', '--gpus=0,1').stdout
  )
  partial = _gpu_dry_run('--config=c', '--workdir=w', '--num_processes=2')
  assert partial.returncode == 2 and 'need all of --coordinator_address' in partial.stderr
  assert _gpu_dry_run('--config=c', '--workdir=w', '--bogus').returncode == 2
