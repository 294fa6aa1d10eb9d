"""The training step's own memory, from XLA's buffer assignment, without allocating or running it.

``compiled.memory_analysis()`` of the jitted step (forward, losses, backward, AdamW, EMA) splits
what one step holds on a device into arguments (the train state and the batch), outputs (the new
state and metrics; aliased with the donated state), and temporaries (activations kept for the
backward pass, gradients, attention scores, optimizer scratch). The state and the batch are
abstract (``jax.ShapeDtypeStruct``): a T = 9216, batch 32 step can be measured on a laptop.
This is the step's need, not a process's peak: the latter adds compilation, autotuning workspace
and the allocator's pool (see README, "GPU and TPU").
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

GB = 2**30


@dataclasses.dataclass(frozen=True)
class StepMemory:
  """Bytes of one compiled training step (per device)."""

  argument_bytes: int  # Train state (params, EMA, AdamW moments) and the batch.
  output_bytes: int  # New state and metrics.
  alias_bytes: int  # Outputs written in place of donated arguments (the state).
  temp_bytes: int  # Everything else live during the step.
  compile_s: float  # Lowering + XLA compilation.

  @property
  def total_bytes(self) -> int:
    """What the step needs at once: arguments + outputs not aliased + temporaries."""
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

  def as_gb(self) -> dict:
    return {
      'arguments_gb': self.argument_bytes / GB,
      'outputs_gb': self.output_bytes / GB,
      'aliased_gb': self.alias_bytes / GB,
      'temporaries_gb': self.temp_bytes / GB,
      'total_gb': self.total_bytes / GB,
      'compile_s': self.compile_s,
    }


def abstract_batch(config: ml_collections.ConfigDict, batch_size: int | None = None) -> dict:
  """Shapes and dtypes of a training batch as the loop feeds it (host keys left out)."""
  b = config.train.batch_size if batch_size is None else batch_size
  t, c, m = config.data.max_seq_len, config.data.input_dim, config.data.max_segments
  s = jax.ShapeDtypeStruct
  return {
    'feats': s((b, t, c), jnp.float32),
    'mask': s((b, t), jnp.bool_),
    'segments': s((b, m, 2), jnp.float32),
    'labels': s((b, m), jnp.int32),
    'segment_valid': s((b, m), jnp.bool_),
  }


def step_memory(
  config: ml_collections.ConfigDict, *, batch_size: int | None = None, mesh=None
) -> StepMemory:
  """Compiles ``config``'s training step for abstract inputs and returns its buffer sizes.

  Args:
    config: a full config (the step is built as :func:`asl_jax.train.build.create_training`
      builds it; ``model.remat`` and ``model.dtype`` apply).
    batch_size: overrides ``train.batch_size`` (global; split over the mesh).
    mesh: default: every local device (sizes are then per device).
  """
  from asl_jax import parallel
  from asl_jax.model.build import build_model
  from asl_jax.ops import segments as seg_ops
  from asl_jax.train import optim
  from asl_jax.train import step as step_lib
  from asl_jax.train.build import build_loss_config
  from asl_jax.train.state import create_train_state

  data, t = config.data, config.train
  model = build_model(config)
  mesh = parallel.create_mesh() if mesh is None else mesh
  schedule = optim.build_schedule(learning_rate=t.learning_rate, warmup_steps=10, total_steps=1000)
  tx = optim.build_optimizer(
    schedule=schedule, weight_decay=t.weight_decay, clip_grad_norm=t.clip_grad_norm
  )

  def init_state():
    dummy = jnp.zeros((1, data.max_seq_len, data.input_dim), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), dummy, jnp.ones((1, data.max_seq_len), bool))
    return create_train_state(
      params['params'], tx, init_loss_norm=t.init_loss_norm, rng=jax.random.PRNGKey(1)
    )

  state = jax.eval_shape(init_state)
  points = np.asarray(seg_ops.make_points(data.max_seq_len, config.model.regression_ranges))
  train_step = step_lib.jit_train_step(
    step_lib.make_train_step(
      model, points, tx, schedule, build_loss_config(config), ema_decay=t.ema_decay
    ),
    mesh,
  )
  start = time.perf_counter()
  compiled = train_step.lower(state, abstract_batch(config, batch_size)).compile()
  compile_s = time.perf_counter() - start
  analysis = compiled.memory_analysis()
  if analysis is None:
    raise RuntimeError(f'{jax.default_backend()}: XLA gives no memory analysis for this backend')
  return StepMemory(
    argument_bytes=int(analysis.argument_size_in_bytes),
    output_bytes=int(analysis.output_size_in_bytes),
    alias_bytes=int(analysis.alias_size_in_bytes),
    temp_bytes=int(analysis.temp_size_in_bytes),
    compile_s=compile_s,
  )
