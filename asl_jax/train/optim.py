"""AdamW with the reference's weight-decay groups, warmup + cosine schedule, gradient clipping."""

from __future__ import annotations

import jax
import optax


def decay_mask(params) -> dict:
  """Weight decay on conv/linear kernels only: never biases, norms, scales or drop-path scales."""
  return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == 'kernel', params)


def build_schedule(
  *, learning_rate: float, warmup_steps: int, total_steps: int, end_value: float = 1e-8
):
  """Linear warmup from 0 to ``learning_rate`` over ``warmup_steps``, then cosine decay per step."""
  warmup_steps = max(warmup_steps, 1)
  return optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=learning_rate,
    warmup_steps=warmup_steps,
    decay_steps=max(total_steps, warmup_steps + 1),
    end_value=end_value,
  )


def build_optimizer(
  *, schedule, weight_decay: float, clip_grad_norm: float
) -> optax.GradientTransformation:
  """Global-norm clipping (if > 0) followed by AdamW (betas 0.9/0.999, eps 1e-8)."""
  adamw = optax.adamw(
    schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay, mask=decay_mask
  )
  if clip_grad_norm > 0:
    return optax.chain(optax.clip_by_global_norm(clip_grad_norm), adamw)
  return adamw


def ema_update(ema, params, step, decay: float):
  """EMA with a warm-up: the effective decay is ``min(decay, (1 + step) / (10 + step))``.

  A plain 0.999 EMA lags far behind on small datasets (few hundred steps); the warm-up lets the
  average follow the weights early in training and reach ``decay`` after ~10k steps.
  """
  d = jax.numpy.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
