"""The non-finite guard: a NaN loss stops training, names step, terms and videos, saves nothing."""

import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.train import loop
from asl_jax.train.guard import FiniteGuard, NonFiniteLossError
from tests.train import helpers


def step_metrics(loss: float, grad_norm: float = 1.0) -> dict:
  return {'loss': jnp.float32(loss), 'cls_loss': jnp.float32(loss), 'grad_norm': grad_norm}


def test_guard_names_the_first_bad_step_of_the_checked_range():
  guard = FiniteGuard()
  guard.record(11, step_metrics(1.0), ['a', 'b'])
  guard.check()
  assert guard.num_pending == 0
  guard.record(12, step_metrics(1.0), ['c', 'd'])
  guard.record(13, step_metrics(float('nan')), ['e', 'f'])
  guard.record(14, step_metrics(float('nan')), ['g', 'h'])
  with pytest.raises(NonFiniteLossError, match=r'at step 13 \(steps 12\.\.14') as error:
    guard.check()
  assert "['e', 'f']" in str(error.value) and 'cls_loss=nan' in str(error.value)


def test_guard_catches_a_non_finite_gradient_with_a_finite_loss():
  guard = FiniteGuard()
  guard.record(1, step_metrics(2.0, grad_norm=jnp.float32(np.inf)), None)
  with pytest.raises(NonFiniteLossError, match='step 1 .*grad_norm=inf'):
    guard.check()


def test_nan_feature_stops_training_before_anything_bad_is_saved(tiny_root, tmp_path, monkeypatch):
  config = helpers.resume_config(tiny_root)
  config.train.log_every_steps = 4  # Checkpoints every 2 steps, logs (and checks) every 4.
  poisoned = []

  def poison(step, batch):
    if step == 3:  # load_features rejects NaN files: inject into the batch after loading.
      batch['feats'][1, 5:9] = np.nan
      poisoned.append(batch['video_id'][1])

  helpers.BatchTap(poison).install(monkeypatch)
  workdir = tmp_path / 'workdir'
  with pytest.raises(NonFiniteLossError) as error:
    loop.train_and_evaluate(config, str(workdir))
  message = str(error.value)
  # Step 3 ran unchecked; the check at step 4 (a log step) finds it and names it.
  assert 'at step 3 (steps 3..4' in message
  assert poisoned[0] in message
  for term in ('loss=nan', 'cls_loss=', 'reg_loss=', 'grad_norm='):
    assert term in message
  assert helpers.checkpoint_steps(workdir) == [2]
  assert all(np.isfinite(v).all() for v in helpers.restore_state(workdir, 2).values())
  assert not (workdir / 'metrics.json').exists()
