"""Label assignment: the ground-truth segment each pyramid point regresses and classifies."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def assign_targets(
  points: jax.Array,
  segments: jax.Array,
  labels: jax.Array,
  segment_valid: jax.Array,
  *,
  num_classes: int,
  center_sample_radius: float = 1.5,
  tie_tolerance: float = 1e-3,
) -> dict[str, jax.Array]:
  """Centre-sampling assignment of one video's ground truth to the points (ActionFormer rules).

  A ground truth ``n`` is a candidate for point ``(t, lo, hi, s)`` when ``t`` lies strictly inside
  the centre region ``[ctr - r*s, ctr + r*s]`` clipped to the segment (``r <= 0``: anywhere strictly
  inside the segment) and ``lo <= max(t - start, end - t) <= hi``. The shortest candidate wins
  (first index on exact ties); every candidate within ``tie_tolerance`` of the shortest length adds
  its class to the multi-hot classification target. Padded segments never match.

  Args:
    points: ``[P, 4]`` rows ``(t, lo, hi, stride)``.
    segments: ``[M, 2]`` ground truth in grid units (padded to a fixed ``M``).
    labels: ``[M]`` int class ids.
    segment_valid: ``[M]`` bool, False for padding.
    num_classes: K.
    center_sample_radius: radius in strides; ``<= 0`` disables centre sampling.
    tie_tolerance: lengths within this of the minimum count as tied.

  Returns:
    dict with ``cls`` ``[P, K]`` float32 multi-hot, ``offsets`` ``[P, 2]`` float32 stride-normalised
    regression targets of the winning segment, ``assigned`` ``[P]`` int32 index of the winning
    segment (0 where none), ``positive`` ``[P]`` bool (point has a candidate; not yet masked by
    padding of the features).
  """
  t, lo, hi, stride = points[:, 0:1], points[:, 1:2], points[:, 2:3], points[:, 3:4]
  start, end = segments[None, :, 0], segments[None, :, 1]
  left = t - start  # [P, M]
  right = end - t
  length = (segments[:, 1] - segments[:, 0])[None, :]

  if center_sample_radius > 0:
    centre = 0.5 * (start + end)
    radius = center_sample_radius * stride
    inside = (
      jnp.minimum(t - jnp.maximum(centre - radius, start), jnp.minimum(centre + radius, end) - t)
      > 0
    )
  else:
    inside = jnp.minimum(left, right) > 0
  max_dist = jnp.maximum(left, right)
  in_range = (max_dist >= lo) & (max_dist <= hi)
  candidate = inside & in_range & segment_valid[None, :]

  cand_length = jnp.where(candidate, length, jnp.inf)
  min_length = jnp.min(cand_length, axis=1)
  assigned = jnp.argmin(cand_length, axis=1).astype(jnp.int32)
  positive = jnp.isfinite(min_length)

  tied = candidate & (cand_length <= min_length[:, None] + tie_tolerance)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)  # [M, K]
  cls = jnp.minimum(tied.astype(jnp.float32) @ onehot, 1.0)

  take = lambda a: jnp.take_along_axis(a, assigned[:, None], axis=1)[:, 0]
  offsets = jnp.stack([take(left), take(right)], axis=1) / stride
  return {'cls': cls, 'offsets': offsets, 'assigned': assigned, 'positive': positive}


def assign_batch(
  points: jax.Array,
  segments: jax.Array,
  labels: jax.Array,
  segment_valid: jax.Array,
  *,
  num_classes: int,
  center_sample_radius: float = 1.5,
) -> dict[str, jax.Array]:
  """:func:`assign_targets` over a batch: segments ``[B, M, 2]`` -> targets ``[B, P, ...]``."""
  fn = lambda s, lab, v: assign_targets(
    points, s, lab, v, num_classes=num_classes, center_sample_radius=center_sample_radius
  )
  return jax.vmap(fn)(segments, labels, segment_valid)
