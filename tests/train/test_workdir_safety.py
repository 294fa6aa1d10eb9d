"""No command changes a workdir it cannot finish: evaluation, a changed config, a failed save.

The command-line cases run the real command (``python -m asl_jax.main``) and check its exit status
and the one line it prints; the workdir is compared file by file before and after.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from asl_jax import errors
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import loop
from tests.train import helpers
from tests.train.test_checkpoint import _truncate_data_files


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A 2-step tiny run (checkpoints 1 and 2) that the tests copy before changing anything."""
  root = tmp_path_factory.mktemp('safety')
  config = helpers.tiny_config(root)
  loop.train_and_evaluate(config, str(root / 'workdir'))
  return root


def _copy(trained, tmp_path):
  workdir = tmp_path / 'workdir'
  shutil.copytree(trained / 'workdir', workdir)
  return workdir


def _snapshot(workdir) -> dict[str, tuple[int, int]]:
  """Every file under the workdir except the logs a run appends to: size and modification time."""
  return {
    str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
    for p in sorted(workdir.rglob('*'))
    if p.is_file() and 'tfevents' not in p.name and p.name != 'metrics.jsonl'
  }


def _train_cli(root, workdir, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env['JAX_COMPILATION_CACHE_DIR'] = str(helpers.REPO_ROOT / '.jax_cache')
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  command = [
    sys.executable,
    '-m',
    'asl_jax.main',
    '--config=demo.py:tiny',
    f'--config.data.annotation_file={root / "data" / "annotations.json"}',
    f'--config.data.feature_dir={root / "data" / "features"}',
    '--config.train.num_epochs=1',
    '--config.train.warmup_epochs=0',
    '--config.train.log_every_steps=1',
    '--config.train.checkpoint_every_steps=1',
    f'--workdir={workdir}',
    *args,
  ]
  return subprocess.run(
    command, cwd=helpers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
  )


def _error_lines(result) -> list[str]:
  return [line for line in result.stderr.splitlines() if line.startswith('error:')]


@pytest.mark.slow
def test_eval_of_a_damaged_newest_step_fails_and_changes_nothing(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  _truncate_data_files(workdir / 'checkpoints' / '2')
  before = _snapshot(workdir)
  result = _train_cli(trained, workdir, '--mode=eval')
  assert result.returncode == errors.EXIT_USAGE, result.stderr[-3000:]
  [line] = _error_lines(result)
  assert line.startswith(f'error: checkpoint in {workdir / "checkpoints"} cannot be read (step 2: ')
  assert 'state/' in line and 'unreadable' in line
  assert 'nothing was changed; pass --step=N to score another checkpoint (steps: [1])' in line
  assert 'Traceback' not in result.stderr and 'tensorstore' not in result.stderr
  assert _snapshot(workdir) == before  # Nothing moved, renamed, deleted or rewritten.
  assert not (workdir / 'checkpoints_corrupt').exists()

  # An older step is scored only when asked for, and metrics.json says which.
  result = _train_cli(trained, workdir, '--mode=eval', '--step=1')
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((workdir / 'metrics.json').read_text())['step'] == 1
  assert helpers.checkpoint_steps(workdir) == [1, 2]
  after = _snapshot(workdir)
  assert {k: v for k, v in after.items() if k.startswith('checkpoints')} == {
    k: v for k, v in before.items() if k.startswith('checkpoints')
  }


@pytest.mark.slow
def test_a_config_of_another_model_lists_the_changed_fields_and_writes_nothing(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  before = _snapshot(workdir)
  result = _train_cli(trained, workdir, '--config.model.embed_dim=32', '--config.model.fpn_dim=32')
  assert result.returncode == errors.EXIT_USAGE, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  message = result.stderr[result.stderr.index('error:') :]
  assert 'hold another model than this config builds (97 parameters differ, e.g. ' in message
  assert 'fields that differ from' in message and 'config.json (2)' in message
  assert 'model.embed_dim: 16 in config.json, 32 now' in message
  assert 'model.fpn_dim: 16 in config.json, 32 now' in message
  assert 'nothing was changed' in message
  assert _snapshot(workdir) == before  # config.json still describes the checkpoints.


class _Stop(Exception):
  pass


def test_config_json_is_rewritten_only_after_the_restore_succeeded(trained, tmp_path):
  # A compatible change (a rate, not a shape) resumes; config.json then describes the new run.
  workdir = _copy(trained, tmp_path)
  config = helpers.tiny_config(trained)
  config.model.droppath = 0.0
  seen = []
  real = checkpoint_lib.Checkpointer.restore_latest_valid

  def spy(self, state):
    seen.append(json.loads((workdir / 'config.json').read_text())['model']['droppath'])
    return real(self, state)

  def stop(*args, **kwargs):  # Right after the checkpoint section: no training, no evaluation.
    raise _Stop

  with pytest.MonkeyPatch.context() as m:
    m.setattr(checkpoint_lib.Checkpointer, 'restore_latest_valid', spy)
    m.setattr(loop, 'build_detector', stop)
    with pytest.raises(_Stop):
      loop.train_and_evaluate(config, str(workdir))
  assert seen == [0.1]  # The stored config while the checkpoints were read.
  assert json.loads((workdir / 'config.json').read_text())['model']['droppath'] == 0.0


def test_a_failed_background_save_stops_training_at_the_next_step(tmp_path, monkeypatch):
  from orbax.checkpoint._src.checkpointers import async_checkpointer

  config = helpers.resume_config(tmp_path)  # 6 steps; saves at 2, 4, 6.
  failed = threading.Event()
  real_commit = async_checkpointer._on_commit_callback

  def commit(tmpdir, *args, **kwargs):
    if tmpdir.get_final().name == '4':
      failed.set()
      raise OSError(errno.ENOSPC, 'No space left on device')  # What a full disk raises.
    return real_commit(tmpdir, *args, **kwargs)

  def before_step(step, _):
    if step == 5:  # The background failure has happened before step 5 ends.
      assert failed.wait(60)
      time.sleep(1)

  monkeypatch.setattr(async_checkpointer, '_on_commit_callback', commit)
  tap = helpers.BatchTap(before_step).install(monkeypatch)
  with pytest.raises(checkpoint_lib.CheckpointSaveError) as error:
    loop.train_and_evaluate(config, str(tmp_path / 'workdir'))
  assert 'saving checkpoint step 4' in str(error.value)
  assert 'No space left on device' in str(error.value)
  assert 'the last good checkpoint is step 2' in str(error.value)
  assert max(step for step, _, _ in tap.seen) == 5  # Stopped after step 5, not at the next save.
  monkeypatch.undo()
  assert helpers.checkpoint_steps(tmp_path / 'workdir') == [2]
  assert helpers.restore_state(tmp_path / 'workdir', 2)["['step']"] == 2
