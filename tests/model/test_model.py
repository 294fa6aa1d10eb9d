"""Detector shapes, padding invariance, and banded local attention == dense masked attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.model import attention
from asl_jax.model.detector import ActionDetector

TINY = dict(
  num_classes=3,
  embed_dim=16,
  num_heads=2,
  num_embed_convs=1,
  num_stem=1,
  num_branch=2,
  window_sizes=(5, 5, 5),
  fpn_dim=16,
  head_dim=16,
)


def _init(model, t, c, seed=0):
  x = jnp.zeros((1, t, c))
  return model.init({'params': jax.random.key(seed)}, x, jnp.ones((1, t), bool))


@pytest.mark.parametrize('chunk', [3, 8, 32])  # Several chunks (one shorter), and one for all.
@pytest.mark.parametrize('window', [1, 3, 5, 9])
def test_local_attention_equals_dense_band(window, chunk):
  rng = np.random.default_rng(window)
  b, t, h, d = 2, 23, 2, 4
  q, k, v = (jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32) for _ in range(3))
  mask = jnp.asarray(np.arange(t)[None] < np.array([[23], [15]]))
  with jax.default_matmul_precision('highest'):
    ours = attention.local_attention(q, k, v, mask, mask, window_size=window, chunk=chunk)
    ref = attention.dense_attention(q, k, v, mask, mask, window_size=window)
  np.testing.assert_allclose(ours, ref, atol=1e-6)
  assert not np.asarray(ours[1, 15:]).any()  # Padded queries output zero.


def test_output_shapes_and_level_layout():
  model = ActionDetector(**TINY)
  params = _init(model, 64, 7)
  x = jnp.ones((2, 64, 7))
  out = model.apply(params, x, jnp.ones((2, 64), bool))
  p = 64 + 32 + 16
  assert out['cls_logits'].shape == (2, p, 3) and out['cls_logits'].dtype == jnp.float32
  assert out['offsets'].shape == (2, p, 2) and (np.asarray(out['offsets']) >= 0).all()
  assert out['mask'].shape == (2, p)
  assert [f.shape for f in out['features']] == [(2, 64, 16), (2, 32, 16), (2, 16, 16)]


@pytest.mark.parametrize(
  'window, extra',
  [
    (5, {}),
    (-1, {}),
    (5, dict(use_abs_pe=True, max_seq_len=128)),  # Both paddings within the position table.
    (-1, dict(input_streams=(3, 4), stream_embed_dims=(8, 4))),
    (5, dict(input_streams=(2, 5), stream_embed_dims=(6, 6), use_abs_pe=True, max_seq_len=256)),
  ],
  ids=['local', 'global', 'abs_pe', 'streams', 'streams_abs_pe'],
)
def test_padding_does_not_leak_into_valid_outputs(window, extra):
  """The same 40-step video padded to 64 and to 128 gives the same outputs on its valid points."""
  model = ActionDetector(**dict(TINY, window_sizes=(window,) * 3), **extra)
  params = _init(model, 64, 7)
  feats = jax.random.normal(jax.random.key(1), (40, 7))
  outs = []
  for length in (64, 128):
    x = jnp.zeros((1, length, 7)).at[0, :40].set(feats)
    mask = jnp.arange(length)[None] < 40
    with jax.default_matmul_precision('highest'):
      out = model.apply(params, x, mask)
    valid = np.asarray(out['mask'][0])
    level_sizes = [length, length // 2, length // 4]
    per_level, start = [], 0
    for size in level_sizes:
      keep = valid[start : start + size]
      per_level.append(
        (
          np.asarray(out['cls_logits'][0, start : start + size][keep]),
          np.asarray(out['offsets'][0, start : start + size][keep]),
        )
      )
      start += size
    outs.append(per_level)
  for (la, oa), (lb, ob) in zip(*outs):
    np.testing.assert_allclose(la, lb, atol=1e-5)
    np.testing.assert_allclose(oa, ob, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = ActionDetector(**TINY, dtype=jnp.bfloat16)
  params = _init(model, 32, 5)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = model.apply(params, jnp.ones((1, 32, 5)), jnp.ones((1, 32), bool))
  assert out['cls_logits'].dtype == jnp.float32 and out['offsets'].dtype == jnp.float32


def test_dropout_and_droppath_need_rngs_only_in_training():
  model = ActionDetector(**dict(TINY), dropout=0.1, droppath=0.1)
  params = _init(model, 32, 5)
  x, mask = jnp.ones((2, 32, 5)), jnp.ones((2, 32), bool)
  a = model.apply(
    params,
    x,
    mask,
    deterministic=False,
    rngs={'dropout': jax.random.key(0), 'droppath': jax.random.key(1)},
  )
  b = model.apply(
    params,
    x,
    mask,
    deterministic=False,
    rngs={'dropout': jax.random.key(2), 'droppath': jax.random.key(3)},
  )
  assert not np.allclose(a['cls_logits'], b['cls_logits'])
  c = model.apply(params, x, mask)
  d = model.apply(params, x, mask)
  np.testing.assert_array_equal(c['cls_logits'], d['cls_logits'])
