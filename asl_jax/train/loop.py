"""``train_and_evaluate(config, workdir)``: the whole training run, in named sections."""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import time

import jax
import ml_collections
import numpy as np
import tqdm
from etils import epath
from jax.experimental import multihost_utils

from asl_jax import configuration, parallel
from asl_jax import workdir as workdir_lib
from asl_jax.data import annotations_common, coverage, pipeline, prefetch
from asl_jax.evaluation import evaluator as evaluator_lib
from asl_jax.evaluation import sharded
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import preemption, reporting
from asl_jax.train.build import build_detector, create_training
from asl_jax.train.guard import FiniteGuard, NonFiniteLossError
from asl_jax.train.state import TrainState

logger = logging.getLogger(__name__)

# Batch entries that stay on the host (they name the videos in errors); the rest go to devices.
HOST_KEYS = ('video_id', 'window_start')
# The non-finite guard checks at least this often, however long the logging interval.
MAX_UNCHECKED_STEPS = 100
# Videos with per-video figures in TensorBoard at each evaluation during training (the final
# evaluation shows visualize's default, as its PNGs do); each costs a forward pass and two plots.
EVAL_FIGURE_VIDEOS = 2


def maybe_synthesize(data: ml_collections.ConfigDict) -> None:
  """Generates the synthetic dataset a config points at when it is enabled and missing.

  With several processes, process 0 writes it while the others wait; then a host that does not
  share process 0's disk writes its own copy (the same bytes: the data follows from the seed).
  """
  if not data.synthetic.enabled:
    return
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      _synthesize_if_missing(data)
    multihost_utils.sync_global_devices('asl_jax_synthetic_data')
  _synthesize_if_missing(data)


def _synthesize_if_missing(data: ml_collections.ConfigDict) -> None:
  if pathlib.Path(data.annotation_file).exists():  # Written last: the features are complete.
    return
  from asl_jax.data import synthetic as synthesize  # Only synthetic configs need the generator.

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
    signal_amplitude=data.synthetic.signal_amplitude,
    weak_frame_prob=data.synthetic.weak_frame_prob,
    shared_fraction=data.synthetic.shared_fraction,
    distractor_amplitude=data.synthetic.distractor_amplitude,
    distractor_similarity=data.synthetic.distractor_similarity,
    # The layout of instances (the dense variant sets them); absent from older configs.
    **{k: data.synthetic[k] for k in synthesize.LAYOUT_FIELDS if k in data.synthetic},
  )
  logger.info('synthetic dataset: %s', summary)


class _JsonLinesWriter:
  """Scalars as one JSON object per line (easy to read back without TensorBoard)."""

  def __init__(self, path: epath.Path, enabled: bool):
    # epath's open is a context manager for buckets (a plain file only locally): kept open here.
    self.files = contextlib.ExitStack()
    self.file = self.files.enter_context(path.open('a')) if enabled else None

  def write(self, step: int, scalars: dict) -> None:
    if self.file:
      self.file.write(
        json.dumps({'step': step, **{k: float(v) for k, v in scalars.items()}}) + '\n'
      )
      self.file.flush()

  def close(self) -> None:
    self.files.close()
    self.file = None


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
    with_video_ids=True,
  )
  subsets = configuration.parse_subsets(data.train_subset)
  if data.tfds_dir:  # validate_config rejects data.max_videos here: shards cannot be capped.
    from asl_jax.data import tf_pipeline  # Imports TensorFlow only when shards are used.

    return tf_pipeline.TFDSTrainBatches(data.tfds_dir, subsets=subsets, **common)
  videos, _ = pipeline.load_split_from_config(data, subsets)
  videos = cap_videos(videos, data.max_videos, split=data.train_subset)
  return pipeline.TrainBatches(videos, **common)


