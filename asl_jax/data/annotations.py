"""Annotation files of every supported schema -> :class:`AnnotationSet`, validated on load."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any, Literal

from asl_jax.data.annotations_bsn import load_bsn_json, read_class_names
from asl_jax.data.annotations_common import (
  DUPLICATE_TOL_SEC,
  UNKNOWN_FPS,
  Cleaning,
  IdLabels,
  NameLabels,
  RawVideo,
  all_annotations,
  build_annotation_set,
  check_options,
  file_class_names,
  finite_number,
  read_json,
  read_segment,
  video_fps,
  video_header,
)
from asl_jax.data.records import AnnotationSet

__all__ = [
  'DUPLICATE_TOL_SEC',
  'UNKNOWN_FPS',
  'Cleaning',
  'detect_schema',
  'load_actionformer_json',
  'load_annotations',
  'load_bsn_json',
  'load_flat_json',
  'load_superevents_json',
  'read_class_names',
]


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
  check_options(source, default_fps=default_fps, num_classes=num_classes, cleaning=cleaning)
  every_annotation = all_annotations(entries)
  by_name = bool(every_annotation) and not any('label_id' in a for a in every_annotation)
  if by_name:
    names = list(class_names) if class_names is not None else file_class_names(entries)
    if num_classes is not None and num_classes < len(names):
      raise ValueError(f'{source}: {len(names)} class names but num_classes={num_classes}')
    names += [f'class_{k}' for k in range(len(names), num_classes or 0)]
    labels: IdLabels | NameLabels = NameLabels(source, names)
  else:
    labels = IdLabels(
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
    subset, duration = video_header(entry, where=where)
    fps = video_fps(
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
      start, end = read_segment(ann['segment'], where=at)
      segments.append((start, end, labels(ann, where=at)))
    raw_videos.append(RawVideo(str(video_id), subset, duration, fps, segments))
  return build_annotation_set(source, raw_videos, labels, cleaning=cleaning)


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
  data = read_json(source)
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
  data = read_json(source)
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
  data = read_json(source)
  check_options(source, default_fps=default_fps, num_classes=num_classes, cleaning=cleaning)
  if not isinstance(data, dict):
    raise ValueError(f'{source}: expected a top-level object mapping video ids to videos')
  labels = IdLabels(
    source, num_classes=num_classes, class_names=class_names, label_offset=label_offset
  )
  fps = UNKNOWN_FPS if default_fps is None else float(default_fps)
  skipped: dict[str, int] = {}
  raw_videos = []
  for video_id, entry in data.items():
    where = f'{source}: video {video_id!r}'
    subset, duration = video_header(entry, where=where)
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
      start = finite_number(action[1], where=at, field='start')
      segments.append((start, finite_number(action[2], where=at, field='end'), label))
    raw_videos.append(RawVideo(str(video_id), subset, duration, fps, segments))
  return build_annotation_set(source, raw_videos, labels, cleaning=cleaning, skipped=skipped)


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
  schema = detect_schema(read_json(source))
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
