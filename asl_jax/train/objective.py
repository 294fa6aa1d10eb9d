"""The training objective: ``L = L_cls + L_loc + L_s + lambda L_ASCL`` (ASL eq. 15) on one batch."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from asl_jax.ops import assignment, losses
from asl_jax.ops import segments as seg_ops
from asl_jax.ops import sensitivity as sens


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss hyperparameters, explicit so the step never reads a config.

  Every field is required: the values live in ``configs/base.py`` (``train.*``) and reach here
  through :func:`asl_jax.train.build.build_loss_config`.
  """

  num_classes: int
  center_sample_radius: float
  reg_loss_weight: float
  focal_alpha: float
  focal_gamma: float
  label_smoothing: float
  sensitivity_loss_weight: float  # Weight of L_s (instance-level quality regression).
  contrastive_weight: float  # lambda of L_ASCL (paper: 0.3); 0 skips the term.
  contrastive_delta: float  # delta: half-width of the sensitive ranges, in action lengths.
  contrastive_temperature: float  # tau of exp(cos / tau).
  # Beyond the paper, off in the configs (docs/design.md, "Sensitivity options"):
  cls_positives: str  # 'centre': ActionFormer's centre sampling; 'inside': every point
  # strictly inside a ground truth (at the levels whose regression range it fits) is a
  # classification positive; regression keeps ActionFormer's centre-sampled positives.
  normalize_sensitivity: bool  # p / its mean over each instance's positives.


def compute_losses(
  outputs: dict, batch: dict, points: jax.Array, loss_norm: jax.Array, cfg: LossConfig
) -> tuple[jax.Array, dict]:
  """Total loss and its terms for one (global) batch. ``loss_norm`` is the previous EMA value.

  Without ASL parts in ``outputs`` (no Gaussians, no q) and ``contrastive_weight == 0`` this is
  ActionFormer's objective: focal loss over valid points and DIoU over positives, divided by the
  EMA of the positive count. With them, positive points are reweighted by the action
  sensitivities of the ground truth that was assigned to them (paper eq. 8-10).
  """
  if cfg.cls_positives not in ('centre', 'inside'):
    raise ValueError(f"cls_positives must be 'centre' or 'inside', got {cfg.cls_positives!r}")
  assign = lambda radius: assignment.assign_batch(
    points,
    batch['segments'],
    batch['labels'],
    batch['segment_valid'],
    num_classes=cfg.num_classes,
    center_sample_radius=radius,
  )
  targets = assign(cfg.center_sample_radius)
  cls_targets = targets if cfg.cls_positives == 'centre' else assign(0.0)
  valid = outputs['mask']
  positive = targets['positive'] & valid
  cls_positive = cls_targets['positive'] & valid
  pos_f = positive.astype(jnp.float32)
  num_pos = positive.sum().astype(jnp.float32)
  norm = jax.lax.stop_gradient(losses.update_loss_normalizer(loss_norm, num_pos))

  gaussians = outputs.get('gaussians', {'cls': None, 'loc': []})
  num_segments = batch['segments'].shape[1]

  def sensitivity_of(assigned):
    """Labels and class-level sensitivities of the ground truths ``assigned`` to the points."""
    labels = jnp.take_along_axis(batch['labels'], assigned, axis=1)  # [B, M] -> [B, P]
    segments = jnp.take_along_axis(batch['segments'], assigned[..., None], axis=1)
    d = sens.normalized_distance(points[None, :, 0], segments)
    return labels, sens.class_sensitivity(d, labels, gaussians)

  assigned_labels, p = sensitivity_of(targets['assigned'])
  cls_labels, p_for_cls = (
    (assigned_labels, p) if cls_targets is targets else sensitivity_of(cls_targets['assigned'])
  )
  p = {'cls': p_for_cls['cls'], 'loc': p['loc']}
  q_cls, q_loc = outputs.get('q_cls'), outputs.get('q_loc')
  diagnostics = {
    **sens.diagnostics(
      {'cls': p['cls'], 'loc': None},
      q_cls,
      None,
      cls_targets['assigned'],
      cls_positive,
      num_segments,
    ),
    **sens.diagnostics(
      {'cls': None, 'loc': p['loc']}, None, q_loc, targets['assigned'], positive, num_segments
    ),
    **sens.gaussian_scalars(gaussians),
  }
  if cfg.normalize_sensitivity:
    by_task = (
      ('cls', cls_targets['assigned'], cls_positive),
      ('loc', targets['assigned'], positive),
    )
    p = {
      k: None if p[k] is None else sens.normalize_per_instance(p[k], a, pos, num_segments)
      for k, a, pos in by_task
    }
  h_cls, h_loc = sens.sensitivity_weights(p, q_cls, q_loc, valid.shape)

  cls_weights = jnp.where(cls_positive, h_cls, 1.0) * valid
  cls_loss = (
    losses.focal_loss_sum(
      outputs['cls_logits'],
      cls_targets['cls'],
      cls_weights,
      alpha=cfg.focal_alpha,
      gamma=cfg.focal_gamma,
      label_smoothing=cfg.label_smoothing,
    )
    / norm
  )
  reg_loss = losses.diou_loss_sum(outputs['offsets'], targets['offsets'], pos_f * h_loc) / norm
  total = cls_loss + cfg.reg_loss_weight * reg_loss
  terms = {'cls_loss': cls_loss, 'reg_loss': reg_loss}

  if q_cls is not None:
    iou, _ = seg_ops.offsets_iou_terms(outputs['offsets'].astype(jnp.float32), targets['offsets'])
    target_cls, _ = sens.quality_targets(outputs['cls_logits'], cls_labels, iou)
    _, target_loc = sens.quality_targets(outputs['cls_logits'], assigned_labels, iou)
    squared = jnp.square(q_cls - target_cls) * cls_positive + jnp.square(q_loc - target_loc) * pos_f
    terms['sensitivity_loss'] = jnp.sum(squared) / norm
    total = total + cfg.sensitivity_loss_weight * terms['sensitivity_loss']
  if cfg.contrastive_weight > 0:
    pooled = sens.sensitive_features(
      outputs['encoder_level0'].astype(jnp.float32),
      batch['mask'],
      batch['segments'],
      batch['labels'],
      batch['segment_valid'],
      outputs['gaussians'],
      delta=cfg.contrastive_delta,
    )
    terms['contrastive_loss'] = sens.contrastive_loss(
      pooled, batch['labels'], batch['segment_valid'], temperature=cfg.contrastive_temperature
    )
    total = total + cfg.contrastive_weight * terms['contrastive_loss']
  return total, {'loss': total, **terms, 'num_pos': num_pos, 'loss_norm': norm, **diagnostics}
