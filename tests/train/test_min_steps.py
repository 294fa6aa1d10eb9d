"""``train.min_steps``: short schedules sized by optimizer steps (the ``:small`` variant)."""

import ml_collections
import pytest

from asl_jax.configs import base, custom
from asl_jax.train.build import total_epochs


def _train(num_epochs, warmup_epochs, min_steps=None):
  t = ml_collections.ConfigDict({'num_epochs': num_epochs, 'warmup_epochs': warmup_epochs})
  if min_steps is not None:
    t.min_steps = min_steps
  return t


@pytest.mark.parametrize(
  'train, steps_per_epoch, epochs',
  [
    (_train(4, 1, 300), 9, 34),  # 72 videos / batch 8: 5 epochs are 45 steps; 34 x 9 = 306.
    (_train(4, 1, 300), 60, 5),  # 300 steps exactly: the epochs alone suffice.
    (_train(4, 1, 300), 59, 6),  # 5 x 59 = 295 < 300.
    (_train(4, 1, 300), 1000, 5),  # A large dataset keeps its epochs.
    (_train(4, 1, 0), 9, 5),  # Off.
    (_train(4, 1), 9, 5),  # A config written before the field existed.
  ],
)
def test_total_epochs_by_hand(train, steps_per_epoch, epochs):
  assert total_epochs(train, steps_per_epoch) == epochs


def test_small_variant_sets_min_steps_and_the_default_does_not():
  assert custom.get_config().train.min_steps == 0
  small = custom.get_config('small')
  assert small.train.min_steps == base.SMALL_MIN_STEPS == 300
  assert small.train.num_epochs + small.train.warmup_epochs == 5
