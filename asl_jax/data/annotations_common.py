"""What every annotation loader shares: file reading, field checks, label maps, segment cleaning."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from asl_jax.data.records import AnnotationSet, VideoRecord


def case_collisions(video_ids: Sequence[str]) -> list[tuple[str, ...]]:
  """Groups of distinct video ids that differ only in letter case, in first-seen order.

  On a case-insensitive file system (macOS, Windows) they read one feature file, and a pair split
  over training and evaluation leaks; the validator reports them and training warns.
  """
  groups: dict[str, list[str]] = {}
  for video_id in dict.fromkeys(video_ids):
    groups.setdefault(video_id.casefold(), []).append(video_id)
  return [tuple(g) for g in groups.values() if len(g) > 1]


# Two annotations of one class whose both ends differ by at most this many seconds are one
# instance written twice (the reference's `remove_duplicate_annotations` uses the same tolerance).
DUPLICATE_TOL_SEC = 1e-3

# The fps of a video whose file gives none (flat files write -1, super-event and ActivityNet files
# have no field). The reference's MultiThumos/Charades loaders then use the features' own rate,
# fps = T_feat / duration, which only the feature file can tell: whoever converts a record with
# this fps between seconds and grid units must first resolve it from the feature length, as
# data/pipeline.py and the TFDS builder do (fps = T * feat_stride / duration).
UNKNOWN_FPS = -1.0

# What loading does to the segments of a file, by use:
#   'full'       training data (the default): drops empty/reversed segments and those starting at
#                or after the video's end, clips the others to [0, duration], removes duplicates.
#   'duplicates' ASL's evaluator ground truth (ANETdetection): removes duplicates only.
#   'none'       ActivityNet's official evaluator: every segment as written.
# In the last two, reversed segments (end < start) are still dropped, as 'inverted_segment'.
Cleaning = Literal['full', 'duplicates', 'none']
_CLEANINGS = ('full', 'duplicates', 'none')


def read_json(path: str) -> Any:
  """Reads a JSON file; the only place that touches storage, so it can become tf.io.gfile."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'annotation file {path} does not exist')
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f'{path}: not a valid JSON file ({e})') from None


def finite_number(value: Any, *, where: str, field: str) -> float:
  """Returns ``value`` as float, or raises naming ``where`` and ``field`` if it is not finite."""
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f'{where}: field {field!r} must be a number, got {value!r}')
  out = float(value)
  if not math.isfinite(out):
    raise ValueError(f'{where}: field {field!r} is not finite ({value!r})')
  return out


def read_segment(value: Any, *, where: str) -> tuple[float, float]:
  """``[start, end]`` as two finite floats, or raises naming ``where``."""
  if not isinstance(value, list | tuple) or len(value) != 2:
    raise ValueError(f'{where}: field "segment" must be [start, end], got {value!r}')
  start = finite_number(value[0], where=where, field='segment')
  return start, finite_number(value[1], where=where, field='segment')


def video_header(entry: Any, *, where: str) -> tuple[str, float]:
  """The ``subset`` and positive ``duration`` every schema but BSN writes in each video."""
  if not isinstance(entry, dict):
    raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
  for field in ('subset', 'duration'):
    if field not in entry:
      raise ValueError(f'{where}: missing field {field!r}')
  subset = entry['subset']
  if not isinstance(subset, str):
    raise ValueError(f'{where}: field "subset" must be a string, got {subset!r}')
  duration = finite_number(entry['duration'], where=where, field='duration')
  if duration <= 0:
    raise ValueError(f'{where}: field "duration" must be positive, got {duration}')
  return subset, duration


def video_fps(entry: dict, *, where: str, default_fps: float | None, unknown_ok: bool) -> float:
  """``default_fps`` if given (it overrides the file, as in the reference), else the file's fps.

  With ``unknown_ok`` a missing, null or -1 fps becomes :data:`UNKNOWN_FPS`; otherwise it raises.
  """
  if default_fps is not None:
    return float(default_fps)
  value = entry.get('fps')
  if unknown_ok and (value is None or (not isinstance(value, bool) and value == UNKNOWN_FPS)):
    return UNKNOWN_FPS
  if 'fps' not in entry:
    raise ValueError(f'{where}: missing field "fps" and no default_fps was given')
  fps = finite_number(value, where=where, field='fps')
  if fps <= 0:
    raise ValueError(f'{where}: field "fps" must be positive, got {fps}')
  return fps


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


