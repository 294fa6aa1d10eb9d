"""Checkpoints: every field of the state restored, damaged steps skipped, the best one kept."""

import errno
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train.state import create_train_state
from tests.train import helpers


def small_state(seed: int = 0, step: int = 0, loss_norm: float = 100.0):
  rng = np.random.default_rng(seed)
  params = {
    'conv': {'kernel': jnp.asarray(rng.standard_normal((3, 4, 8)), jnp.float32)},
    'bias': jnp.asarray(rng.standard_normal(8), jnp.float32),
  }
  state = create_train_state(
    params, optax.adamw(1e-3), init_loss_norm=loss_norm, rng=jax.random.PRNGKey(seed)
  )
  return state.replace(step=jnp.asarray(step, jnp.int32))


def save_steps(workdir, steps, keep=3):
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=keep)
  states = {s: small_state(seed=s, step=s, loss_norm=100.0 + s) for s in steps}
  for s, state in states.items():
    checkpointer.save(s, state, {'step': s, 'epoch': 0, 'steps_per_epoch': 10})
  checkpointer.close()
  return states


def assert_same_state(got, want):
  for (path, a), b in zip(
    jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want), strict=True
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


def test_restores_step_loss_norm_rng_and_optimizer_exactly(tmp_path):
  saved = small_state(seed=3, step=7, loss_norm=123.25)
  grads = jax.tree.map(jnp.ones_like, saved.params)  # Non-trivial Adam moments and count.
  _, opt_state = optax.adamw(1e-3).update(grads, saved.opt_state, saved.params)
  saved = saved.replace(opt_state=opt_state)
  checkpointer = checkpoint_lib.Checkpointer(tmp_path)
  checkpointer.save(7, saved, {'step': 7, 'epoch': 0, 'steps_per_epoch': 4})
  checkpointer.close()

  fresh = small_state(seed=0, step=0, loss_norm=1.0)  # Only its structure may matter.
  state, meta = checkpoint_lib.Checkpointer(tmp_path).restore_latest_valid(fresh)
  assert int(state.step) == 7 and float(state.loss_norm) == 123.25
  np.testing.assert_array_equal(np.asarray(state.rng), np.asarray(jax.random.PRNGKey(3)))
  assert_same_state(state, saved)
  assert meta == {'step': 7, 'epoch': 0, 'steps_per_epoch': 4}


