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


def _with_neighbours(x: jax.Array, chunk: int) -> jax.Array:
  """``[B, n*c, ...]`` -> ``[B, n, 3c, ...]``: each chunk with its left and right neighbours."""
  b, length = x.shape[:2]
  n = length // chunk
  pad = [(0, 0), (chunk, chunk)] + [(0, 0)] * (x.ndim - 2)
  blocks = jnp.pad(x, pad).reshape((b, n + 2, chunk) + x.shape[2:])
  return jnp.concatenate([blocks[:, :-2], blocks[:, 1:-1], blocks[:, 2:]], axis=2)


def local_attention(q, k, v, q_mask, kv_mask, *, window_size: int) -> jax.Array:
  """Local attention in sliding chunks: O(T*w) time and memory with dense per-chunk matmuls.

  Same semantics as ``dense_attention(..., window_size=w)``. The sequence is cut into chunks of
  ``c = w // 2`` queries; each chunk attends to its own and both neighbouring chunks (3c keys,
  which cover every query's window) under a static band mask. Only reshapes, concatenations and
  batched matmuls are involved, which compile quickly and map well onto matrix units.
  """
  half = window_size // 2
  chunk = max(half, 1)
  b, t, h, d = q.shape
  n = -(-t // chunk)
  extra = n * chunk - t
  pad4 = [(0, 0), (0, extra), (0, 0), (0, 0)]
  q_c = jnp.pad(q, pad4).reshape(b, n, chunk, h, d)
  k_c = _with_neighbours(jnp.pad(k, pad4), chunk)  # [B, n, 3c, H, D]
  v_c = _with_neighbours(jnp.pad(v, pad4), chunk)
  key_valid = _with_neighbours(jnp.pad(kv_mask, [(0, 0), (0, extra)]), chunk)  # [B, n, 3c]
  # [n, 3c]: keys that lie inside the unpadded sequence.
  in_seq = _with_neighbours(jnp.pad(jnp.ones((1, t), bool), [(0, 0), (0, extra)]), chunk)[0]
  # key - query, [c, 3c].
  offset = jnp.arange(3 * chunk)[None, :] - chunk - jnp.arange(chunk)[:, None]
  allowed = (jnp.abs(offset) <= half)[None] & in_seq[:, None, :]  # [n, c, 3c]
  scores = jnp.einsum('bnchd,bnkhd->bhnck', q_c, k_c)
  scores = (
    scores + jnp.where(key_valid, 0.0, _PAD_KEY_BIAS).astype(scores.dtype)[:, None, :, None, :]
  )
  scores = jnp.where(allowed[None, None], scores, _NEG)
  q_valid = jnp.pad(q_mask, [(0, 0), (0, extra)]).reshape(b, 1, n, chunk, 1)
  probs = jax.nn.softmax(scores, axis=-1) * q_valid.astype(scores.dtype)
  out = jnp.einsum('bhnck,bnkhd->bnchd', probs, v_c)
  return out.reshape(b, n * chunk, h, d)[:, :t]


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
