"""Config -> training components: model, optimizer, initial state, jitted step, detector."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from asl_jax import parallel
from asl_jax.evaluation import evaluator as evaluator_lib
from asl_jax.evaluation import postprocess
from asl_jax.model.build import build_model
from asl_jax.ops import segments as seg_ops
from asl_jax.train import optim
from asl_jax.train import step as step_lib
from asl_jax.train.state import TrainState, create_train_state


@dataclasses.dataclass(frozen=True)
class Training:
  """Everything the loop (or a benchmark, or a test) needs to run training steps."""

  model: nn.Module
  schedule: Callable[[jax.Array], jax.Array]
  tx: optax.GradientTransformation
  state: TrainState  # Freshly initialised, replicated over the mesh.
  train_step: Callable[[TrainState, dict], tuple[TrainState, dict]]  # Jitted over the mesh.
  total_steps: int  # total_epochs(config.train, steps_per_epoch) * steps_per_epoch.


def build_loss_config(config: ml_collections.ConfigDict) -> step_lib.LossConfig:
  t = config.train
  return step_lib.LossConfig(
    num_classes=config.data.num_classes,
    center_sample_radius=t.center_sample_radius,
    reg_loss_weight=t.reg_loss_weight,
    focal_alpha=t.focal_alpha,
    focal_gamma=t.focal_gamma,
    label_smoothing=t.label_smoothing,
    sensitivity_loss_weight=t.sensitivity_loss_weight,
    contrastive_weight=t.contrastive_weight,
    contrastive_delta=t.contrastive_delta,
    contrastive_temperature=t.contrastive_temperature,
    cls_positives=t.cls_positives,
    normalize_sensitivity=t.normalize_sensitivity,
  )


def total_epochs(train: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """Epochs to run: ``warmup_epochs + num_epochs``, or more where that is under ``min_steps``.

  ``train.min_steps`` (0: off) sizes short schedules by optimizer steps rather than epochs, so a
  small dataset (few steps per epoch) still trains to its plateau; the extra epochs lengthen
  the cosine decay after warm-up, they are not appended at the final learning rate.
  """
  epochs = train.num_epochs + train.warmup_epochs
  min_steps = train.get('min_steps', 0)
  return max(epochs, -(-min_steps // max(steps_per_epoch, 1)))


def create_training(
  config: ml_collections.ConfigDict, mesh: Mesh, *, steps_per_epoch: int
) -> Training:
  """Initialises the parameters (seeded by ``config.seed``) and jits the step over ``mesh``."""
  data, t = config.data, config.train
  model = build_model(config)
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  dummy = jnp.zeros((1, data.max_seq_len, data.input_dim), jnp.float32)
  params = jax.jit(model.init)({'params': init_rng}, dummy, jnp.ones((1, data.max_seq_len), bool))[
    'params'
  ]
  total_steps = total_epochs(t, steps_per_epoch) * steps_per_epoch
  schedule = optim.build_schedule(
    learning_rate=t.learning_rate,
    warmup_steps=t.warmup_epochs * steps_per_epoch,
    total_steps=total_steps,
  )
  tx = optim.build_optimizer(
    schedule=schedule, weight_decay=t.weight_decay, clip_grad_norm=t.clip_grad_norm
  )
  state = create_train_state(params, tx, init_loss_norm=t.init_loss_norm, rng=state_rng)
  state = jax.device_put(state, parallel.replicated(mesh))
  points = seg_ops.make_points(data.max_seq_len, config.model.regression_ranges)
  train_step = step_lib.jit_train_step(
    step_lib.make_train_step(
      model, points, tx, schedule, build_loss_config(config), ema_decay=t.ema_decay
    ),
    mesh,
  )
  return Training(model, schedule, tx, state, train_step, total_steps)


def build_detector(config: ml_collections.ConfigDict, model) -> evaluator_lib.Detector:
  t = config.test
  return evaluator_lib.Detector(
    model,
    num_classes=config.data.num_classes,
    regression_ranges=config.model.regression_ranges,
    max_seq_len=config.data.max_seq_len,
    batch_size=t.batch_size,
    decode=postprocess.DecodeConfig(t.pre_nms_thresh, t.pre_nms_topk, t.duration_thresh),
    nms=evaluator_lib.NMSConfig(
      t.nms_method,
      t.nms_sigma,
      t.iou_threshold,
      t.min_score,
      t.max_seg_num,
      t.multiclass_nms,
      t.voting_thresh,
    ),
  )