def _data_files(step_dir):
  return sorted(
    (p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd'),
    key=lambda p: p.stat().st_size,
  )


def _truncate_data_files(step_dir):
  # Every data file: which OCDBT file holds the arrays varies from run to run.
  for path in _data_files(step_dir):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bytes(step_dir):
  # The middle third of every data file: a few bytes of one file may land where restore never reads.
  for path in _data_files(step_dir):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, 2 * len(data) // 3):
      data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete_metadata(step_dir):
  (step_dir / 'state' / '_METADATA').unlink()


def _delete_state_item(step_dir):
  shutil.rmtree(step_dir / 'state')


@pytest.mark.parametrize(
  'damage', [_truncate_data_files, _flip_bytes, _delete_metadata, _delete_state_item]
)
def test_damaged_latest_step_falls_back_to_the_previous_one(tmp_path, caplog, damage):
  states = save_steps(tmp_path, [1, 2, 3])
  damage(tmp_path / 'checkpoints' / '3')
  checkpointer = checkpoint_lib.Checkpointer(tmp_path)
  with caplog.at_level(logging.WARNING, logger='asl_jax.train.checkpoint'):
    state, meta = checkpointer.restore_latest_valid(small_state())
  assert meta['step'] == 2
  assert_same_state(state, states[2])
  assert 'cannot be restored' in caplog.text and 'resuming from step 2' in caplog.text
  # The damaged step is set aside, so training can write step 3 again.
  assert (tmp_path / 'checkpoints_corrupt' / '3').is_dir()
  assert checkpointer.latest_step() == 2
  checkpointer.save(3, states[3], {'step': 3})
  checkpointer.close()
  assert helpers.checkpoint_steps(tmp_path) == [1, 2, 3]


def test_leftover_tmp_folder_of_a_killed_save_is_ignored(tmp_path):
  states = save_steps(tmp_path, [1, 2])
  # What a SIGKILL during the async save of step 3 leaves behind.
  shutil.copytree(
    tmp_path / 'checkpoints' / '2', tmp_path / 'checkpoints' / '3.orbax-checkpoint-tmp'
  )
  checkpointer = checkpoint_lib.Checkpointer(tmp_path)
  assert checkpointer.latest_step() == 2
  state, _ = checkpointer.restore_latest_valid(small_state())
  assert_same_state(state, states[2])
  assert not (tmp_path / 'checkpoints_corrupt').exists()
  checkpointer.save(3, states[2], {'step': 3})
  checkpointer.close()
  assert helpers.checkpoint_steps(tmp_path) == [1, 2, 3]


def test_no_readable_step_raises_and_moves_nothing(tmp_path):
  save_steps(tmp_path, [1, 2])
  for step in (1, 2):
    _delete_metadata(tmp_path / 'checkpoints' / str(step))
  with pytest.raises(checkpoint_lib.DamagedCheckpointError) as error:
    checkpoint_lib.Checkpointer(tmp_path).restore_latest_valid(small_state())
  assert str(error.value).endswith(
    '(step 2: state/_METADATA missing; step 1: state/_METADATA missing); nothing was moved'
  )
  assert helpers.checkpoint_steps(tmp_path) == [1, 2]
  assert not (tmp_path / 'checkpoints_corrupt').exists()


def test_empty_workdir_restores_nothing(tmp_path):
  assert checkpoint_lib.Checkpointer(tmp_path).restore_latest_valid(small_state()) is None


def test_best_checkpoint_keeps_only_the_best_score(tmp_path):
  best = checkpoint_lib.BestCheckpoint(tmp_path)
  offers = [(2, 0.30, True), (4, 0.10, False), (6, 0.30, False), (8, 0.45, True), (10, 0.2, False)]
  for step, score, kept in offers:
    state = small_state(seed=step, step=step)
    assert best.offer(step, state, {'step': step, 'average_mAP': score}) is kept
  best.close()
  assert helpers.checkpoint_steps(tmp_path, 'checkpoints_best') == [8]
  reopened = checkpoint_lib.BestCheckpoint(tmp_path)
  assert reopened.best() == {'step': 8, 'average_mAP': 0.45}
  assert not reopened.offer(12, small_state(), {'step': 12, 'average_mAP': 0.44})
  reopened.close()
  restored = helpers.restore_state(tmp_path, 8, 'checkpoints_best')
  np.testing.assert_array_equal(
    restored["['params']['bias']"], np.asarray(small_state(seed=8).params['bias'])
  )


def test_workdir_paths_keep_bucket_uris_and_anchor_local_ones(tmp_path, monkeypatch):
  # pathlib would turn gs://bucket/run into the local folder gs:/bucket/run; epath's absolute()
  # would prefix the working directory to it.
  for uri in ('gs://bucket/runs/thumos', 's3://bucket/run'):
    path = checkpoint_lib.absolute_path(uri)
    assert str(path) == uri and str(path / 'checkpoints') == f'{uri}/checkpoints'
  monkeypatch.chdir(tmp_path)
  assert str(checkpoint_lib.absolute_path('runs/a')) == str(tmp_path / 'runs' / 'a')
  assert checkpoint_lib.absolute_path(tmp_path) == tmp_path
  # A relative workdir works from another directory too: the manager gets the absolute path.
  save_steps('runs/a', [1])
  monkeypatch.chdir('/')
  checkpointer = checkpoint_lib.Checkpointer(tmp_path / 'runs' / 'a')
  assert checkpointer.latest_step() == 1
  checkpointer.close()


def test_evaluation_restores_the_step_asked_for_and_never_falls_back(tmp_path):
  states = save_steps(tmp_path, [1, 2, 3])
  _truncate_data_files(tmp_path / 'checkpoints' / '3')
  checkpointer = checkpoint_lib.Checkpointer(tmp_path)
  with pytest.raises(checkpoint_lib.DamagedCheckpointError) as error:
    checkpointer.restore_step(small_state())
  message = str(error.value)
  assert '\n' not in message and 'step 3: state/' in message and ' unreadable' in message
  assert message.endswith(
    'nothing was changed; pass --step=N to score another checkpoint (steps: [1, 2])'
  )
  state, meta = checkpointer.restore_step(small_state(), 2)
  assert meta['step'] == 2
  assert_same_state(state, states[2])
  with pytest.raises(FileNotFoundError, match=r'no checkpoint step 7 .* \(steps: \[1, 2, 3\]\)'):
    checkpointer.restore_step(small_state(), 7)
  checkpointer.close()
  assert helpers.checkpoint_steps(tmp_path) == [1, 2, 3]
  assert not (tmp_path / 'checkpoints_corrupt').exists()


def test_a_checkpoint_of_another_model_is_reported_not_skipped(tmp_path):
  save_steps(tmp_path, [1, 2])
  other = small_state()
  other = other.replace(params={'conv': {'kernel': jnp.zeros((3, 4, 16))}, 'bias': jnp.zeros(16)})
  with pytest.raises(checkpoint_lib.CheckpointMismatchError) as error:
    checkpoint_lib.Checkpointer(tmp_path).restore_latest_valid(other)
  assert '2 parameters differ' in str(error.value)
  assert 'conv/kernel: checkpoint (3, 4, 8), config (3, 4, 16)' in str(error.value)
  assert helpers.checkpoint_steps(tmp_path) == [1, 2]
  assert not (tmp_path / 'checkpoints_corrupt').exists()


def test_weights_for_predict_fall_back_like_training_but_move_nothing(tmp_path, caplog):
  states = save_steps(tmp_path, [1, 2, 3])
  _delete_metadata(tmp_path / 'checkpoints' / '3')
  template = jax.eval_shape(lambda: small_state().params)
  with caplog.at_level(logging.WARNING, logger='asl_jax.train.checkpoint'):
    params, directory, step = checkpoint_lib.restore_params(tmp_path, template)
  assert (directory, step) == (tmp_path / 'checkpoints', 2)
  jax.tree.map(np.testing.assert_array_equal, params, states[2].ema_params)
  assert 'checkpoints/3 cannot be restored (state/_METADATA missing)' in caplog.text
  assert 'using checkpoint step 2' in caplog.text
  assert helpers.checkpoint_steps(tmp_path) == [1, 2, 3]  # Left in place.
  # A step folder named explicitly is read as it is, or the error names its damaged file.
  with pytest.raises(
    checkpoint_lib.DamagedCheckpointError, match='step 3: state/_METADATA missing'
  ):
    checkpoint_lib.restore_params(tmp_path / 'checkpoints' / '3', template)
  raw, _, step = checkpoint_lib.restore_params(tmp_path, template, use_raw_weights=True, step=1)
  assert step == 1
  jax.tree.map(np.testing.assert_array_equal, raw, states[1].params)


def disk_full_on_commit(monkeypatch) -> None:
  """Every background save from now on fails as a full disk does: after the data were queued."""
  from orbax.checkpoint._src.checkpointers import async_checkpointer

  def fail(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(async_checkpointer, '_on_commit_callback', fail)


def test_a_failed_background_save_is_raised_and_the_last_good_step_kept(tmp_path, monkeypatch):
  states = save_steps(tmp_path, [1])
  checkpointer = checkpoint_lib.Checkpointer(tmp_path)
  disk_full_on_commit(monkeypatch)
  checkpointer.save(2, states[1], {'step': 2})
  with pytest.raises(checkpoint_lib.CheckpointSaveError) as error:
    checkpointer.raise_if_save_failed(wait=True)
  assert 'saving checkpoint step 2' in str(error.value)
  assert 'No space left on device' in str(error.value)
  assert 'the last good checkpoint is step 1' in str(error.value)
  checkpointer.raise_if_save_failed(wait=True)  # Reported once.
  checkpointer.close()
  monkeypatch.undo()
  assert helpers.checkpoint_steps(tmp_path) == [1]
  state, meta = checkpoint_lib.Checkpointer(tmp_path).restore_latest_valid(small_state())
  assert meta['step'] == 1
  assert_same_state(state, states[1])
