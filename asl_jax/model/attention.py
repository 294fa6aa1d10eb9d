"""Masked multi-head self-attention over time: global, or local windows computed in O(T*w)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.layers import Dtype, MaskedConv1D, dense, layer_norm

_NEG = -1e30  # Excluded keys; finite so an all-excluded row gives zeros, not NaN.
_PAD_KEY_BIAS = -1e4  # Padded keys inside a local window: ActionFormer adds -1e4 instead of -inf.


def dense_attention(q, k, v, q_mask, kv_mask, *, window_size: int) -> jax.Array:
  """Reference attention with an explicit ``[T, T]`` score matrix (global, or band-masked local).

  q, k, v: ``[B, T, H, D]`` (q already scaled); masks ``[B, T]`` bool.
  Global (window_size < 0): padded keys excluded, values masked.
  Local: query t sees keys ``|t - j| <= w // 2`` inside the sequence; padded keys get ``-1e4``;
  rows of padded queries are zero; values are not masked (ActionFormer's local semantics).
  """
  scores = jnp.einsum('bthd,bshd->bhts', q, k)
  t = q.shape[1]
  if window_size < 0:
    scores = jnp.where(kv_mask[:, None, None, :], scores, _NEG)
    probs = jax.nn.softmax(scores, axis=-1)
    probs = jnp.where(kv_mask.any(-1)[:, None, None, None], probs, 0.0)
    return jnp.einsum('bhts,bshd->bthd', probs, v * kv_mask[:, :, None, None].astype(v.dtype))
  half = window_size // 2
  idx = jnp.arange(t)
  band = jnp.abs(idx[:, None] - idx[None, :]) <= half
  scores = scores + jnp.where(kv_mask[:, None, None, :], 0.0, _PAD_KEY_BIAS).astype(scores.dtype)
  scores = jnp.where(band[None, None], scores, _NEG)
  probs = jax.nn.softmax(scores, axis=-1) * q_mask[:, None, :, None].astype(scores.dtype)
  return jnp.einsum('bhts,bshd->bthd', probs, v)


# Queries per chunk in local attention. Each chunk of c queries attends to the c + w - 1 keys that
# cover its windows, so the work per query is (c + w - 1) / w of the band's: larger chunks waste
# more, smaller ones make matmuls too small to run well. 32 was fastest at w = 19 (CPU, T = 2304).
LOCAL_CHUNK = 32


def _spans(x: jax.Array, chunk: int, span: int, half: int) -> jax.Array:
  """``[B, L, ...]`` -> ``[B, n, span, ...]`` with ``n = L / chunk``: the rows ``[i c - half,
  i c - half + span)`` of each chunk ``i``, zero outside ``x``.

  Built from ``ceil(span / chunk)`` shifted copies of the chunked input, concatenated: static
  slices and reshapes only (a gather of the same rows is slower, most of all in the backward pass).
  """
  b, length = x.shape[:2]
  n, blocks = length // chunk, -(-span // chunk)
  rest = [(0, 0)] * (x.ndim - 2)
  padded = jnp.pad(x, [(0, 0), (half, blocks * chunk - half)] + rest)
  chunks = padded.reshape((b, n + blocks, chunk) + x.shape[2:])
  views = [chunks[:, j : j + n] for j in range(blocks)]
  return jnp.concatenate(views, axis=2)[:, :, :span]


def local_attention(
  q, k, v, q_mask, kv_mask, *, window_size: int, chunk: int = LOCAL_CHUNK
) -> jax.Array:
  """Local attention in chunks: O(T*w) time and memory with dense per-chunk matmuls.

  Same semantics as ``dense_attention(..., window_size=w)``. The sequence is cut into chunks of
  ``c`` queries; a chunk attends to the ``c + 2 (w // 2)`` keys around it under a static band
  mask. Heads go first (``[B, H, n, c, D]``) so both matmuls batch over leading axes and XLA
  adds no transposes around them; only reshapes, slices and concatenations build the chunks.
  """
  half = window_size // 2
  b, t, h, d = q.shape
  c = max(1, min(chunk, t))
  n = -(-t // c)
  span = c + 2 * half
  extra = n * c - t
  heads_first = lambda x: jnp.pad(x, [(0, 0), (0, extra), (0, 0), (0, 0)]).transpose(0, 2, 1, 3)
  q_c = heads_first(q).reshape(b, h, n, c, d)
  k_s = _spans(heads_first(k).reshape(b * h, n * c, d), c, span, half).reshape(b, h, n, span, d)
  v_s = _spans(heads_first(v).reshape(b * h, n * c, d), c, span, half).reshape(b, h, n, span, d)
  pad_mask = lambda m: jnp.pad(m, [(0, 0), (0, extra)])
  key_valid = _spans(pad_mask(kv_mask), c, span, half)  # [B, n, span]
  in_seq = _spans(pad_mask(jnp.ones((1, t), bool)), c, span, half)[0]  # [n, span]
  # key - query, [c, span].
  offset = jnp.arange(span)[None, :] - half - jnp.arange(c)[:, None]
  allowed = (jnp.abs(offset) <= half)[None] & in_seq[:, None, :]  # [n, c, span]
  scores = jnp.einsum('bhncd,bhnkd->bhnck', q_c, k_s)
  scores = (
    scores + jnp.where(key_valid, 0.0, _PAD_KEY_BIAS).astype(scores.dtype)[:, None, :, None, :]
  )
  scores = jnp.where(allowed[None, None], scores, _NEG)
  q_valid = pad_mask(q_mask).reshape(b, 1, n, c, 1)
  probs = jax.nn.softmax(scores, axis=-1) * q_valid.astype(scores.dtype)
  out = jnp.einsum('bhnck,bhnkd->bhncd', probs, v_s).reshape(b, h, n * c, d)[:, :, :t]
  return out.transpose(0, 2, 1, 3)


class MaskedMHCA(nn.Module):
  """Multi-head convolutional self-attention (ActionFormer's MHCA).

  q, k, v each come from a depthwise k=3 masked conv (carrying the block's stride), a LayerNorm
  and a 1x1 projection; attention is global (``window_size < 0``) or local.
  """

  embed_dim: int
  num_heads: int
  window_size: int = -1  # -1: global; odd w: each query sees w keys.
  stride: int = 1
  proj_dropout: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, *, deterministic: bool) -> tuple[jax.Array, jax.Array]:
    """x ``[B, T, C]`` (already normalised), mask ``[B, T]`` -> (``[B, T/stride, C]``, mask)."""
    c, h = self.embed_dim, self.num_heads
    if c % h:
      raise ValueError(f'embed_dim {c} is not divisible by num_heads {h}')
    if self.window_size >= 0 and self.window_size % 2 != 1:
      raise ValueError(f'window_size must be odd or -1, got {self.window_size}')

    def project(name):
      y, m = MaskedConv1D(
        c, 3, self.stride, use_bias=False, groups=c, dtype=self.dtype, name=f'{name}_conv'
      )(x, mask)
      y = layer_norm(f'{name}_norm', self.dtype)(y)
      y = dense(c, name=name, dtype=self.dtype)(y)
      return y.reshape(y.shape[:2] + (h, c // h)), m

    q, q_mask = project('query')
    k, kv_mask = project('key')
    v, _ = project('value')
    q = q * (c // h) ** -0.5
    if self.window_size < 0:
      out = dense_attention(q, k, v, q_mask, kv_mask, window_size=-1)
    else:
      out = local_attention(q, k, v, q_mask, kv_mask, window_size=self.window_size)
    out = out.reshape(out.shape[:2] + (c,))
    out = dense(c, name='proj', dtype=self.dtype)(out)
    out = nn.Dropout(self.proj_dropout)(out, deterministic=deterministic)
    return out * q_mask[..., None].astype(out.dtype), q_mask
