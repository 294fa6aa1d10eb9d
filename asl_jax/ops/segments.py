"""Point grid, segment encoding/decoding and 1-D IoU / DIoU, all in feature-grid units."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def level_lengths(seq_len: int, num_levels: int, scale_factor: int = 2) -> list[int]:
  """Length of each pyramid level for an input of ``seq_len`` (level l has stride scale**l)."""
  return [seq_len // scale_factor**level for level in range(num_levels)]


def make_points(
  seq_len: int,
  regression_ranges: Sequence[tuple[float, float]],
  *,
  scale_factor: int = 2,
) -> np.ndarray:
  """Points of every pyramid level, concatenated: rows ``(t, range_lo, range_hi, stride)``.

  Level ``l`` has stride ``s = scale_factor**l`` and points ``t = 0, s, 2s, ...`` (no half-stride
  offset, as the reference does). Computed once on the host: the grid depends only on static
  shapes, so it is a constant inside jitted code.

  Returns:
    float32 array ``[P, 4]`` with ``P = sum_l seq_len // s_l``.
  """
  rows = []
  for level, (lo, hi) in enumerate(regression_ranges):
    stride = scale_factor**level
    n = seq_len // stride
    t = np.arange(n, dtype=np.float32) * stride
    rows.append(
      np.stack(
        [t, np.full(n, lo, np.float32), np.full(n, hi, np.float32), np.full(n, stride, np.float32)],
        axis=1,
      )
    )
  return np.concatenate(rows, axis=0)


def decode_segments(points: jax.Array, offsets: jax.Array) -> jax.Array:
  """Segments ``[t - o_left * s, t + o_right * s]`` from stride-normalised offsets.

  Args:
    points: ``[..., P, 4]`` rows ``(t, lo, hi, stride)``.
    offsets: ``[..., P, 2]`` distances to start/end in units of the point's stride.

  Returns:
    ``[..., P, 2]`` (start, end) in grid units.
  """
  t, stride = points[..., 0], points[..., 3]
  return jnp.stack([t - offsets[..., 0] * stride, t + offsets[..., 1] * stride], axis=-1)


def encode_segments(points: jax.Array, segments: jax.Array) -> jax.Array:
  """Inverse of :func:`decode_segments`: ``((t - start) / s, (end - t) / s)``."""
  t, stride = points[..., 0], points[..., 3]
  return jnp.stack([(t - segments[..., 0]) / stride, (segments[..., 1] - t) / stride], axis=-1)


def offsets_iou_terms(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """IoU and DIoU penalty of two segments given as (left, right) offsets from the same point.

  Both segments contain the point, so their intersection is ``min(l) + min(r)``.

  Returns:
    ``(iou, penalty)`` with ``penalty = (centre distance / enclosing length)**2``.
  """
  lp, rp = pred[..., 0], pred[..., 1]
  lg, rg = target[..., 0], target[..., 1]
  inter = jnp.minimum(lp, lg) + jnp.minimum(rp, rg)
  union = lp + rp + lg + rg - inter
  iou = inter / jnp.maximum(union, 1e-8)
  enclosing = jnp.maximum(lp, lg) + jnp.maximum(rp, rg)
  rho = 0.5 * (rp - lp - rg + lg)
  penalty = jnp.square(rho / jnp.maximum(enclosing, 1e-8))
  return iou, penalty


def diou_loss_1d(pred: jax.Array, target: jax.Array) -> jax.Array:
  """1-D distance-IoU loss ``1 - IoU + (rho / c)**2`` on (left, right) offsets.

  Zheng et al., "Distance-IoU Loss", AAAI 2020, in the 1-D form ActionFormer uses.
  """
  iou, penalty = offsets_iou_terms(pred, target)
  return 1.0 - iou + penalty
