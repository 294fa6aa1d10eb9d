"""One jitted, data-parallel training step: forward, label assignment, losses, AdamW, EMA."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from asl_jax import parallel
from asl_jax.train import optim
from asl_jax.train.objective import LossConfig, compute_losses
from asl_jax.train.state import TrainState


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
    for name, value in params.get('class_gaussians', {}).items():  # Interpretable: log them.
      metrics[f'gaussians/{name}_mean'] = jnp.mean(value)
    return new_state, metrics

  return train_step


def jit_train_step(train_step, mesh) -> Callable:
  """jit over the mesh: batch sharded on 'data', state replicated and donated."""
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  return jax.jit(
    train_step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,)
  )
