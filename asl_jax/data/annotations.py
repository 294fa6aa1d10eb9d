"""Annotation files of every supported schema -> :class:`AnnotationSet`, validated on load."""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from asl_jax.data.records import AnnotationSet, VideoRecord

# Two annotations of one class whose both ends differ by at most this many seconds are one
# instance written twice (the reference's `remove_duplicate_annotations` uses the same tolerance).
DUPLICATE_TOL_SEC = 1e-3

# The fps of a video whose file gives none (flat files write -1, super-event and ActivityNet files
# have no field). The reference's MultiThumos/Charades loaders then use the features' own rate,
# fps = T_feat / duration, which only the feature file can tell: whoever converts a record with
# this fps between seconds and grid units must first resolve it from the feature length. The data
# pipeline (data/pipeline.py) does not do that yet; give `default_fps` when the rate is known.
UNKNOWN_FPS = -1.0

# What loading does to the segments of a file, by use:
#   'full'       training data (the default): drops empty/reversed segments and those starting at
#                or after the video's end, clips the others to [0, duration], removes duplicates.
#   'duplicates' ASL's evaluator ground truth (ANETdetection): removes duplicates only.
#   'none'       ActivityNet's official evaluator: every segment as written.
# In the last two, reversed segments (end < start) are still dropped, as 'inverted_segment'.
Cleaning = Literal['full', 'duplicates', 'none']
_CLEANINGS = ('full', 'duplicates', 'none')


