"""``train_and_evaluate(config, workdir)``: the whole training run, in named sections."""

from __future__ import annotations

import json
import logging
import math
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from clu import metric_writers, parameter_overview

from asl_jax import configuration, parallel
from asl_jax.data import pipeline
from asl_jax.evaluation import evaluator as evaluator_lib
from asl_jax.evaluation import postprocess
from asl_jax.model.build import build_model
from asl_jax.ops import segments as seg_ops
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import optim
from asl_jax.train import step as step_lib
from asl_jax.train.state import TrainState, create_train_state

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """Raised when the loss is NaN/inf; nothing is checkpointed from that state."""


def maybe_synthesize(data: ml_collections.ConfigDict) -> None:
  """Generates the synthetic dataset a config points at when it is enabled and missing."""
  if not data.synthetic.enabled or pathlib.Path(data.annotation_file).exists():
    return
  from asl_jax.tools import synthesize  # Only synthetic configs need the generator.

  out_dir = pathlib.Path(data.annotation_file).parent
  if pathlib.Path(data.feature_dir).resolve() != (out_dir / 'features').resolve():
    raise ValueError(
      f'synthetic data is written to {out_dir}/annotations.json and {out_dir}/features; '
      f'data.feature_dir={data.feature_dir!r} does not point there'
    )
  logger.info('generating synthetic dataset in %s', out_dir)
  summary = synthesize.synthesize_dataset(
    out_dir,
    num_videos=data.synthetic.num_videos,
    num_classes=data.num_classes,
    feature_dim=data.input_dim,
    seed=data.synthetic.seed,
    feat_stride=int(data.feat_stride),
    num_frames=int(data.num_frames),
    min_len=data.synthetic.min_len,
    max_len=data.synthetic.max_len,
  )
  logger.info('synthetic dataset: %s', summary)


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


class _JsonLinesWriter:
  """Scalars as one JSON object per line (easy to read back without TensorBoard)."""

  def __init__(self, path: pathlib.Path, enabled: bool):
    self.file = open(path, 'a') if enabled else None  # noqa: SIM115 - closed in close().

  def write(self, step: int, scalars: dict) -> None:
    if self.file:
      self.file.write(
        json.dumps({'step': step, **{k: float(v) for k, v in scalars.items()}}) + '\n'
      )
      self.file.flush()

  def close(self) -> None:
    if self.file:
      self.file.close()


