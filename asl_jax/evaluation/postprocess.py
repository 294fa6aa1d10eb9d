"""Decoding: model outputs -> scored candidates per video (jitted) -> detections in seconds."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.data.geometry import FeatureGeometry
from asl_jax.ops import segments as seg_ops


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """Candidate selection before NMS (static under jit); values from ``configs/base.py``."""

  pre_nms_thresh: float
  pre_nms_topk: int
  duration_thresh: float


def select_candidates(
  cls_logits: jax.Array,
  offsets: jax.Array,
  mask: jax.Array,
  points: jax.Array,
  level_sizes: Sequence[int],
  cfg: DecodeConfig,
) -> dict[str, jax.Array]:
  """Per level: sigmoid scores, top-k (point, class) pairs, decoded segments; then all levels.

  Fixed shapes: each level contributes ``min(pre_nms_topk, T_l * K)`` rows whatever the
  scores; rows failing the score or duration threshold are marked invalid rather than removed.

  Args:
    cls_logits: ``[B, P, K]``; offsets ``[B, P, 2]``; mask ``[B, P]``; points ``[P, 4]``.
    level_sizes: points per level (static), summing to P.

  Returns:
    dict of ``segments`` ``[B, N, 2]`` (grid units), ``scores`` ``[B, N]``, ``labels`` ``[B, N]``
    int32 and ``valid`` ``[B, N]`` bool, levels concatenated in order, scores descending per level.
  """
  num_classes = cls_logits.shape[-1]
  probs = jax.nn.sigmoid(cls_logits.astype(jnp.float32)) * mask[..., None]
  segments_all = seg_ops.decode_segments(points[None], offsets.astype(jnp.float32))
  out = {'segments': [], 'scores': [], 'labels': [], 'valid': []}
  start = 0
  for size in level_sizes:
    level_probs = probs[:, start : start + size].reshape(probs.shape[0], -1)
    k = min(cfg.pre_nms_topk, size * num_classes)
    scores, flat = jax.lax.top_k(level_probs, k)
    point = start + flat // num_classes
    segs = jnp.take_along_axis(segments_all, point[..., None], axis=1)
    out['segments'].append(segs)
    out['scores'].append(scores)
    out['labels'].append((flat % num_classes).astype(jnp.int32))
    out['valid'].append(
      (scores > cfg.pre_nms_thresh) & (segs[..., 1] - segs[..., 0] > cfg.duration_thresh)
    )
    start += size
  return {k: jnp.concatenate(v, axis=1) for k, v in out.items()}


def to_seconds(segments_grid: np.ndarray, geometry: FeatureGeometry, duration: float) -> np.ndarray:
  """Grid units -> seconds, clipped to ``[0, duration]`` as the reference does."""
  return np.clip(geometry.grid_to_sec(segments_grid), 0.0, duration)