class IdLabels:
  """Labels written as integer ids (ActionFormer, flat, super-events), names optional."""

  def __init__(
    self,
    source: str,
    *,
    num_classes: int | None,
    class_names: Sequence[str] | None,
    label_offset: int = 0,
  ):
    self._map = _LabelMap(source)
    self._offset = label_offset
    if class_names is not None:
      if num_classes is not None and num_classes != len(class_names):
        raise ValueError(
          f'{source}: num_classes={num_classes} but {len(class_names)} class_names were given'
        )
      num_classes = len(class_names)
      for k, name in enumerate(class_names):
        self._map.add(name, k, where=f'{source}: class_names[{k}]')
    self.num_classes = num_classes

  def id_of(self, value: Any, *, where: str, field: str = 'label_id') -> int:
    """``value + label_offset``, checked to be an integer in [0, num_classes)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
      raise ValueError(f'{where}: field "{field}" must be an integer, got {value!r}')
    label_id = int(value) + self._offset
    if label_id < 0:
      offset = f' (= {int(value)} + label_offset {self._offset})' if self._offset else ''
      raise ValueError(f'{where}: field "{field}" must be >= 0{offset}, got {label_id!r}')
    if self.num_classes is not None and label_id >= self.num_classes:
      raise ValueError(f'{where}: field "{field}" {label_id} is >= num_classes={self.num_classes}')
    return label_id

  def __call__(self, ann: dict, *, where: str) -> int:
    label_id = self.id_of(ann['label_id'], where=where)
    name = ann.get('label')
    if name is not None and not isinstance(name, str):
      raise ValueError(f'{where}: field "label" must be a string, got {name!r}')
    self._map.add(name, label_id, where=where)
    return label_id

  def class_names(self, kept_ids: Sequence[int]) -> list[str]:
    """Names of ids 0..num_classes-1 (default: the largest id seen); unnamed ones class_<id>."""
    num_classes = self.num_classes
    if num_classes is None:
      num_classes = max([*kept_ids, *self._map.id_to_name], default=-1) + 1
    return [self._map.id_to_name.get(k, f'class_{k}') for k in range(num_classes)]


class NameLabels:
  """Labels written as class names only (ActivityNet, BSN): ids index a fixed list of names.

  Class-agnostic loading still checks each name against the list, then labels it 0.
  """

  def __init__(self, source: str, names: Sequence[str], *, class_agnostic: bool = False):
    if len(set(names)) != len(names):
      raise ValueError(f'{source}: the class names contain duplicates')
    self._source = source
    self._names = list(names)
    self._index = {name: k for k, name in enumerate(names)}
    self._class_agnostic = class_agnostic

  def __call__(self, ann: dict, *, where: str) -> int:
    name = ann['label']
    if not isinstance(name, str):
      raise ValueError(f'{where}: field "label" must be a string, got {name!r}')
    if name not in self._index:
      raise ValueError(
        f'{where}: field "label" {name!r} is not one of the {len(self._names)} class names given'
      )
    return 0 if self._class_agnostic else self._index[name]

  def class_names(self, kept_ids: Sequence[int]) -> list[str]:
    del kept_ids  # The names are fixed up front.
    return ['action'] if self._class_agnostic else list(self._names)


@dataclasses.dataclass
class RawVideo:
  """One video as read, before its segments are cleaned."""

  video_id: str
  subset: str
  duration: float
  fps: float
  segments: list[tuple[float, float, int]]  # (start, end, label id), file order.


def _clean_segments(
  segments: list[tuple[float, float, int]],
  duration: float,
  skipped: dict[str, int],
  cleaning: Cleaning = 'full',
) -> list[tuple[float, float, int]]:
  """Drops empty, late and duplicate segments and clips ends to the video, counting each case.

  Order matters: a segment is first checked for length, then against the duration, then clipped,
  and duplicates are judged on the clipped segments (the ones training will see). ``cleaning``
  (see :data:`Cleaning`) turns the steps after the length check off for evaluation ground truth.
  """

  def count(reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1

  kept: list[tuple[float, float, int]] = []
  for start, end, label in segments:
    if cleaning == 'full':
      if end <= start:
        count('zero_length_segment')
        continue
      if start >= duration:
        count('segment_after_end')
        continue
      if start < 0.0 or end > duration:
        count('segment_clipped')
        start, end = max(start, 0.0), min(end, duration)
    elif end < start:
      count('inverted_segment')
      continue
    if cleaning != 'none' and any(
      label == k_label
      and abs(start - k_start) <= DUPLICATE_TOL_SEC
      and abs(end - k_end) <= DUPLICATE_TOL_SEC
      for k_start, k_end, k_label in kept
    ):
      count('duplicate_annotation')
      continue
    kept.append((start, end, label))
  return kept


def build_annotation_set(
  source: str,
  raw_videos: list[RawVideo],
  labels: IdLabels | NameLabels,
  *,
  cleaning: Cleaning,
  skipped: dict[str, int] | None = None,
) -> AnnotationSet:
  """Cleans every video's segments and assembles the records and the label map."""
  skipped = {} if skipped is None else skipped
  videos = []
  for raw in raw_videos:
    kept = _clean_segments(raw.segments, raw.duration, skipped, cleaning)
    videos.append(
      VideoRecord(
        video_id=raw.video_id,
        subset=raw.subset,
        duration=raw.duration,
        fps=raw.fps,
        segments_sec=np.array([(s, e) for s, e, _ in kept], np.float64).reshape(-1, 2),
        labels=np.array([k for _, _, k in kept], np.int32),
      )
    )
  kept_ids = sorted({int(k) for v in videos for k in v.labels})
  class_names = labels.class_names(kept_ids)
  return AnnotationSet(source=source, videos=videos, class_names=class_names, skipped=skipped)


def check_options(
  source: str,
  *,
  default_fps: float | None = None,
  num_classes: int | None = None,
  cleaning: str = 'full',
) -> None:
  """Raises if a loader option is out of range, naming the file ``source``."""
  if default_fps is not None and not (math.isfinite(default_fps) and default_fps > 0):
    raise ValueError(f'{source}: default_fps must be a positive number, got {default_fps!r}')
  if num_classes is not None and num_classes < 1:
    raise ValueError(f'{source}: num_classes must be >= 1, got {num_classes!r}')
  if cleaning not in _CLEANINGS:
    raise ValueError(f'{source}: cleaning must be one of {_CLEANINGS}, got {cleaning!r}')


def all_annotations(videos: dict) -> list[dict]:
  """Every well-formed annotation object of ``{vid: {annotations: [...]}}``, for pre-scans."""
  out = []
  for entry in videos.values():
    anns = entry.get('annotations') if isinstance(entry, dict) else None
    if isinstance(anns, list):
      out.extend(a for a in anns if isinstance(a, dict))
  return out


def file_class_names(videos: dict) -> list[str]:
  """Sorted class names written in the file: the label map of name-labelled files."""
  return sorted({a['label'] for a in all_annotations(videos) if isinstance(a.get('label'), str)})