def _train_batches(config: ml_collections.ConfigDict):
  """Training batches from TFDS shards (``data.tfds_dir``) or straight from the feature files."""
  data = config.data
  common = dict(
    batch_size=config.train.batch_size,
    max_seq_len=data.max_seq_len,
    max_segments=data.max_segments,
    trunc_thresh=data.trunc_thresh,
    crop_ratio=data.crop_ratio,
    seed=config.seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  subsets = configuration.parse_subsets(data.train_subset)
  if data.tfds_dir:
    from asl_jax.data import tf_pipeline  # Imports TensorFlow only when shards are used.

    return tf_pipeline.TFDSTrainBatches(data.tfds_dir, subsets=subsets, **common)
  videos, _ = pipeline.load_split_from_config(data, subsets)
  return pipeline.TrainBatches(videos, **common)


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, *, train: bool = True
) -> dict:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), evaluates, writes artefacts.

  With ``train=False`` (``--mode=eval``) the latest checkpoint in ``workdir`` is evaluated as it is.

  Leaves in ``workdir``: ``config.json``, ``checkpoints/``, TensorBoard events, ``metrics.jsonl``,
  ``detections.json`` (ActivityNet results format, EMA weights) and ``metrics.json``.
  Returns the final metrics dict.
  """
  configuration.validate_config(config)
  workdir_path = pathlib.Path(workdir)
  workdir_path.mkdir(parents=True, exist_ok=True)
  is_chief = jax.process_index() == 0
  if is_chief:
    (workdir_path / 'config.json').write_text(config.to_json_best_effort(indent=2))

  # ---------------------------------------------------------------- data
  data = config.data
  maybe_synthesize(data)
  eval_videos, annotations = pipeline.load_split_from_config(
    data, configuration.parse_subsets(data.eval_subset)
  )
  if annotations.skipped:
    logger.warning('annotations: skipped %s', annotations.skipped)
  if train:
    train_batches = _train_batches(config)
    steps_per_epoch = train_batches.steps_per_epoch
    logger.info(
      'training input: %s, %d steps/epoch; %d evaluation videos',
      'TFDS shards in ' + data.tfds_dir if data.tfds_dir else 'feature files',
      steps_per_epoch,
      len(eval_videos),
    )
  else:
    train_batches, steps_per_epoch = None, 1  # The schedule only shapes the optimizer state.

  # ---------------------------------------------------------------- mesh
  mesh = parallel.create_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh)

  # ---------------------------------------------------------------- model & optimizer
  model = build_model(config)
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  dummy = jnp.zeros((1, data.max_seq_len, data.input_dim), jnp.float32)
  params = jax.jit(model.init)({'params': init_rng}, dummy, jnp.ones((1, data.max_seq_len), bool))[
    'params'
  ]
  if is_chief:
    logger.info('parameters:\n%s', parameter_overview.get_parameter_overview(params))
  warmup_steps = config.train.warmup_epochs * steps_per_epoch
  total_steps = (config.train.num_epochs + config.train.warmup_epochs) * steps_per_epoch
  schedule = optim.build_schedule(
    learning_rate=config.train.learning_rate, warmup_steps=warmup_steps, total_steps=total_steps
  )
  tx = optim.build_optimizer(
    schedule=schedule,
    weight_decay=config.train.weight_decay,
    clip_grad_norm=config.train.clip_grad_norm,
  )
  state = create_train_state(params, tx, init_loss_norm=config.train.init_loss_norm, rng=state_rng)
  state = jax.device_put(state, parallel.replicated(mesh))

  # ---------------------------------------------------------------- step
  points = seg_ops.make_points(data.max_seq_len, config.model.regression_ranges)
  t = config.train
  loss_cfg = step_lib.LossConfig(
    num_classes=data.num_classes,
    center_sample_radius=t.center_sample_radius,
    reg_loss_weight=t.reg_loss_weight,
    focal_alpha=t.focal_alpha,
    focal_gamma=t.focal_gamma,
    label_smoothing=t.label_smoothing,
    sensitivity_loss_weight=t.sensitivity_loss_weight,
    contrastive_weight=t.contrastive_weight,
    contrastive_delta=t.contrastive_delta,
    contrastive_temperature=t.contrastive_temperature,
  )
  train_step = step_lib.jit_train_step(
    step_lib.make_train_step(
      model, points, tx, schedule, loss_cfg, ema_decay=config.train.ema_decay
    ),
    mesh,
  )

  # ---------------------------------------------------------------- checkpoint
  checkpointer = checkpoint_lib.Checkpointer(workdir_path, keep=config.train.keep_checkpoints)
  if checkpointer.latest_step() is not None:
    state, _ = checkpointer.restore(state)
    logger.info('resuming from step %d', int(state.step))
  elif not train:
    raise FileNotFoundError(f'--mode=eval: no checkpoint in {workdir_path / "checkpoints"}')
  start_step = int(state.step)

  # ---------------------------------------------------------------- loop
  writer = metric_writers.create_default_writer(str(workdir_path), just_logging=not is_chief)
  jsonl = _JsonLinesWriter(workdir_path / 'metrics.jsonl', is_chief)
  detector = build_detector(config, model)
  stop = {'requested': False}
  previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
  progress = tqdm.tqdm(
    total=total_steps,
    initial=start_step,
    disable=not (is_chief and train),
    desc='train',
    unit='step',
  )
  step, t0, last_metrics = start_step, time.time(), None
  try:
    epochs = range(start_step // steps_per_epoch, total_steps // steps_per_epoch) if train else ()
    for epoch in epochs:
      for batch in train_batches.epoch(epoch, start_step=step - epoch * steps_per_epoch):
        state, metrics = train_step(state, parallel.to_global(batch, mesh))
        step += 1
        progress.update(1)
        if step % config.train.log_every_steps == 0 or step == total_steps:
          last_metrics = _check_finite(jax.device_get(metrics), step)
          last_metrics['steps_per_sec'] = config.train.log_every_steps / max(time.time() - t0, 1e-9)
          t0 = time.time()
          writer.write_scalars(step, last_metrics)
          jsonl.write(step, last_metrics)
          progress.set_postfix(
            loss=f'{last_metrics["loss"]:.4f}', lr=f'{last_metrics["learning_rate"]:.2e}'
          )
        if step % config.train.checkpoint_every_steps == 0 or stop['requested']:
          _check_finite(jax.device_get(metrics), step)
          checkpointer.save(step, state, {'step': step, 'epoch': epoch})
        if stop['requested']:
          logger.warning('SIGTERM received: saved step %d, exiting', step)
          checkpointer.close()
          return {'interrupted_at_step': step}
      if config.train.eval_every_epochs and (epoch + 1) % config.train.eval_every_epochs == 0:
        _, result = evaluator_lib.evaluate(
          detector, state.ema_params, eval_videos, tious=config.test.tiou_thresholds
        )
        writer.write_scalars(step, {'eval/average_mAP': result.average_map})
        logger.info('epoch %d evaluation (EMA weights):\n%s', epoch + 1, result.format_table())
    if checkpointer.latest_step() != step:
      checkpointer.save(step, state, {'step': step, 'epoch': step // steps_per_epoch}, force=True)
  finally:
    progress.close()
    signal.signal(signal.SIGTERM, previous_handler)
    checkpointer.close()

  # ---------------------------------------------------------------- final evaluation
  final = {}
  for name, weights in (('ema', state.ema_params), ('raw', state.params)):
    detections, result = evaluator_lib.evaluate(
      detector, weights, eval_videos, tious=config.test.tiou_thresholds
    )
    final[name] = result.to_json_dict(annotations.class_names)
    writer.write_scalars(step, {f'eval/{name}/average_mAP': result.average_map})
    if name == 'ema' and is_chief:
      evaluator_lib.write_detections(
        workdir_path / 'detections.json', detections, annotations.class_names
      )
      print(
        f'\nmAP on {data.eval_subset!r} ({len(eval_videos)} videos), EMA weights:\n'
        f'{result.format_table()}'
      )
  logger.info(
    'raw weights average mAP %.4f; EMA %.4f',
    final['raw']['average_mAP'],
    final['ema']['average_mAP'],
  )
  final['step'] = step
  if train_batches is not None:
    final['train_stats'] = dict(train_batches.stats)
  if is_chief:
    (workdir_path / 'metrics.json').write_text(json.dumps(final, indent=2))
  writer.flush()
  writer.close()
  jsonl.close()
  return final


def _check_finite(metrics: dict, step: int) -> dict:
  scalars = {k: float(np.asarray(v)) for k, v in metrics.items()}
  if not all(math.isfinite(v) for v in scalars.values()):
    raise NonFiniteLossError(
      f'non-finite loss at step {step}: {scalars}; no checkpoint was written for it'
    )
  return scalars


__all__ = ['train_and_evaluate', 'TrainState', 'NonFiniteLossError']
