"""Debug mode runs the real training step eagerly, NaN-checked: steps work, a NaN stops at once."""

import jax
import numpy as np
import pytest

from asl_jax import configuration, debug, parallel
from asl_jax.train import loop
from asl_jax.train.build import create_training
from tests.train import helpers


@pytest.mark.slow  # Eager ops compile one by one on first use: about 20 s on 2 CPU cores.
def test_debug_mode_trains_eagerly_and_raises_at_an_injected_nan(tiny_root):
  config = helpers.tiny_config(tiny_root)
  config.debug = True
  # As --config.model.arch=(1,0,0) --config.model.regression_ranges='((0,10000),)' would set
  # them: one pyramid level, no transformer blocks, so the eager compiles stay few.
  config.model.arch = (1, 0, 0)
  config.model.regression_ranges = ((0, 10000),)
  saved = jax.config.jax_debug_nans, jax.config.jax_disable_jit
  try:
    debug.apply_debug_mode(config, keep={'model.arch', 'model.regression_ranges'})
    configuration.validate_config(config)
    assert jax.config.jax_disable_jit and config.data.max_videos == debug.MAX_VIDEOS
    batches = loop._train_batches(config)
    assert batches.steps_per_epoch == debug.MAX_VIDEOS // config.train.batch_size
    mesh = parallel.create_mesh()
    training = create_training(config, mesh, steps_per_epoch=batches.steps_per_epoch)
    state, epoch = training.state, batches.epoch(0)
    for _ in range(2):
      batch = {k: v for k, v in next(epoch).items() if k not in loop.HOST_KEYS}
      state, metrics = training.train_step(state, parallel.to_global(batch, mesh))
      assert np.isfinite(float(metrics['loss']))
    assert int(state.step) == 2
    batch = {k: v for k, v in next(epoch).items() if k not in loop.HOST_KEYS}
    batch['feats'][0, 0, 0] = np.nan
    with debug.nan_checks(), pytest.raises(FloatingPointError, match='nan'):  # As main runs it.
      training.train_step(state, parallel.to_global(batch, mesh))
  finally:
    jax.config.update('jax_debug_nans', saved[0])
    jax.config.update('jax_disable_jit', saved[1])
