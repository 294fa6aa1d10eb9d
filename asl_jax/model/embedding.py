"""Input embedding parts: per-stream projection of concatenated features, absolute positions."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.model.layers import Dtype, MaskedConv1D


class StreamProjection(nn.Module):
  """Projects each feature stream with its own 1x1 masked conv and concatenates the results.

  The input holds several feature sets concatenated along channels (e.g. Ego4D's EgoVLP 256 +
  SlowFast 2304 + Omnivore 1536); stream ``i`` is the channel slice of width
  ``input_streams[i]`` and is mapped to ``output_dims[i]`` channels by a k=1 masked conv with a
  zero-initialised bias. No norm or activation follows (the reference backbone's ``proj``).
  """

  input_streams: Sequence[int]  # Channel width of each stream, in input channel order.
  output_dims: Sequence[int]  # Output width of each stream; the output is their concatenation.
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """x ``[B, T, sum(input_streams)]``, mask ``[B, T]`` -> ``[B, T, sum(output_dims)]``."""
    if len(self.input_streams) != len(self.output_dims):
      raise ValueError(
        f'{len(self.input_streams)} input streams {tuple(self.input_streams)} but '
        f'{len(self.output_dims)} output widths {tuple(self.output_dims)}'
      )
    if sum(self.input_streams) != x.shape[-1]:
      raise ValueError(
        f'the input streams {tuple(self.input_streams)} sum to {sum(self.input_streams)} '
        f'channels but the input has {x.shape[-1]}'
      )
    bounds = np.cumsum((0, *self.input_streams))
    outs = [
      MaskedConv1D(width, 1, use_bias=True, dtype=self.dtype, name=f'stream_{i}')(
        x[..., bounds[i] : bounds[i + 1]], mask
      )[0]
      for i, width in enumerate(self.output_dims)
    ]
    return jnp.concatenate(outs, axis=-1)


def sinusoid_table(length: int, dim: int) -> np.ndarray:
  """The ``[length, dim]`` float32 sinusoid table (computed in float64, like the reference).

  ``pe[p, j] = sin(p / 10000^(2 floor(j / 2) / dim))`` for even ``j``, ``cos`` of the same angle
  for odd ``j``.
  """
  position = np.arange(length, dtype=np.float64)[:, None]
  j = np.arange(dim)
  angle = position / np.power(10000.0, 2 * (j // 2) / dim)
  return np.where(j % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def resize_linear(table: np.ndarray, new_len: int) -> np.ndarray:
  """``[T, C]`` -> ``[new_len, C]`` like PyTorch's linear interpolation with align_corners=False.

  Output ``i`` reads ``src = max((i + 0.5) T / new_len - 0.5, 0)`` and blends rows
  ``floor(src)`` and ``floor(src) + 1`` (clamped to ``T - 1``); index arithmetic is float32.

  The same rule as ``asl_jax.data.resample.interpolate_linear`` (a test checks they agree); kept
  here so the model layer does not import from the data layer.
  """
  t = table.shape[0]
  scale = np.float32(t) / np.float32(new_len)
  src = (np.arange(new_len, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
  src = np.maximum(src, np.float32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int64), t - 1)
  i1 = np.minimum(i0 + 1, t - 1)
  lam = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))[:, None]
  return ((np.float32(1.0) - lam) * table[i0] + lam * table[i1]).astype(np.float32)


def absolute_position_embedding(length: int, dim: int, max_len: int) -> np.ndarray:
  """The ``[length, dim]`` position table that the encoder adds to its embedded input.

  ``sinusoid_table(max_len, dim) / sqrt(dim)``: its first ``length`` rows, or, for inputs longer
  than ``max_len`` (long videos at evaluation), the whole table stretched linearly to ``length``.
  Built with NumPy at trace time (shapes are static): a constant of the compiled program.
  """
  if max_len < 1:
    raise ValueError(f'the absolute position table needs max_len >= 1, got {max_len}')
  table = sinusoid_table(max_len, dim) / np.float32(np.sqrt(dim))
  if length > max_len:
    return resize_linear(table, length)
  return table[:length]
