"""Channel attention with theta > 0 (ASL eq. 1-2) against NumPy, and padding invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.model.encoder import ConvTransformerEncoder, TransformerBlock

C, HEADS, THETA = 8, 2, 0.2


def _numpy_channel_attention(f, mask, params):
  """Eq. 2 per head: ``A = softmax_j(sum_t Q[t, i] K[t, j] / sqrt(T))``, ``o[t] = A V[t]``.

  Sums over the video's valid frames and T its valid length; then the output projection.
  """
  f = np.asarray(f, np.float64)[mask]  # [T_valid, C]
  qkv = f @ np.asarray(params['qkv']['kernel'], np.float64)
  q, k, v = np.split(qkv, 3, axis=-1)
  d = C // HEADS
  out = np.zeros_like(v)
  for h in range(HEADS):
    part = slice(h * d, (h + 1) * d)
    affinity = q[:, part].T @ k[:, part] / np.sqrt(len(f))  # [d, d]
    a = np.exp(affinity - affinity.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    out[:, part] = v[:, part] @ a.T
  proj = params['proj']
  return out @ np.asarray(proj['kernel'], np.float64) + np.asarray(proj['bias'], np.float64)


def _randomised(params, seed):
  """Every parameter random (the drop-path scales start at 1e-4 and would hide the branches)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
    treedef,
    [
      0.5 * jax.random.normal(k, x.shape, x.dtype) + (x if x.ndim > 1 else 0)
      for k, x in zip(keys, leaves)
    ],
  )


@pytest.mark.parametrize('window', [5, -1], ids=['local', 'global'])
def test_block_fuses_numpy_channel_attention_with_theta(window):
  block = TransformerBlock(C, HEADS, window_size=window, channel_theta=THETA)
  x = jax.random.normal(jax.random.key(0), (2, 24, C))
  mask = jnp.arange(24)[None] < jnp.array([[24], [17]])
  params = _randomised(block.init(jax.random.key(1), x, mask, deterministic=True), 2)
  (y, _), state = block.apply(
    params, x, mask, deterministic=True, capture_intermediates=True, mutable=['intermediates']
  )
  inter = state['intermediates']
  p = params['params']
  for b in range(2):
    m = np.asarray(mask[b])
    want = _numpy_channel_attention(inter['ln1']['__call__'][0][b], m, p['channel_attn'])
    got = np.asarray(inter['channel_attn']['__call__'][0][b])
    np.testing.assert_allclose(got[m], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[~m], 0.0)
    # Eq. 1: the attention outputs are fused before the residual: (1 - theta) TA + theta CA.
    temporal = np.asarray(inter['attn']['__call__'][0][0][b])[m]
    fused = (1 - THETA) * temporal + THETA * want
    scale = np.asarray(p['drop_path_attn']['scale'])
    got_branch = np.asarray(inter['drop_path_attn']['__call__'][0][b])[m]
    np.testing.assert_allclose(got_branch, scale * fused, rtol=1e-5, atol=1e-5)
  # The block's output is the residual sum of the two branches.
  mlp = np.asarray(inter['drop_path_mlp']['__call__'][0])
  np.testing.assert_allclose(
    np.asarray(y),
    np.asarray(x * mask[..., None]) + np.asarray(inter['drop_path_attn']['__call__'][0]) + mlp,
    rtol=1e-5,
    atol=1e-5,
  )


@pytest.mark.parametrize('window', [5, -1], ids=['local', 'global'])
def test_encoder_with_theta_ignores_padding(window):
  """A 20-frame video padded to 32 and to 64: the same valid outputs on every pyramid level."""
  encoder = ConvTransformerEncoder(
    embed_dim=C,
    num_heads=HEADS,
    window_sizes=(window,) * 3,
    num_stem=2,
    num_branch=2,
    channel_theta=THETA,
  )
  feats = jax.random.normal(jax.random.key(3), (20, 6))
  outs = []
  params = None
  for length in (32, 64):
    x = jnp.zeros((1, length, 6)).at[0, :20].set(feats)
    mask = jnp.arange(length)[None] < 20
    if params is None:
      params = _randomised(encoder.init(jax.random.key(4), x, mask, deterministic=True), 5)
    levels, masks = encoder.apply(params, x, mask, deterministic=True)
    outs.append([np.asarray(f[0])[np.asarray(m[0])] for f, m in zip(levels, masks)])
  assert 'channel_attn' in str(jax.tree_util.tree_structure(params))
  for a, b in zip(*outs):
    assert a.shape == b.shape and len(a) > 0
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
