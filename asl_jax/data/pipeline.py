"""Numpy input pipeline: videos in memory -> padded, masked training and evaluation batches.

Training follows the reference: each epoch visits the videos in a seeded random order (last
partial batch dropped), crops long videos (and, with ``crop_ratio``, short ones) to a random
window that keeps at least one action, and right-pads features to ``max_seq_len``. Evaluation
visits every video exactly once without cropping. Everything is a pure function of
``(seed, epoch, video)``, so a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np

from asl_jax.data import annotations as annotations_lib
from asl_jax.data import features as features_lib
from asl_jax.data.feature_formats import FeatureReader
from asl_jax.data.feature_geometry import adapt_features
from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.records import AnnotationSet, VideoRecord

logger = logging.getLogger(__name__)

_MAX_CROP_TRIALS = 200


@dataclasses.dataclass(frozen=True)
class Video:
  """A video ready for batching: features, ground truth in grid units and its geometry."""

  record: VideoRecord
  feats: np.ndarray  # [T, C] float32.
  geometry: FeatureGeometry
  segments: np.ndarray  # [N, 2] float32, grid units.
  labels: np.ndarray  # [N] int32.

  @property
  def video_id(self) -> str:
    return self.record.video_id


def load_videos(
  annotations: AnnotationSet,
  subsets: Sequence[str],
  *,
  feature_dir: str,
  feature_prefix: str = '',
  feature_ext: str = '.npy',
  input_dim: int,
  feat_stride: float,
  num_frames: float,
  reader=None,
  downsample_rate: int = 1,
  force_upsampling: bool = False,
  max_seq_len: int | None = None,
) -> list[Video]:
  """Reads the features of every video of ``subsets`` and converts its segments to grid units.

  ``reader`` (a ``feature_formats.FeatureReader``) reads several feature sets, HDF5 or ``.pt``;
  without it one folder of ``.npy``/``.npz`` files is read. The per-video geometry (downsampling,
  fixed-length resizing, unknown fps) follows ``feature_geometry.adapt_features``.
  """
  videos = []
  for record in annotations.subset(subsets):
    if reader is not None:
      feats = reader.load(record.video_id)
    else:
      path = features_lib.feature_path(
        feature_dir, record.video_id, prefix=feature_prefix, ext=feature_ext
      )
      feats = features_lib.load_features(path, expected_dim=input_dim, video_id=record.video_id)
    feats, geometry = adapt_features(
      feats,
      duration=record.duration,
      fps=record.fps,
      feat_stride=feat_stride,
      num_frames=num_frames,
      downsample_rate=downsample_rate,
      force_upsampling=force_upsampling,
      max_seq_len=max_seq_len,
      video_id=record.video_id,
    )
    segments = geometry.sec_to_grid(record.segments_sec).astype(np.float32).reshape(-1, 2)
    videos.append(Video(record, feats, geometry, segments, record.labels.astype(np.int32)))
  return videos


def annotations_from_config(data_config) -> AnnotationSet:
  """Loads ``data.annotation_file`` with the options its schema takes (schema detected)."""
  path = data_config.annotation_file
  schema = annotations_lib.detect_schema(annotations_lib.read_json(path))
  wanted = {'actionformer': 'database'}.get(
    data_config.annotation_format, data_config.annotation_format
  )
  if wanted != 'auto' and wanted != schema:
    raise ValueError(
      f'{path}: data.annotation_format={data_config.annotation_format!r} but the file is '
      f'{schema!r}-format'
    )
  fps = data_config.default_fps if data_config.default_fps > 0 else None
  class_names = (
    annotations_lib.read_class_names(data_config.class_names_file)
    if data_config.class_names_file and schema != 'bsn'
    else None
  )
  if schema == 'bsn':
    options = dict(
      video_info_csv=data_config.video_info_csv or None,
      action_names_csv=data_config.class_names_file or None,
      class_agnostic=data_config.num_classes == 1,
    )
  elif schema == 'database':
    options = dict(default_fps=fps, num_classes=data_config.num_classes, class_names=class_names)
  else:
    options = dict(
      default_fps=fps,
      num_classes=data_config.num_classes,
      label_offset=data_config.label_offset,
      class_names=class_names,
    )
  return annotations_lib.load_annotations(path, **options)


def load_split_from_config(
  data_config, subsets: Sequence[str]
) -> tuple[list[Video], AnnotationSet]:
  """:func:`load_videos` with the arguments taken from a ``config.data`` section."""
  annotations = annotations_from_config(data_config)
  several = ',' in data_config.feature_dir or data_config.feature_ext.lower() in (
    '.pt',
    '.h5',
    '.hdf5',
  )
  reader = FeatureReader.from_config(data_config) if several else None
  videos = load_videos(
    annotations,
    subsets,
    feature_dir=data_config.feature_dir,
    feature_prefix=data_config.feature_prefix,
    feature_ext=data_config.feature_ext,
    input_dim=data_config.input_dim,
    feat_stride=data_config.feat_stride,
    num_frames=data_config.num_frames,
    reader=reader,
    downsample_rate=data_config.downsample_rate,
    force_upsampling=data_config.force_upsampling,
    max_seq_len=data_config.max_seq_len,
  )
  return videos, annotations


def _python_round(x: float) -> int:
  """Banker's rounding, as Python's ``round`` used by the reference crop-length draw."""
  return int(round(x))


def random_window(
  length: int,
  segments: np.ndarray,
  *,
  max_seq_len: int,
  trunc_thresh: float,
  crop_ratio: Sequence[float],
  rng: np.random.Generator,
) -> tuple[int, int, np.ndarray, bool]:
  """Chooses a training window ``[start, start + L)`` that keeps at least one action.

  Reference semantics (ActionFormer's ``truncate_feats``): long videos get ``L = max_seq_len``;
  short ones get ``L`` drawn from ``crop_ratio`` or stay whole. A GT is kept when at least
  ``trunc_thresh`` of it lies inside the window; up to 200 windows are drawn. Where the reference
  would then return a window without any action (a sample it later drops), we instead centre
  the window on a random action so that no empty example is produced; the returned flag says so.

  Returns:
    ``(start, window_len, keep [N] bool, fallback_used)``.
  """
  if length <= max_seq_len:
    if not crop_ratio:
      return 0, length, np.ones(len(segments), bool), False
    lo = max(_python_round(crop_ratio[0] * length), 1)
    hi = min(_python_round(crop_ratio[1] * length), length)
    window = int(rng.integers(lo, hi + 1))
    if window == length:
      return 0, length, np.ones(len(segments), bool), False
  else:
    window = max_seq_len
  seg_len = np.maximum(segments[:, 1] - segments[:, 0], 1e-8)
  keep = np.zeros(len(segments), bool)
  for _ in range(_MAX_CROP_TRIALS):
    start = int(rng.integers(0, length - window + 1))
    inter = np.clip(
      np.minimum(start + window, segments[:, 1]) - np.maximum(start, segments[:, 0]), 0, None
    )
    keep = inter / seg_len >= trunc_thresh
    if keep.any():
      return start, window, keep, False
  if len(segments) == 0:
    return start, window, keep, False
  target = segments[int(rng.integers(0, len(segments)))]
  centre = 0.5 * (target[0] + target[1])
  start = int(np.clip(round(centre - 0.5 * window), 0, length - window))
  inter = np.clip(
    np.minimum(start + window, segments[:, 1]) - np.maximum(start, segments[:, 0]), 0, None
  )
  ratio = inter / seg_len
  keep = ratio >= trunc_thresh
  if not keep.any():  # The chosen action is longer than the window: keep the best-covered one.
    keep = ratio == ratio.max()
  return start, window, keep, True


class TrainBatches:
  """Deterministic training batches for one process: ``epoch(e)`` always yields the same batches."""

  def __init__(
    self,
    videos: Sequence[Video],
    *,
    batch_size: int,
    max_seq_len: int,
    max_segments: int,
    trunc_thresh: float,
    crop_ratio: Sequence[float],
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    with_video_ids: bool = False,
  ):
    """``with_video_ids``: batches also hold ``video_id`` [B] (str) and ``window_start`` [B]
    (int32), as :class:`asl_jax.data.tf_pipeline.TFDSTrainBatches` yields them (host-side only:
    the training loop strips them before the batch goes to the devices)."""
    if batch_size % process_count:
      raise ValueError(
        f'global batch size {batch_size} is not divisible by {process_count} processes'
      )
    if len(videos) < batch_size:
      raise ValueError(f'{len(videos)} training videos are fewer than one batch of {batch_size}')
    self.videos = list(videos)
    self.global_batch_size = batch_size
    self.local_batch_size = batch_size // process_count
    self.max_seq_len = max_seq_len
    self.max_segments = max_segments
    self.trunc_thresh = trunc_thresh
    self.crop_ratio = tuple(crop_ratio)
    self.seed = seed
    self.process_index = process_index
    self.with_video_ids = with_video_ids
    self.stats = {'fallback_windows': 0, 'segments_over_max': 0, 'videos_over_max_segments': 0}
    over = [v.video_id for v in self.videos if len(v.segments) > max_segments]
    if over:
      logger.warning(
        '%d training videos have more than max_segments=%d actions; the extra actions of a '
        'window are dropped (and counted): %s',
        len(over),
        max_segments,
        over[:5],
      )

  @property
  def steps_per_epoch(self) -> int:
    return len(self.videos) // self.global_batch_size

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``epoch`` starting at in-epoch step ``start_step`` (for resuming)."""
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.videos))
    for step in range(start_step, self.steps_per_epoch):
      rows = order[step * self.global_batch_size : (step + 1) * self.global_batch_size]
      local = rows[
        self.process_index * self.local_batch_size : (self.process_index + 1)
        * self.local_batch_size
      ]
      yield self._make_batch([(int(i), self.videos[int(i)]) for i in local], epoch)

  def _make_batch(self, items: list[tuple[int, Video]], epoch: int) -> dict[str, np.ndarray]:
    b, length, m = len(items), self.max_seq_len, self.max_segments
    dim = items[0][1].feats.shape[1]
    batch = {
      'feats': np.zeros((b, length, dim), np.float32),
      'mask': np.zeros((b, length), bool),
      'segments': np.zeros((b, m, 2), np.float32),
      'labels': np.zeros((b, m), np.int32),
      'segment_valid': np.zeros((b, m), bool),
    }
    if self.with_video_ids:
      batch['video_id'] = np.array([video.video_id for _, video in items], dtype=object)
      batch['window_start'] = np.zeros((b,), np.int32)
    for row, (index, video) in enumerate(items):
      rng = np.random.default_rng([self.seed, epoch, index])
      t = len(video.feats)
      start, window, keep, fallback = random_window(
        t,
        video.segments,
        max_seq_len=length,
        trunc_thresh=self.trunc_thresh,
        crop_ratio=self.crop_ratio,
        rng=rng,
      )
      self.stats['fallback_windows'] += int(fallback)
      if self.with_video_ids:
        batch['window_start'][row] = start
      batch['feats'][row, :window] = video.feats[start : start + window]
      batch['mask'][row, :window] = True
      segs = video.segments[keep]
      segs = (
        np.stack([np.maximum(segs[:, 0], start), np.minimum(segs[:, 1], start + window)], 1) - start
      )
      labels = video.labels[keep]
      if len(segs) > m:
        self.stats['segments_over_max'] += len(segs) - m
        self.stats['videos_over_max_segments'] += 1
        segs, labels = segs[:m], labels[:m]
      batch['segments'][row, : len(segs)] = segs
      batch['labels'][row, : len(segs)] = labels
      batch['segment_valid'][row, : len(segs)] = True
    return batch


