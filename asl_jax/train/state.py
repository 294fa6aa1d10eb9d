"""The complete training state: everything a resumed run needs to continue bit for bit."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken.
  params: Any
  ema_params: Any  # Exponential moving average of params, used for evaluation.
  opt_state: optax.OptState
  loss_norm: jax.Array  # float32 scalar: EMA of the positive count that divides the losses.
  rng: jax.Array  # uint32[2] raw key; per-step randomness is fold_in(rng, step).


def create_train_state(
  params, tx: optax.GradientTransformation, *, init_loss_norm: float, rng: jax.Array
) -> TrainState:
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=jax.tree.map(jnp.copy, params),
    opt_state=tx.init(params),
    loss_norm=jnp.asarray(init_loss_norm, jnp.float32),
    rng=rng,
  )
