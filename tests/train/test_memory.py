"""The step's memory analysis, and encoder rematerialisation (``model.remat``) keeping values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax import configuration
from asl_jax.model.build import build_model
from asl_jax.train import memory
from tests.train import helpers


def test_step_memory_counts_the_state_and_the_batch(tmp_path):
  config = helpers.tiny_config(tmp_path)
  result = memory.step_memory(config, batch_size=8)
  model = build_model(config)
  t, c = config.data.max_seq_len, config.data.input_dim
  params = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, t, c)), jnp.ones((1, t), bool))
  )['params']
  param_bytes = sum(p.size * p.dtype.itemsize for p in jax.tree.leaves(params))
  batch_bytes = sum(
    np.prod(s.shape) * s.dtype.itemsize for s in memory.abstract_batch(config, 8).values()
  )
  # Params, EMA and AdamW's two moments (4x the parameters) plus the batch are arguments.
  assert result.argument_bytes >= 4 * param_bytes + batch_bytes
  assert result.argument_bytes < 4 * param_bytes + batch_bytes + 64 * 1024  # Counters, rng.
  assert result.alias_bytes > 0  # The donated state is updated in place.
  assert result.temp_bytes > 0
  assert result.total_bytes == (
    result.argument_bytes + result.output_bytes - result.alias_bytes + result.temp_bytes
  )
  # The batch's share of the arguments grows 4x with 4x the batch; the state does not.
  bigger = memory.step_memory(config, batch_size=32)
  assert bigger.argument_bytes - result.argument_bytes == 3 * batch_bytes


@pytest.mark.parametrize('remat', ['full', 'dots'])
def test_remat_gives_the_same_gradients(tmp_path, remat):
  config = helpers.tiny_config(tmp_path)
  config.model.dropout = 0.1  # Random parts must replay identically in the recomputation.
  t, c = config.data.max_seq_len, config.data.input_dim
  rng = np.random.default_rng(0)
  feats = jnp.asarray(rng.normal(size=(2, t, c)), jnp.float32)
  mask = jnp.asarray(np.arange(t)[None] < np.array([[t], [t - 37]]))
  plain = build_model(config)
  params = plain.init(jax.random.PRNGKey(0), feats, mask)['params']
  config.model.remat = remat
  recomputed = build_model(config)
  rngs = {'dropout': jax.random.PRNGKey(1), 'droppath': jax.random.PRNGKey(2)}

  def loss(model, p):
    out = model.apply({'params': p}, feats, mask, deterministic=False, rngs=rngs)
    return sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(out) if x.dtype == jnp.float32)

  value, grads = jax.jit(jax.value_and_grad(lambda p: loss(plain, p)))(params)
  value_r, grads_r = jax.jit(jax.value_and_grad(lambda p: loss(recomputed, p)))(params)
  np.testing.assert_allclose(value_r, value, rtol=1e-6)
  assert jax.tree.structure(grads_r) == jax.tree.structure(grads)
  for g_r, g in zip(jax.tree.leaves(grads_r), jax.tree.leaves(grads), strict=True):
    # Recomputed in other fusions: float32 rounding apart, the same numbers.
    np.testing.assert_allclose(g_r, g, rtol=1e-4, atol=2e-5)
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


def test_unknown_remat_is_a_config_error(tmp_path):
  config = helpers.tiny_config(tmp_path)
  config.model.remat = 'everything'
  with pytest.raises(configuration.ConfigError, match='model.remat'):
    configuration.validate_config(config)