@dataclasses.dataclass(frozen=True)
class EvalBatch:
  """Padded features of several videos plus what post-processing needs to return to seconds."""

  feats: np.ndarray  # [B, L, C]
  mask: np.ndarray  # [B, L]
  videos: list[Video | None]  # None for rows that only pad the last batch.


def eval_length(t: int, max_seq_len: int) -> int:
  """Padded length of a video at inference: max_seq_len, or the next multiple of it when longer.

  Rounding long videos up to multiples of ``max_seq_len`` (a multiple of the pyramid stride)
  bounds the number of compiled shapes to ``ceil(T_max / max_seq_len)``.
  """
  return max_seq_len * max(1, math.ceil(t / max_seq_len))


def eval_batches(
  videos: Sequence[Video], *, batch_size: int, max_seq_len: int
) -> Iterator[EvalBatch]:
  """Every video exactly once, grouped by padded length; the last batch of a group is padded."""
  groups: dict[int, list[Video]] = {}
  for video in videos:
    groups.setdefault(eval_length(len(video.feats), max_seq_len), []).append(video)
  for length in sorted(groups):
    group = groups[length]
    for i in range(0, len(group), batch_size):
      chunk: list[Video | None] = list(group[i : i + batch_size])
      dim = chunk[0].feats.shape[1]
      feats = np.zeros((batch_size, length, dim), np.float32)
      mask = np.zeros((batch_size, length), bool)
      for row, video in enumerate(chunk):
        feats[row, : len(video.feats)] = video.feats
        mask[row, : len(video.feats)] = True
      chunk += [None] * (batch_size - len(chunk))
      yield EvalBatch(feats, mask, chunk)
