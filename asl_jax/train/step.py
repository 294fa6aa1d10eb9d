"""One jitted, data-parallel training step: forward, label assignment, losses, AdamW, EMA."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from asl_jax import parallel
from asl_jax.ops import assignment, losses
from asl_jax.train import optim
from asl_jax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss hyperparameters, explicit so the step never reads a config."""

  num_classes: int
  center_sample_radius: float = 1.5
  reg_loss_weight: float = 1.0
  focal_alpha: float = 0.25
  focal_gamma: float = 2.0
  label_smoothing: float = 0.0


def compute_losses(
  outputs: dict, batch: dict, points: jax.Array, loss_norm: jax.Array, cfg: LossConfig
) -> tuple[jax.Array, dict]:
  """Total loss and its terms for one (global) batch. ``loss_norm`` is the previous EMA value."""
  targets = assignment.assign_batch(
    points,
    batch['segments'],
    batch['labels'],
    batch['segment_valid'],
    num_classes=cfg.num_classes,
    center_sample_radius=cfg.center_sample_radius,
  )
  valid = outputs['mask']
  positive = targets['positive'] & valid
  num_pos = positive.sum().astype(jnp.float32)
  norm = jax.lax.stop_gradient(losses.update_loss_normalizer(loss_norm, num_pos))
  cls_loss = (
    losses.focal_loss_sum(
      outputs['cls_logits'],
      targets['cls'],
      valid.astype(jnp.float32),
      alpha=cfg.focal_alpha,
      gamma=cfg.focal_gamma,
      label_smoothing=cfg.label_smoothing,
    )
    / norm
  )
  reg_loss = (
    losses.diou_loss_sum(outputs['offsets'], targets['offsets'], positive.astype(jnp.float32))
    / norm
  )
  total = cls_loss + cfg.reg_loss_weight * reg_loss
  return total, {
    'loss': total,
    'cls_loss': cls_loss,
    'reg_loss': reg_loss,
    'num_pos': num_pos,
    'loss_norm': norm,
  }


def make_train_step(
  model: nn.Module,
  points: np.ndarray,
  tx: optax.GradientTransformation,
  schedule: Callable[[jax.Array], jax.Array],
  loss_cfg: LossConfig,
  *,
  ema_decay: float,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Returns the un-jitted ``train_step(state, batch) -> (state, metrics)``."""
  points = jnp.asarray(points)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    step_rng = jax.random.fold_in(state.rng, state.step)
    dropout_rng, droppath_rng = jax.random.split(step_rng)

    def loss_fn(params):
      outputs = model.apply(
        {'params': params},
        batch['feats'],
        batch['mask'],
        deterministic=False,
        rngs={'dropout': dropout_rng, 'droppath': droppath_rng},
      )
      return compute_losses(outputs, batch, points, state.loss_norm, loss_cfg)

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(
      step=state.step + 1,
      params=params,
      ema_params=optim.ema_update(state.ema_params, params, state.step, ema_decay),
      opt_state=opt_state,
      loss_norm=metrics['loss_norm'],
    )
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads), learning_rate=schedule(state.step))
    return new_state, metrics

  return train_step


def jit_train_step(train_step, mesh) -> Callable:
  """jit over the mesh: batch sharded on 'data', state replicated and donated."""
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  return jax.jit(
    train_step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,)
  )
