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


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
  """``python -m module args`` as a user runs it, output captured."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env['JAX_COMPILATION_CACHE_DIR'] = str(helpers.REPO_ROOT / '.jax_cache')
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  return subprocess.run(
    [sys.executable, '-m', module, *args],
    cwd=helpers.REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )


def _train_cli(root, workdir, *args: str) -> subprocess.CompletedProcess:
  return _cli(
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_failed_background_save_stops_training_at_the_next_step(tmp_path, monkeypatch):
  from orbax.checkpoint._src.checkpointers import async_checkpointer

  config = helpers.resume_config(tmp_path)  # 6 steps; saves at 2, 4, 6.
  config.train.log_every_steps = 1
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
  # Stopped right after step 5 (before logging it), not at the next save (step 6, logged first).
  logged = [json.loads(line)['step'] for line in (tmp_path / 'workdir' / 'metrics.jsonl').open()]
  assert max(logged) == 4 and max(step for step, _, _ in tap.seen) >= 5
  monkeypatch.undo()
  assert helpers.checkpoint_steps(tmp_path / 'workdir') == [2]
  assert helpers.restore_state(tmp_path / 'workdir', 2)["['step']"] == 2


@pytest.mark.slow
def test_predict_and_export_fall_back_to_an_intact_checkpoint_as_training_does(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  _truncate_data_files(workdir / 'checkpoints' / '2')
  before = _snapshot(workdir)
  features = trained / 'data' / 'features'
  out = tmp_path / 'detections.json'
  result = _cli(
    'asl_jax.cli.predict', f'--workdir={workdir}', f'--features={features}', f'--out={out}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'checkpoint {workdir / "checkpoints" / "2"} cannot be restored (state/' in result.stderr
  assert 'using checkpoint step 2' not in result.stderr
  assert (
    'using checkpoint step 1: newer step(s) [2] cannot be read (left in place)' in result.stderr
  )
  assert json.loads(out.read_text())['results']
  bundle = tmp_path / 'bundle'
  result = _cli('asl_jax.cli.export', f'--workdir={workdir}', f'--out={bundle}', '--platforms=cpu')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'using checkpoint step 1' in result.stderr
  assert json.loads((bundle / 'manifest.json').read_text())['source']['step'] == 1
  assert _snapshot(workdir) == before  # The damaged step is left where it is.


@pytest.mark.slow
def test_predict_export_visualize_name_the_damaged_files_in_one_line(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  for step in (1, 2):
    _truncate_data_files(workdir / 'checkpoints' / str(step))
  features = trained / 'data' / 'features'
  commands = {
    'predict': [f'--workdir={workdir}', f'--features={features}', f'--out={tmp_path / "d.json"}'],
    'export': [f'--workdir={workdir}', f'--out={tmp_path / "bundle"}', '--platforms=cpu'],
    'visualize': [f'--workdir={workdir}', f'--out={tmp_path / "figures"}'],
  }
  for command, args in commands.items():
    result = _cli(f'asl_jax.cli.{command}', *args)
    assert result.returncode == errors.EXIT_USAGE, (command, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr and 'tensorstore' not in result.stderr, command
    [line] = _error_lines(result)
    assert line.startswith(
      f'error: checkpoint in {workdir / "checkpoints"} cannot be read (step 2: state/'
    )
    assert '; step 1: state/' in line and 'unreadable' in line, line


@pytest.mark.slow
def test_a_text_file_saved_as_npy_is_called_not_a_numpy_file(trained, tmp_path):
  (tmp_path / 'notes.npy').write_text('start,end\n1,2\n')
  result = _cli(
    'asl_jax.cli.predict',
    f'--workdir={trained / "workdir"}',
    f'--features={tmp_path / "notes.npy"}',
    f'--out={tmp_path / "d.json"}',
  )
  assert result.returncode == errors.EXIT_USAGE, result.stderr[-3000:]
  [line] = _error_lines(result)
  assert line.startswith(
    f"error: features of video 'notes' ({tmp_path / 'notes.npy'}): not a NumPy .npy file (it "
    "starts with b'start,', not b'\\x93NUMPY'); write features with numpy.save"
  ), line
  assert 'pickled' not in result.stderr and not (tmp_path / 'd.json').exists()


def test_a_missing_feature_folder_is_reported_as_the_folder_once(tmp_path):
  root = tmp_path  # The annotations exist; the feature folder does not.
  video = {'subset': 'validation', 'duration': 10.0, 'fps': 30.0}
  video['annotations'] = [{'segment': [1.0, 2.0], 'label': 'a', 'label_id': 0}]
  database = {f'video_{i}': dict(video) for i in range(3)}
  (root / 'annotations.json').write_text(json.dumps({'database': database}))
  result = _cli(
    'asl_jax.main',
    '--config=demo.py:tiny',
    f'--config.data.annotation_file={root / "annotations.json"}',
    f'--config.data.feature_dir={root / "no_such_folder"}',
    '--config.data.synthetic.enabled=False',
    f'--workdir={root / "workdir"}',
  )
  assert result.returncode == errors.EXIT_USAGE, result.stderr[-3000:]
  assert _error_lines(result) == [
    f'error: feature folder {root / "no_such_folder"} does not exist: check data.feature_dir (or '
    '--features) (--verbose prints the traceback)'
  ]
  assert 'Traceback' not in result.stderr
  assert not (root / 'workdir' / 'config.json').exists()
