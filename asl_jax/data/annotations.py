"""ActionFormer-format annotation JSON -> :class:`AnnotationSet`, validated at the boundary."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from asl_jax.data.records import AnnotationSet, VideoRecord

# Two annotations of one class whose both ends differ by at most this many seconds are one
# instance written twice (the reference's `remove_duplicate_annotations` uses the same tolerance).
DUPLICATE_TOL_SEC = 1e-3


def _read_json(path: str | os.PathLike) -> Any:
  """Reads a JSON file; the only place that touches storage, so it can become tf.io.gfile."""
  with open(path) as f:
    return json.load(f)


def _finite_number(value: Any, *, where: str, field: str) -> float:
  """Returns ``value`` as float, or raises naming ``where`` and ``field`` if it is not finite."""
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f'{where}: field {field!r} must be a number, got {value!r}')
  out = float(value)
  if not math.isfinite(out):
    raise ValueError(f'{where}: field {field!r} is not finite ({value!r})')
  return out


def _label_id(value: Any, *, where: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
    raise ValueError(f'{where}: field "label_id" must be an integer, got {value!r}')
  if value < 0:
    raise ValueError(f'{where}: field "label_id" must be >= 0, got {value!r}')
  return int(value)


class _LabelMap:
  """Collects (label name, label id) pairs and rejects a name or id that maps two ways."""

  def __init__(self, source: str):
    self._source = source
    self.id_to_name: dict[int, str] = {}
    self._name_to_id: dict[str, int] = {}

  def add(self, name: str | None, label_id: int, *, where: str) -> None:
    if name is None:
      return
    known_name = self.id_to_name.setdefault(label_id, name)
    if known_name != name:
      raise ValueError(
        f'{where}: field "label" {name!r} conflicts with label_id {label_id}, which earlier '
        f'annotations in {self._source} call {known_name!r}'
      )
    known_id = self._name_to_id.setdefault(name, label_id)
    if known_id != label_id:
      raise ValueError(
        f'{where}: field "label_id" {label_id} conflicts with label {name!r}, which earlier '
        f'annotations in {self._source} give id {known_id}'
      )


def _clean_segments(
  segments: list[tuple[float, float, int]], duration: float, skipped: dict[str, int]
) -> list[tuple[float, float, int]]:
  """Drops empty, late and duplicate segments and clips ends to the video, counting each case.

  Order matters: a segment is first checked for length, then against the duration, then clipped,
  and duplicates are judged on the clipped segments (the ones training will see).
  """

  def count(reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1

  kept: list[tuple[float, float, int]] = []
  for start, end, label in segments:
    if end <= start:
      count('zero_length_segment')
      continue
    if start >= duration:
      count('segment_after_end')
      continue
    if start < 0.0 or end > duration:
      count('segment_clipped')
      start, end = max(start, 0.0), min(end, duration)
    if any(
      label == k_label
      and abs(start - k_start) <= DUPLICATE_TOL_SEC
      and abs(end - k_end) <= DUPLICATE_TOL_SEC
      for k_start, k_end, k_label in kept
    ):
      count('duplicate_annotation')
      continue
    kept.append((start, end, label))
  return kept


def load_actionformer_json(
  path: str | os.PathLike,
  *,
  default_fps: float | None = None,
  num_classes: int | None = None,
) -> AnnotationSet:
  """Loads ``{"database": {vid: {subset, duration, fps, annotations: [...]}}}`` (ActionFormer).

  Each annotation is ``{"segment": [start_sec, end_sec], "label": name, "label_id": int}``
  (``label`` optional). ``default_fps`` overrides every video's ``fps`` (as the reference does);
  without it a video lacking ``fps`` is an error. Unlike the reference a missing ``duration`` is an
  error rather than 1e8 s, because a silent huge duration disables every clipping check.

  Segments are cleaned (see ``AnnotationSet.skipped`` for the counts): empty or reversed ones and
  ones starting at or after the video's end are dropped, ends past the duration (and starts
  before 0) are clipped, and repeated annotations (same class, both ends within 1e-3 s) are kept
  once. Non-finite numbers, conflicting label names/ids and ids beyond ``num_classes`` raise.

  Class names come from the (label, label_id) pairs; ids never seen (up to ``num_classes`` if
  given, else up to the largest id) are named ``class_<id>``.
  """
  source = os.fspath(path)
  if not os.path.exists(source):
    raise FileNotFoundError(f'annotation file {source} does not exist')
  data = _read_json(source)
  if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
    raise ValueError(
      f'{source}: expected a top-level object with a "database" mapping of video ids '
      '(ActionFormer format)'
    )
  if default_fps is not None and not (math.isfinite(default_fps) and default_fps > 0):
    raise ValueError(f'{source}: default_fps must be a positive number, got {default_fps!r}')
  if num_classes is not None and num_classes < 1:
    raise ValueError(f'{source}: num_classes must be >= 1, got {num_classes!r}')

  labels = _LabelMap(source)
  skipped: dict[str, int] = {}
  videos: list[VideoRecord] = []
  for video_id, entry in data['database'].items():
    where = f'{source}: video {video_id!r}'
    if not isinstance(entry, dict):
      raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    for field in ('subset', 'duration'):
      if field not in entry:
        raise ValueError(f'{where}: missing field {field!r}')
    subset = entry['subset']
    if not isinstance(subset, str):
      raise ValueError(f'{where}: field "subset" must be a string, got {subset!r}')
    duration = _finite_number(entry['duration'], where=where, field='duration')
    if duration <= 0:
      raise ValueError(f'{where}: field "duration" must be positive, got {duration}')
    if default_fps is not None:
      fps = float(default_fps)
    elif 'fps' in entry:
      fps = _finite_number(entry['fps'], where=where, field='fps')
      if fps <= 0:
        raise ValueError(f'{where}: field "fps" must be positive, got {fps}')
    else:
      raise ValueError(f'{where}: missing field "fps" and no default_fps was given')

    annotations = entry.get('annotations', [])
    if not isinstance(annotations, list):
      raise ValueError(f'{where}: field "annotations" must be a list')
    raw: list[tuple[float, float, int]] = []
    for i, ann in enumerate(annotations):
      at = f'{where} annotation {i}'
      if not isinstance(ann, dict) or 'segment' not in ann or 'label_id' not in ann:
        raise ValueError(f'{at}: expected an object with "segment" and "label_id"')
      segment = ann['segment']
      if not isinstance(segment, list | tuple) or len(segment) != 2:
        raise ValueError(f'{at}: field "segment" must be [start, end], got {segment!r}')
      start = _finite_number(segment[0], where=at, field='segment')
      end = _finite_number(segment[1], where=at, field='segment')
      label_id = _label_id(ann['label_id'], where=at)
      if num_classes is not None and label_id >= num_classes:
        raise ValueError(f'{at}: field "label_id" {label_id} is >= num_classes={num_classes}')
      name = ann.get('label')
      if name is not None and not isinstance(name, str):
        raise ValueError(f'{at}: field "label" must be a string, got {name!r}')
      labels.add(name, label_id, where=at)
      raw.append((start, end, label_id))

    kept = _clean_segments(raw, duration, skipped)
    videos.append(
      VideoRecord(
        video_id=str(video_id),
        subset=subset,
        duration=duration,
        fps=fps,
        segments_sec=np.array([(s, e) for s, e, _ in kept], np.float64).reshape(-1, 2),
        labels=np.array([k for _, _, k in kept], np.int32),
      )
    )

  if num_classes is None:
    seen_ids = [int(k) for v in videos for k in v.labels] + list(labels.id_to_name)
    num_classes = max(seen_ids, default=-1) + 1
  class_names = [labels.id_to_name.get(k, f'class_{k}') for k in range(num_classes)]
  return AnnotationSet(source=source, videos=videos, class_names=class_names, skipped=skipped)
