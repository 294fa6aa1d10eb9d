"""Layers: the depthwise conv and max-pool rewrites equal Flax's conv and pool, parameters too."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.model import layers


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('kernel_size', [1, 3, 5])
def test_depthwise_conv_equals_grouped_nn_conv(stride, kernel_size):
  c, pad = 6, kernel_size // 2
  x = jax.random.normal(jax.random.key(0), (2, 16, c))
  ours = layers.DepthwiseConv1D(kernel_size, stride, use_bias=True)
  ref = nn.Conv(
    c,
    (kernel_size,),
    strides=(stride,),
    padding=[(pad, pad)],
    feature_group_count=c,
    kernel_init=layers.torch_default_init,
  )
  params = ours.init(jax.random.key(1), x)
  ref_params = ref.init(jax.random.key(1), x)
  # Same names, shapes and initial values as nn.Conv: checkpoints and seeds carry over.
  jax.tree.map(np.testing.assert_array_equal, params, ref_params)
  params = jax.tree.map(lambda a: a + 0.1, params)  # Non-zero bias.
  with jax.default_matmul_precision('highest'):
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-6)
    grad = lambda m: jax.grad(lambda p, x: jnp.sum(m.apply(p, x) ** 2), argnums=(0, 1))
    for a, b in zip(jax.tree.leaves(grad(ours)(params, x)), jax.tree.leaves(grad(ref)(params, x))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_masked_conv_uses_the_depthwise_form_with_unchanged_parameters():
  x, mask = jax.random.normal(jax.random.key(0), (1, 10, 4)), jnp.arange(10)[None] < 7
  conv = layers.MaskedConv1D(4, 3, stride=2, use_bias=False, groups=4)
  params = conv.init(jax.random.key(0), x, mask)
  assert jax.tree.map(jnp.shape, params) == {'params': {'conv': {'kernel': (3, 1, 4)}}}
  y, out_mask = conv.apply(params, x, mask)
  assert y.shape == (1, 5, 4) and out_mask.tolist() == [[True] * 4 + [False]]
  assert not np.asarray(y[0, 4]).any()


@pytest.mark.parametrize('length', [16, 17])
def test_max_pool_skip_equals_nn_max_pool(length):
  x = jax.random.normal(jax.random.key(0), (2, length, 3))
  ref = nn.max_pool(x, (3,), strides=(2,), padding=[(1, 1)])
  np.testing.assert_array_equal(layers.max_pool_skip(x, 2), ref)
  g = jax.grad(lambda x: jnp.sum(layers.max_pool_skip(x, 2) * jnp.arange(ref.shape[1])[:, None]))
  g_ref = jax.grad(
    lambda x: jnp.sum(
      nn.max_pool(x, (3,), strides=(2,), padding=[(1, 1)]) * jnp.arange(ref.shape[1])[:, None]
    )
  )
  np.testing.assert_allclose(g(x), g_ref(x))  # No ties in random data.
  assert layers.max_pool_skip(x, 1) is x


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_layer_norm_equals_nn_layer_norm_values_and_gradients(dtype):
  """The hand-written backward against autodiff of Flax's LayerNorm (two-pass variance)."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x = 3.0 * jax.random.normal(k1, (2, 9, 16)) + 2.0  # Offset: catches a one-pass variance.
  ours = layers.layer_norm(dtype=dtype)
  ref = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=jnp.float32)
  params = ours.init(jax.random.key(1), x)
  jax.tree.map(np.testing.assert_array_equal, params, ref.init(jax.random.key(1), x))
  params = jax.tree.map(lambda a: a + jax.random.normal(k2, a.shape), params)
  cotangent = jax.random.normal(k3, x.shape)
  y = ours.apply(params, x)
  assert y.dtype == dtype
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(np.asarray(y, np.float32), ref.apply(params, x), rtol=tol, atol=tol)
  grad = lambda m: jax.grad(
    lambda p, x: jnp.sum(m.apply(p, x).astype(jnp.float32) * cotangent), argnums=(0, 1)
  )(params, x)
  for a, b in zip(jax.tree.leaves(grad(ours)), jax.tree.leaves(grad(ref))):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
