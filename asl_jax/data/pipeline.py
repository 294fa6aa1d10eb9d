"""Numpy input pipeline: videos in memory -> padded, masked training and evaluation batches.

Training follows the reference: each epoch visits the videos in a seeded random order (last
partial batch dropped), crops long videos (and, with ``crop_ratio``, short ones) to a random
window that keeps at least one action, and right-pads features to ``max_seq_len``. Evaluation
visits every video exactly once without cropping. Everything is a pure function of
``(seed, epoch, video)``, so a resumed run sees the same data as an uninterrupted one.

Loading from a config (:func:`annotations_from_config`, :func:`load_split_from_config`,
:func:`make_video`) is also what the TFDS builder and the validator use, so shards hold exactly
what file-based loading produces.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from asl_jax.data import annotations as annotations_lib
from asl_jax.data import features as features_lib
from asl_jax.data import storage
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


def geometry_from_config(data_config) -> dict[str, Any]:
  """The :func:`make_video` geometry keywords of a ``config.data`` section."""
  return dict(
    feat_stride=float(data_config.feat_stride),
    num_frames=float(data_config.num_frames),
    downsample_rate=int(data_config.downsample_rate),
    force_upsampling=bool(data_config.force_upsampling),
    max_seq_len=int(data_config.max_seq_len) if data_config.max_seq_len else None,
  )


def make_video(
  record: VideoRecord,
  feats: np.ndarray,
  *,
  feat_stride: float,
  num_frames: float,
  downsample_rate: int = 1,
  force_upsampling: bool = False,
  max_seq_len: int | None = None,
) -> Video:
  """One video as the model sees it: raw ``[T, C]`` features through the geometry, GT in grid units.

  The single place that turns a record and its features into a :class:`Video`, so the file-based
  pipeline, the TFDS builder and the validator cannot disagree.
  """
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
  return Video(record, feats, geometry, segments, record.labels.astype(np.int32))


def iter_videos(
  records: Iterable[VideoRecord], reader: FeatureReader, **geometry: Any
) -> Iterator[Video]:
  """:func:`make_video` of each record with its features from ``reader``, one at a time (so a
  dataset larger than memory can be streamed into shards)."""
  for record in records:
    yield make_video(record, reader.load(record.video_id), **geometry)


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
  reader: FeatureReader | None = None,
  downsample_rate: int = 1,
  force_upsampling: bool = False,
  max_seq_len: int | None = None,
) -> list[Video]:
  """Reads the features of every video of ``subsets`` and converts its segments to grid units.

  ``reader`` (a ``feature_formats.FeatureReader``) reads several feature sets, HDF5 or ``.pt``;
  without it one folder of ``.npy``/``.npz`` files is read. The per-video geometry (downsampling,
  fixed-length resizing, unknown fps) follows ``feature_geometry.adapt_features``.
  """
  geometry = dict(
    feat_stride=feat_stride,
    num_frames=num_frames,
    downsample_rate=downsample_rate,
    force_upsampling=force_upsampling,
    max_seq_len=max_seq_len,
  )
  records = annotations.subset(subsets)
  if reader is not None:
    return list(iter_videos(records, reader, **geometry))
  videos = []
  for record in records:
    path = features_lib.feature_path(
      feature_dir, record.video_id, prefix=feature_prefix, ext=feature_ext
    )
    feats = features_lib.load_features(path, expected_dim=input_dim, video_id=record.video_id)
    videos.append(make_video(record, feats, **geometry))
  return videos


_LOADERS = {
  'database': annotations_lib.load_actionformer_json,
  'flat': annotations_lib.load_flat_json,
  'superevents': annotations_lib.load_superevents_json,
  'bsn': annotations_lib.load_bsn_json,
}


def annotation_schema(annotation_file: str, data: Any, annotation_format: str = 'auto') -> str:
  """The schema of the parsed file ``data`` (:func:`annotations.detect_schema`); raises when
  ``annotation_format`` (a config's ``data.annotation_format``) names another one."""
  schema = annotations_lib.detect_schema(data)
  wanted = {'actionformer': 'database'}.get(annotation_format, annotation_format)
  if wanted != 'auto' and wanted != schema:
    raise ValueError(
      f'{annotation_file}: data.annotation_format={annotation_format!r} but the file is '
      f'{schema!r}-format'
    )
  return schema


def _write_without(
  data: Any, schema: str, exclude: set[str], folder: str, video_info_csv: str
) -> tuple[str, str]:
  """Copies of the annotation file (and BSN's video_info.csv) without the ``exclude`` videos.

  The loaders refuse some bad videos outright, so the ones the validator flagged must be gone
  from the files before loading, whatever the schema.
  """
  if schema == 'database' and isinstance(data['database'], dict):
    data = dict(data, database={k: v for k, v in data['database'].items() if k not in exclude})
  elif isinstance(data, dict) and schema != 'database':
    data = {k: v for k, v in data.items() if k not in exclude}
  path = os.path.join(folder, 'annotations.json')
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f)
  if schema == 'bsn' and video_info_csv:
    with open(video_info_csv, newline='', encoding='utf-8') as f:
      rows = list(csv.reader(f))
    column = rows[0].index('video') if rows and 'video' in rows[0] else None
    if column is not None:
      rows = rows[:1] + [r for r in rows[1:] if len(r) <= column or r[column] not in exclude]
    video_info_csv = os.path.join(folder, 'video_info.csv')
    with open(video_info_csv, 'w', newline='', encoding='utf-8') as f:
      csv.writer(f).writerows(rows)
  return path, video_info_csv