def _read_json(path: str) -> Any:
  """Reads a JSON file; the only place that touches storage, so it can become tf.io.gfile."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'annotation file {path} does not exist')
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f'{path}: not a valid JSON file ({e})') from None


def _finite_number(value: Any, *, where: str, field: str) -> float:
  """Returns ``value`` as float, or raises naming ``where`` and ``field`` if it is not finite."""
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f'{where}: field {field!r} must be a number, got {value!r}')
  out = float(value)
  if not math.isfinite(out):
    raise ValueError(f'{where}: field {field!r} is not finite ({value!r})')
  return out


def _segment(value: Any, *, where: str) -> tuple[float, float]:
  if not isinstance(value, list | tuple) or len(value) != 2:
    raise ValueError(f'{where}: field "segment" must be [start, end], got {value!r}')
  start = _finite_number(value[0], where=where, field='segment')
  return start, _finite_number(value[1], where=where, field='segment')


def _video_header(entry: Any, *, where: str) -> tuple[str, float]:
  """The ``subset`` and positive ``duration`` every schema but BSN writes in each video."""
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
  return subset, duration


def _video_fps(entry: dict, *, where: str, default_fps: float | None, unknown_ok: bool) -> float:
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
  fps = _finite_number(value, where=where, field='fps')
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


class _IdLabels:
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


class _NameLabels:
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
class _RawVideo:
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


def _finish(
  source: str,
  raw_videos: list[_RawVideo],
  labels: _IdLabels | _NameLabels,
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


def _check_options(
  source: str,
  *,
  default_fps: float | None = None,
  num_classes: int | None = None,
  cleaning: str = 'full',
) -> None:
  if default_fps is not None and not (math.isfinite(default_fps) and default_fps > 0):
    raise ValueError(f'{source}: default_fps must be a positive number, got {default_fps!r}')
  if num_classes is not None and num_classes < 1:
    raise ValueError(f'{source}: num_classes must be >= 1, got {num_classes!r}')
  if cleaning not in _CLEANINGS:
    raise ValueError(f'{source}: cleaning must be one of {_CLEANINGS}, got {cleaning!r}')


def _all_annotations(videos: dict) -> list[dict]:
  """Every well-formed annotation object of ``{vid: {annotations: [...]}}``, for pre-scans."""
  out = []
  for entry in videos.values():
    anns = entry.get('annotations') if isinstance(entry, dict) else None
    if isinstance(anns, list):
      out.extend(a for a in anns if isinstance(a, dict))
  return out


def _file_names(videos: dict) -> list[str]:
  """Sorted class names written in the file: the label map of name-labelled files."""
  return sorted({a['label'] for a in _all_annotations(videos) if isinstance(a.get('label'), str)})


def _from_entries(
  source: str,
  entries: dict,
  *,
  default_fps: float | None,
  num_classes: int | None,
  class_names: Sequence[str] | None,
  label_offset: int,
  cleaning: Cleaning,
  fps_may_be_unknown: bool,
) -> AnnotationSet:
  """``{vid: {subset, duration, fps, annotations: [{segment, label_id | label}]}}`` -> records.

  Files with annotations but no ``label_id`` anywhere (ActivityNet's official file) are labelled
  by name: ids index ``class_names`` or, without it, the sorted names of the file, and their fps
  may be unknown.
  """
  _check_options(source, default_fps=default_fps, num_classes=num_classes, cleaning=cleaning)
  every_annotation = _all_annotations(entries)
  by_name = bool(every_annotation) and not any('label_id' in a for a in every_annotation)
  if by_name:
    names = list(class_names) if class_names is not None else _file_names(entries)
    if num_classes is not None and num_classes < len(names):
      raise ValueError(f'{source}: {len(names)} class names but num_classes={num_classes}')
    names += [f'class_{k}' for k in range(len(names), num_classes or 0)]
    labels: _IdLabels | _NameLabels = _NameLabels(source, names)
  else:
    labels = _IdLabels(
      source, num_classes=num_classes, class_names=class_names, label_offset=label_offset
    )
  label_field = 'label' if by_name else 'label_id'
  # A file is name-labelled because no annotation has a label_id: say so in the error.
  expected = '"segment" and "label_id"'
  if by_name:
    expected += ' (or, in a file without any label_id, "label")'

  raw_videos = []
  for video_id, entry in entries.items():
    where = f'{source}: video {video_id!r}'
    subset, duration = _video_header(entry, where=where)
    fps = _video_fps(
      entry, where=where, default_fps=default_fps, unknown_ok=fps_may_be_unknown or by_name
    )
    annotations = entry.get('annotations', [])
    if not isinstance(annotations, list):
      raise ValueError(f'{where}: field "annotations" must be a list')
    segments = []
    for i, ann in enumerate(annotations):
      at = f'{where} annotation {i}'
      if not isinstance(ann, dict) or 'segment' not in ann or label_field not in ann:
        raise ValueError(f'{at}: expected an object with {expected}')
      start, end = _segment(ann['segment'], where=at)
      segments.append((start, end, labels(ann, where=at)))
    raw_videos.append(_RawVideo(str(video_id), subset, duration, fps, segments))
  return _finish(source, raw_videos, labels, cleaning=cleaning)


def load_actionformer_json(
  path: str | os.PathLike,
  *,
  default_fps: float | None = None,
  num_classes: int | None = None,
  class_names: Sequence[str] | None = None,
  cleaning: Cleaning = 'full',
) -> AnnotationSet:
  """Loads ``{"database": {vid: {subset, duration, fps, annotations: [...]}}}`` (ActionFormer).

  Each annotation is ``{"segment": [start_sec, end_sec], "label": name, "label_id": int}``
  (``label`` optional). ``default_fps`` overrides every video's ``fps`` (as the reference does);
  without it a video lacking ``fps`` is an error. Unlike the reference a missing ``duration`` is an
  error rather than 1e8 s, because a silent huge duration disables every clipping check.

  ActivityNet's official file (``database/<vid>/{subset, duration, annotations: [{segment,
  label}]}``: no ``label_id``, no ``fps``) is read too: ids index ``class_names`` if given, else
  the sorted label names, and fps is :data:`UNKNOWN_FPS` unless ``default_fps`` is given.

  Segments are cleaned as ``cleaning`` says (see :data:`Cleaning` and ``AnnotationSet.skipped``
  for the counts): by default empty or reversed ones and ones starting at or after the video's end
  are dropped, ends past the duration (and starts before 0) are clipped, and repeated annotations
  (same class, both ends within 1e-3 s) are kept once. Non-finite numbers, conflicting label
  names/ids and ids beyond ``num_classes`` raise.

  Class names come from ``class_names`` (index = label id) and the (label, label_id) pairs; ids
  never named (up to ``num_classes`` if given, else up to the largest id) are named ``class_<id>``.
  """
  source = os.fspath(path)
  data = _read_json(source)
  if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
    raise ValueError(
      f'{source}: expected a top-level object with a "database" mapping of video ids '
      '(ActionFormer format)'
    )
  return _from_entries(
    source,
    data['database'],
    default_fps=default_fps,
    num_classes=num_classes,
    class_names=class_names,
    label_offset=0,
    cleaning=cleaning,
    fps_may_be_unknown=False,
  )


def load_flat_json(
  path: str | os.PathLike,
  *,
  num_classes: int | None = None,
  default_fps: float | None = None,
  label_offset: int = 0,
  class_names: Sequence[str] | None = None,
  cleaning: Cleaning = 'full',
) -> AnnotationSet:
  """Loads ASL's flat files (Ego4D, MultiThumos, Charades): ActionFormer's videos, no "database".

  ``{vid: {subset, duration, fps, annotations: [{segment, label_id[, label]}]}}``; extra fields
  (Ego4D's ``parent_start_sec``...) are ignored. ``label_id + label_offset`` is the label. An fps of
  -1 (the converters write it for MultiThumos/Charades) or none means the features' own rate:
  records carry :data:`UNKNOWN_FPS`, to be resolved from the feature length (T / duration) before
  any seconds <-> grid conversion, unless ``default_fps`` is given. Otherwise as
  :func:`load_actionformer_json`.
  """
  source = os.fspath(path)
  data = _read_json(source)
  if not isinstance(data, dict):
    raise ValueError(f'{source}: expected a top-level object mapping video ids to videos')
  return _from_entries(
    source,
    data,
    default_fps=default_fps,
    num_classes=num_classes,
    class_names=class_names,
    label_offset=label_offset,
    cleaning=cleaning,
    fps_may_be_unknown=True,
  )


def load_superevents_json(
  path: str | os.PathLike,
  *,
  num_classes: int | None = None,
  label_offset: int = 0,
  default_fps: float | None = None,
  class_names: Sequence[str] | None = None,
  cleaning: Cleaning = 'full',
) -> AnnotationSet:
  """Loads super-event files (MLAD/PointTAD): ``{vid: {subset, duration, actions: [[c, s, e]]}}``.

  The label is ``c + label_offset``: -1 for MultiThumos (classes 1..65), 0 for Charades (0..156),
  as ASL's converter does. The files carry no names (classes are ``class_<id>`` unless
  ``class_names`` is given) and no fps (:data:`UNKNOWN_FPS` unless ``default_fps``).

  Videos without actions are kept with zero segments (evaluation needs them; a training pipeline
  drops them, as the reference's Charades loader does), and counted in ``skipped`` under
  'video_without_actions' for information only: that count is of videos, nothing is removed.
  """
  source = os.fspath(path)
  data = _read_json(source)
  _check_options(source, default_fps=default_fps, num_classes=num_classes, cleaning=cleaning)
  if not isinstance(data, dict):
    raise ValueError(f'{source}: expected a top-level object mapping video ids to videos')
  labels = _IdLabels(
    source, num_classes=num_classes, class_names=class_names, label_offset=label_offset
  )
  fps = UNKNOWN_FPS if default_fps is None else float(default_fps)
  skipped: dict[str, int] = {}
  raw_videos = []
  for video_id, entry in data.items():
    where = f'{source}: video {video_id!r}'
    subset, duration = _video_header(entry, where=where)
    actions = entry.get('actions')
    if not isinstance(actions, list):
      raise ValueError(f'{where}: field "actions" must be a list of [class, start, end]')
    if not actions:
      skipped['video_without_actions'] = skipped.get('video_without_actions', 0) + 1
    segments = []
    for i, action in enumerate(actions):
      at = f'{where} action {i}'
      if not isinstance(action, list | tuple) or len(action) != 3:
        raise ValueError(
          f'{at}: field "actions" entries must be [class, start, end], got {action!r}'
        )
      label = labels.id_of(action[0], where=at, field='class')
      start = _finite_number(action[1], where=at, field='start')
      segments.append((start, _finite_number(action[2], where=at, field='end'), label))
    raw_videos.append(_RawVideo(str(video_id), subset, duration, fps, segments))
  return _finish(source, raw_videos, labels, cleaning=cleaning, skipped=skipped)


def read_class_names(path: str | os.PathLike) -> list[str]:
  """Class names, one per line after a header line (BSN's action_name.csv); index = label id."""
  source = os.fspath(path)
  if not os.path.exists(source):
    raise FileNotFoundError(f'class name file {source} does not exist')
  with open(source, newline='', encoding='utf-8') as f:
    rows = [(n, row) for n, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
  for n, row in rows:
    if len(row) != 1:
      raise ValueError(f'{source}: line {n}: expected one class name, got {len(row)} columns')
  names = [row[0].strip() for _, row in rows[1:]]
  if not names:
    raise ValueError(f'{source}: no class names after the header line')
  return names


@dataclasses.dataclass(frozen=True)
class _VideoInfo:
  """The columns of BSN's video_info.csv a record needs."""

  subset: str
  seconds: float
  fps: float


def _read_video_info(path: str | os.PathLike) -> dict[str, _VideoInfo]:
  """BSN's video_info.csv (``video,numFrame,seconds,fps,rfps,subset,featureFrame``), file order."""
  source = os.fspath(path)
  if not os.path.exists(source):
    raise FileNotFoundError(f'video info file {source} does not exist')
  with open(source, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    missing = {'video', 'seconds', 'fps', 'subset'} - set(reader.fieldnames or ())
    if missing:
      raise ValueError(f'{source}: missing column(s) {sorted(missing)}')
    info: dict[str, _VideoInfo] = {}
    for n, row in enumerate(reader, start=2):
      video_id = (row['video'] or '').strip()
      where = f'{source}: line {n} (video {video_id!r})'
      if not video_id or video_id in info:
        raise ValueError(f'{where}: field "video" is empty or repeated')
      numbers = {}
      for field in ('seconds', 'fps'):
        try:
          numbers[field] = float(row[field])
        except (TypeError, ValueError):
          raise ValueError(
            f'{where}: field {field!r} must be a number, got {row[field]!r}'
          ) from None
        if not (math.isfinite(numbers[field]) and numbers[field] > 0):
          raise ValueError(f'{where}: field {field!r} must be positive, got {row[field]!r}')
      info[video_id] = _VideoInfo((row['subset'] or '').strip(), numbers['seconds'], numbers['fps'])
  return info


def load_bsn_json(
  path: str | os.PathLike,
  *,
  video_info_csv: str | os.PathLike,
  action_names_csv: str | os.PathLike | None = None,
  class_names: Sequence[str] | None = None,
  class_agnostic: bool = False,
  cleaning: Cleaning = 'full',
) -> AnnotationSet:
  """Loads BSN's ActivityNet files: ``{v_<id>: {duration_second, annotations: [...]}}`` + CSV.

  The JSON has no subsets: they, the fps and the video list come from ``video_info_csv``; videos
  of the CSV absent from the JSON or without annotations (the testing subset) are kept with zero
  segments; a JSON video without a CSV row raises. Annotations are ``{segment, label}``; label ids
  index ``action_names_csv`` (:func:`read_class_names`) or ``class_names`` if given, else the
  sorted label names. ``class_agnostic`` labels every segment 0, class 'action' (the reference's
  ``num_classes == 1``), so coinciding segments of two classes become duplicates; names are still
  checked against the class list.
  """
  source = os.fspath(path)
  data = _read_json(source)
  _check_options(source, cleaning=cleaning)
  if not isinstance(data, dict):
    raise ValueError(f'{source}: expected a top-level object mapping video ids to videos')
  if action_names_csv is not None and class_names is not None:
    raise ValueError(f'{source}: give action_names_csv or class_names, not both')
  info = _read_video_info(video_info_csv)
  for video_id in data:
    if video_id not in info:
      raise ValueError(f'{source}: video {video_id!r} has no row in {os.fspath(video_info_csv)}')
  if action_names_csv is not None:
    class_names = read_class_names(action_names_csv)
  names = class_names if class_names is not None else _file_names(data)
  labels = _NameLabels(source, names, class_agnostic=class_agnostic)

  raw_videos = []
  for video_id, row in info.items():
    where = f'{source}: video {video_id!r}'
    entry = data.get(video_id, {'duration_second': row.seconds, 'annotations': []})
    if not isinstance(entry, dict):
      raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    if 'duration_second' not in entry:
      raise ValueError(f'{where}: missing field "duration_second"')
    duration = _finite_number(entry['duration_second'], where=where, field='duration_second')
    if duration <= 0:
      raise ValueError(f'{where}: field "duration_second" must be positive, got {duration}')
    annotations = entry.get('annotations', [])
    if not isinstance(annotations, list):
      raise ValueError(f'{where}: field "annotations" must be a list')
    segments = []
    for i, ann in enumerate(annotations):
      at = f'{where} annotation {i}'
      if not isinstance(ann, dict) or 'segment' not in ann or 'label' not in ann:
        raise ValueError(f'{at}: expected an object with "segment" and "label"')
      start, end = _segment(ann['segment'], where=at)
      segments.append((start, end, labels(ann, where=at)))
    raw_videos.append(_RawVideo(video_id, row.subset, duration, row.fps, segments))
  return _finish(f'{source} + {os.fspath(video_info_csv)}', raw_videos, labels, cleaning=cleaning)


def detect_schema(data: Any) -> Literal['database', 'superevents', 'bsn', 'flat']:
  """Which loader reads ``data`` (a parsed file), from its top level and its first video."""
  if isinstance(data, dict) and 'database' in data:
    return 'database'
  first = next(iter(data.values()), None) if isinstance(data, dict) else None
  if isinstance(first, dict) and 'actions' in first:
    return 'superevents'
  if isinstance(first, dict) and 'duration_second' in first:
    return 'bsn'
  return 'flat'


_LOADERS = {
  'database': load_actionformer_json,
  'superevents': load_superevents_json,
  'bsn': load_bsn_json,
  'flat': load_flat_json,
}


def load_annotations(path: str | os.PathLike, **options: Any) -> AnnotationSet:
  """Loads any supported annotation file, choosing the loader by :func:`detect_schema`.

  A top-level "database" is ActionFormer's or ActivityNet's official file; videos with "actions"
  are super-events; videos with "duration_second" are BSN's (``video_info_csv`` required); anything
  else is a flat file. ``options`` are the chosen loader's keyword arguments; options left None are
  treated as not given, and one the detected schema does not take raises, naming the schema. (The
  file is parsed twice, once to detect and once to load: simpler than a second code path, and
  cheap next to everything that follows.)
  """
  source = os.fspath(path)
  schema = detect_schema(_read_json(source))
  loader = _LOADERS[schema]
  options = {k: v for k, v in options.items() if v is not None}
  accepted = set(inspect.signature(loader).parameters) - {'path'}
  unknown = sorted(set(options) - accepted)
  if unknown:
    raise ValueError(
      f'{source}: option(s) {unknown} do not apply to its schema ({schema}); it takes '
      f'{sorted(accepted)}'
    )
  if schema == 'bsn' and 'video_info_csv' not in options:
    raise ValueError(f'{source}: BSN-format annotations need video_info_csv (the subsets and fps)')
  return loader(path, **options)