def cap_videos(videos: list[pipeline.Video], max_videos: int, *, split: str) -> list:
  """The first ``max_videos`` videos by id (all when it is 0): ``data.max_videos``, logged."""
  if max_videos <= 0:
    return videos
  kept = sorted(videos, key=lambda v: v.video_id)[:max_videos]
  logger.warning(
    'data.max_videos=%d: using %d of the %d videos of %r', max_videos, len(kept), len(videos), split
  )
  return kept


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  train: bool = True,
  eval_step: int | None = None,
) -> dict:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), evaluates, writes artefacts.

  With ``train=False`` (``--mode=eval``) checkpoint ``eval_step`` (default: the newest) is
  evaluated as it is: a damaged one fails naming its files; nothing in ``checkpoints/`` is moved;
  ``metrics.json['step']`` is the step scored. ``config.json`` is written for a fresh workdir or
  after a checkpoint was restored, never before: a config whose model differs from the
  checkpoints' stops with the fields that differ from the stored ``config.json``.
  Resuming restores the newest checkpoint that reads back and continues bit for bit (see
  :mod:`asl_jax.train.checkpoint`). SIGTERM (to any process) saves one step that all
  processes agree on, then raises :class:`asl_jax.errors.Preempted` (exit status 75;
  :mod:`asl_jax.train.preemption`). A NaN/inf loss or gradient raises
  :class:`NonFiniteLossError` naming the step, its loss terms and videos, before anything from
  that state is saved (:class:`asl_jax.train.guard.FiniteGuard`: checked on log steps, before
  every checkpoint and evaluation, at least every ``MAX_UNCHECKED_STEPS`` steps).

  With ``train.eval_every_epochs > 0`` the EMA weights are evaluated on ``data.eval_subset`` every
  that many epochs and the best state by average mAP is kept in ``checkpoints_best/`` (besides the
  latest ``train.keep_checkpoints`` in ``checkpoints/``); ``metrics.json['best']`` names its step.
  That subset must then be a validation split, not the test split the result is reported on.

  Leaves in ``workdir``: ``config.json``, ``checkpoints/``, TensorBoard events, ``metrics.jsonl``,
  ``detections.json`` (ActivityNet results format, EMA weights) and ``metrics.json``; with
  ``train.write_figures``, ``figures/*.png`` and the same figures as TensorBoard images, plus
  images of ``EVAL_FIGURE_VIDEOS`` videos at each evaluation during training (EMA weights).
  ``workdir`` is a local folder or a bucket (``gs://...``, e.g. on TPU pods): every file goes
  through ``etils.epath``. Returns the final metrics dict.
  """
  configuration.validate_config(config)
  workdir_path = epath.Path(workdir)
  workdir_path.mkdir(parents=True, exist_ok=True)
  is_chief = jax.process_index() == 0
  if eval_step is not None and train:
    raise configuration.ConfigError('a checkpoint step is chosen only with --mode=eval')

  # ---------------------------------------------------------------- data
  data = config.data
  maybe_synthesize(data)
  eval_videos, annotations = pipeline.load_split_from_config(
    data, configuration.parse_subsets(data.eval_subset)
  )
  eval_videos = cap_videos(eval_videos, data.max_videos, split=data.eval_subset)
  if annotations.skipped:
    logger.warning('annotations: skipped %s', annotations.skipped)
  for group in annotations_common.case_collisions([v.video_id for v in annotations.videos]):
    logger.warning(  # One feature file on a case-insensitive file system; a leak across splits.
      'video ids %s differ only in letter case (subsets %s): on a case-insensitive file system '
      'they read one feature file; rename one (asl-validate --strict rejects them)',
      list(group),
      [next(v.subset for v in annotations.videos if v.video_id == g) for g in group],
    )
  if train:
    train_batches = _train_batches(config)
    steps_per_epoch = train_batches.steps_per_epoch
    if is_chief and isinstance(train_batches, pipeline.TrainBatches):  # Shards: the validator.
      settings = coverage.AssignmentSettings.from_config(config)
      coverage.log_coverage(
        coverage.coverage_of_videos(train_batches.videos, settings, annotations.class_names)
      )
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

  # ---------------------------------------------------------------- model, optimizer, step
  training = create_training(config, mesh, steps_per_epoch=steps_per_epoch)
  state, train_step, total_steps = training.state, training.train_step, training.total_steps
  if is_chief:
    logger.info('parameters:\n%s', reporting.parameter_table(state.params))

  # ---------------------------------------------------------------- checkpoint
  checkpointer = checkpoint_lib.Checkpointer(workdir_path, keep=config.train.keep_checkpoints)
  try:
    if train:
      restored = checkpointer.restore_latest_valid(state)
    else:  # Evaluation scores the step asked for, or fails; it never falls back or moves.
      restored = checkpointer.restore_step(state, eval_step)
  except checkpoint_lib.CheckpointMismatchError as e:
    raise configuration.ConfigError(
      f'the checkpoints in {checkpointer.directory} hold another model than this config builds '
      f'({len(e.differences)} parameters differ, e.g. {e.differences[0]});\n'
      + _config_change(workdir_path / 'config.json', config)
    ) from None
  if is_chief and train:  # Fresh, or restored with this config: the workdir describes it.
    (workdir_path / 'config.json').write_text(config.to_json_best_effort(indent=2))
    # The workdir alone names the classes (predict, export on another machine).
    workdir_lib.write_class_names(workdir_path, annotations.class_names)
  if restored is not None:
    state, meta = restored
    logger.info('resuming from step %d', int(state.step))
    if train and meta.get('steps_per_epoch', steps_per_epoch) != steps_per_epoch:
      logger.warning(
        'the checkpoint was written with %d steps per epoch, this run has %d (data, batch size '
        'or process count changed): the data order will not continue where it stopped',
        meta['steps_per_epoch'],
        steps_per_epoch,
      )
  best = None
  if train and config.train.eval_every_epochs > 0:
    best = checkpoint_lib.BestCheckpoint(workdir_path)
    if any(s.lower().startswith('test') for s in configuration.parse_subsets(data.eval_subset)):
      logger.warning(
        'the best checkpoint is selected on data.eval_subset=%r: selecting on the test split '
        'overstates the reported result; evaluate on a validation split during training',
        data.eval_subset,
      )
  start_step = int(state.step)

  # ---------------------------------------------------------------- loop
  writer = reporting.MetricWriter(workdir_path, just_logging=not is_chief)
  jsonl = _JsonLinesWriter(workdir_path / 'metrics.jsonl', is_chief)
  detector = build_detector(config, training.model)
  guard = FiniteGuard()
  stop = preemption.StopAgreement()  # SIGTERM: every process stops at the same step.
  progress = tqdm.tqdm(
    total=total_steps,
    initial=start_step,
    disable=not (is_chief and train),
    desc='train',
    unit='step',
  )
  step, t0, trained = start_step, time.time(), False
  t = config.train
  batches = None
  try:
    epochs = range(start_step // steps_per_epoch, total_steps // steps_per_epoch if train else 0)
    # Batches built ahead in a thread, on into the next epoch (asl_jax/data/prefetch.py).
    batches = prefetch.EpochPrefetcher(
      train_batches,
      first_epoch=epochs.start,
      end_epoch=epochs.stop,
      start_step=step - epochs.start * steps_per_epoch,
      depth=config.data.prefetch_batches,
    )
    for epoch in epochs:
      for batch in batches.epoch(epoch):
        host = {k: batch.pop(k) for k in HOST_KEYS if k in batch}
        state, metrics = train_step(state, parallel.to_global(batch, mesh))
        step += 1
        checkpointer.raise_if_save_failed()  # A failed background save stops the run here.
        guard.record(step, metrics, host.get('video_id'))
        progress.update(1)
        if step % t.log_every_steps == 0 or step == total_steps:
          guard.check()
          scalars = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
          scalars['steps_per_sec'] = t.log_every_steps / max(time.time() - t0, 1e-9)
          t0 = time.time()
          writer.write_scalars(step, scalars)
          jsonl.write(step, scalars)
          progress.set_postfix(loss=f'{scalars["loss"]:.4f}', lr=f'{scalars["learning_rate"]:.2e}')
        stopping = stop.reached(step)
        if step % t.checkpoint_every_steps == 0 or stopping:
          guard.check()
          checkpointer.save(step, state, _meta(step, steps_per_epoch), force=stopping)
        if stopping:
          logger.warning('SIGTERM: saved step %d, exiting', step)
          raise stop.preempted(step)
        if guard.num_pending >= MAX_UNCHECKED_STEPS:
          guard.check()
      guard.check()
      if best is not None and (epoch + 1) % t.eval_every_epochs == 0:
        detections, result = sharded.evaluate(
          detector, state.ema_params, eval_videos, tious=config.test.tiou_thresholds
        )
        writer.write_scalars(step, {'eval/average_mAP': result.average_map})
        jsonl.write(step, {'eval/average_mAP': result.average_map})
        if is_chief and t.write_figures and step < total_steps:  # The final one follows.
          from asl_jax.visualization import report as visualize  # matplotlib only when wanted.

          writer.write_images(
            step,
            visualize.summary_images(
              config=config,
              model=training.model,
              params=state.ema_params,
              eval_videos=eval_videos,
              class_names=annotations.class_names,
              detections=detections,
              max_videos=EVAL_FIGURE_VIDEOS,
            ),
          )
        logger.info('epoch %d evaluation (EMA weights):\n%s', epoch + 1, result.format_table())
        meta = dict(_meta(step, steps_per_epoch), average_mAP=float(result.average_map))
        if best.offer(step, state, dict(meta, eval_subset=data.eval_subset)):
          logger.info('new best average mAP %.4f at step %d', result.average_map, step)
    if train and checkpointer.latest_step() != step:  # Evaluation writes no checkpoint.
      checkpointer.save(step, state, _meta(step, steps_per_epoch), force=True)
    trained = True
  finally:
    progress.close()
    if batches is not None:
      batches.close()
    stop.close()
    checkpointer.close()
    if best is not None:
      best.close()
    if not trained:  # Interrupted or failed: no final evaluation follows.
      writer.close()
      jsonl.close()

  # ---------------------------------------------------------------- final evaluation
  final = {}
  for name, weights in (('ema', state.ema_params), ('raw', state.params)):
    detections, result = sharded.evaluate(
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
      if config.train.write_figures:
        from asl_jax.visualization import report as visualize  # matplotlib only when wanted.

        figures = visualize.build_figures(
          config=config,
          model=training.model,
          params=weights,
          eval_videos=eval_videos,
          class_names=annotations.class_names,
          detections=detections,
          history=visualize.read_history(workdir_path / 'metrics.jsonl'),
        )
        paths = visualize.save_figures(figures, workdir_path / 'figures')
        writer.write_images(step, visualize.figure_images(figures))
        logger.info('wrote %d figures to %s and TensorBoard', len(paths), workdir_path / 'figures')
  logger.info(
    'raw weights average mAP %.4f; EMA %.4f',
    final['raw']['average_mAP'],
    final['ema']['average_mAP'],
  )
  final['step'] = step
  if best is not None and best.best() is not None:
    final['best'] = dict(best.best(), checkpoint=str(best.directory / str(best.best()['step'])))
    logger.info('best checkpoint: %s', final['best'])
  if train_batches is not None:
    final['train_stats'] = dict(train_batches.stats, input_wait_s=round(batches.wait_s, 3))
  if is_chief:
    (workdir_path / 'metrics.json').write_text(json.dumps(final, indent=2))
  writer.flush()
  writer.close()
  jsonl.close()
  return final


def _config_change(stored: epath.Path, config: ml_collections.ConfigDict) -> str:
  """What differs between the workdir's ``config.json`` and ``config``, for the mismatch error."""
  if not stored.is_file():
    return f'{stored} is missing: pass the config the checkpoints were trained with'
  try:
    before = workdir_lib.load_config_json(stored)  # Over today's defaults, as predict reads it.
  except configuration.ConfigError as e:
    return f'{stored} cannot be read ({e})'
  changes = configuration.differing_fields(
    json.loads(before.to_json_best_effort()), json.loads(config.to_json_best_effort())
  )
  lines = [f'  {name}: {old} in {stored.name}, {new} now' for name, old, new in changes]
  return (
    f'fields that differ from {stored} ({len(changes)}):\n'
    + '\n'.join(lines[:20])
    + '\nnothing was changed: rerun with the stored values, or use a new --workdir'
  )


def _meta(step: int, steps_per_epoch: int) -> dict:
  return {'step': step, 'epoch': step // steps_per_epoch, 'steps_per_epoch': steps_per_epoch}


__all__ = ['train_and_evaluate', 'build_detector', 'TrainState', 'NonFiniteLossError']