def load_annotation_files(
  annotation_file: str,
  *,
  num_classes: int,
  annotation_format: str = 'auto',
  video_info_csv: str = '',
  class_names_file: str = '',
  default_fps: float | None = None,
  label_offset: int = 0,
  exclude: Collection[str] = (),
) -> AnnotationSet:
  """Loads an annotation file of any schema with the options that schema takes.

  Every schema takes ``default_fps`` (replaces the files' fps). BSN files take ``video_info_csv``
  and ``class_names_file`` (``action_name.csv``) and are class-agnostic when ``num_classes == 1``;
  the others take ``num_classes``, ``class_names_file`` and (flat and super-events)
  ``label_offset``. Paths may be URLs (read
  through tf.io.gfile). ``exclude`` names videos left out before loading (``build_dataset
  --skip_bad``); errors and ``source`` still name the files given.
  """
  renames: list[tuple[str, str]] = []  # (temporary copy, path given): for messages and source.
  with contextlib.ExitStack() as stack:

    def local(given: str) -> str:
      copy = stack.enter_context(storage.local_copy(given)) if given else ''
      if copy != given:
        renames.append((copy, given))
      return copy

    try:
      path, info_csv, names_file = map(local, (annotation_file, video_info_csv, class_names_file))
      data = annotations_lib.read_json(path)
      schema = annotation_schema(annotation_file, data, annotation_format)
      if exclude:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix='asl_jax_annotations_'))
        path, filtered_csv = _write_without(data, schema, set(exclude), folder, info_csv)
        renames.append((path, annotation_file))
        if filtered_csv != info_csv:
          renames.append((filtered_csv, video_info_csv))
          info_csv = filtered_csv
      if schema == 'bsn':
        if not info_csv:
          raise ValueError(
            f'{path}: BSN-format annotations need video_info_csv (the subsets and fps)'
          )
        options: dict[str, Any] = dict(
          video_info_csv=info_csv,
          action_names_csv=names_file or None,
          class_agnostic=num_classes == 1,
          default_fps=default_fps,
        )
      else:
        class_names = annotations_lib.read_class_names(names_file) if names_file else None
        options = dict(default_fps=default_fps, num_classes=num_classes, class_names=class_names)
        if schema != 'database':
          options['label_offset'] = label_offset
      # The loader of the schema detected above: a copy without some videos may look like
      # another one (an empty object is a flat file).
      loader = _LOADERS[schema]
      annotations = loader(path, **{k: v for k, v in options.items() if v is not None})
    except ValueError as e:
      if not renames:
        raise
      raise ValueError(_renamed(str(e), renames)) from e
  annotations.source = _renamed(annotations.source, renames)
  return annotations


def _renamed(text: str, renames: list[tuple[str, str]]) -> str:
  """``text`` with temporary file paths replaced by the paths the caller gave."""
  for temporary, original in renames:
    text = text.replace(temporary, original)
  return text


def annotations_from_config(data_config, *, exclude: Collection[str] = ()) -> AnnotationSet:
  """Loads ``data.annotation_file`` with the options its schema takes (schema detected)."""
  return load_annotation_files(
    data_config.annotation_file,
    num_classes=data_config.num_classes,
    annotation_format=data_config.annotation_format,
    video_info_csv=data_config.video_info_csv,
    class_names_file=data_config.class_names_file,
    default_fps=data_config.default_fps if data_config.default_fps > 0 else None,
    label_offset=data_config.label_offset,
    exclude=exclude,
  )


def load_split_from_config(
  data_config, subsets: Sequence[str]
) -> tuple[list[Video], AnnotationSet]:
  """:func:`load_videos` with the arguments taken from a ``config.data`` section.

  Features are read by ``FeatureReader.from_config`` (every format, several sets, URLs).
  """
  annotations = annotations_from_config(data_config)
  with FeatureReader.from_config(data_config) as reader:
    videos = list(
      iter_videos(annotations.subset(subsets), reader, **geometry_from_config(data_config))
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
