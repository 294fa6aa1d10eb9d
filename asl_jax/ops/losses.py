"""Detection losses: sigmoid focal loss over all valid points and DIoU over positive points."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from asl_jax.ops import segments as seg_ops


def focal_loss_sum(
  logits: jax.Array,
  targets: jax.Array,
  weights: jax.Array,
  *,
  alpha: float = 0.25,
  gamma: float = 2.0,
  label_smoothing: float = 0.0,
) -> jax.Array:
  """``sum_i w_i sum_k FL(logit_ik, y_ik)`` (Lin et al., "Focal Loss", ICCV 2017).

  Args:
    logits: ``[..., P, K]``.
    targets: ``[..., P, K]`` in {0, 1} (multi-hot).
    weights: ``[..., P]`` per-point weight; 0 removes padded points.
    label_smoothing: ``y <- y (1 - eps) + eps / (K + 1)`` as the reference smooths.
  """
  logits = logits.astype(jnp.float32)
  if label_smoothing > 0:
    num_classes = targets.shape[-1]
    targets = targets * (1.0 - label_smoothing) + label_smoothing / (num_classes + 1)
  per_elem = optax.losses.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma)
  return jnp.sum(per_elem.sum(-1) * weights)


def diou_loss_sum(
  pred_offsets: jax.Array, target_offsets: jax.Array, weights: jax.Array
) -> jax.Array:
  """``sum_i w_i DIoU(pred_i, target_i)``; weights are 0 on non-positive points.

  Non-positive points are replaced by a harmless target before the loss so that padding or
  unassigned rows (whose targets may be negative) cannot produce NaN gradients.
  """
  use = weights > 0
  safe_target = jnp.where(use[..., None], target_offsets, 1.0)
  safe_pred = jnp.where(use[..., None], pred_offsets.astype(jnp.float32), 1.0)
  return jnp.sum(seg_ops.diou_loss_1d(safe_pred, safe_target) * weights)


def update_loss_normalizer(
  normalizer: jax.Array, num_pos: jax.Array, momentum: float = 0.9
) -> jax.Array:
  """EMA of the positive count: ``n <- m n + (1 - m) max(num_pos, 1)`` (updated before dividing)."""
  return momentum * normalizer + (1.0 - momentum) * jnp.maximum(num_pos, 1.0)
