"""BSN's ActivityNet annotations: the JSON, its video_info.csv and the class-name CSV."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence

from asl_jax.data.annotations_common import (
  Cleaning,
  NameLabels,
  RawVideo,
  build_annotation_set,
  check_options,
  file_class_names,
  finite_number,
  read_json,
  read_segment,
)
from asl_jax.data.records import AnnotationSet


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
class VideoInfo:
  """The columns of BSN's video_info.csv a record needs."""

  subset: str
  seconds: float
  fps: float


def read_video_info(path: str | os.PathLike) -> dict[str, VideoInfo]:
  """BSN's video_info.csv (``video,numFrame,seconds,fps,rfps,subset,featureFrame``), file order."""
  source = os.fspath(path)
  if not os.path.exists(source):
    raise FileNotFoundError(f'video info file {source} does not exist')
  with open(source, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    missing = {'video', 'seconds', 'fps', 'subset'} - set(reader.fieldnames or ())
    if missing:
      raise ValueError(f'{source}: missing column(s) {sorted(missing)}')
    info: dict[str, VideoInfo] = {}
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
      info[video_id] = VideoInfo((row['subset'] or '').strip(), numbers['seconds'], numbers['fps'])
  return info


def load_bsn_json(
  path: str | os.PathLike,
  *,
  video_info_csv: str | os.PathLike,
  action_names_csv: str | os.PathLike | None = None,
  class_names: Sequence[str] | None = None,
  class_agnostic: bool = False,
  default_fps: float | None = None,
  cleaning: Cleaning = 'full',
) -> AnnotationSet:
  """Loads BSN's ActivityNet files: ``{v_<id>: {duration_second, annotations: [...]}}`` + CSV.

  The JSON has no subsets: they, the fps and the video list come from ``video_info_csv``; videos
  of the CSV absent from the JSON or without annotations (the testing subset) are kept with zero
  segments; a JSON video without a CSV row raises. Annotations are ``{segment, label}``; label ids
  index ``action_names_csv`` (:func:`read_class_names`) or ``class_names`` if given, else the
  sorted label names. ``class_agnostic`` labels every segment 0, class 'action' (the reference's
  ``num_classes == 1``), so coinciding segments of two classes become duplicates; names are still
  checked against the class list. ``default_fps`` (the rate the features were extracted at, as
  the reference's ``default_fps``) replaces every video's fps from the CSV when given.
  """
  source = os.fspath(path)
  data = read_json(source)
  check_options(source, cleaning=cleaning)
  if not isinstance(data, dict):
    raise ValueError(f'{source}: expected a top-level object mapping video ids to videos')
  if action_names_csv is not None and class_names is not None:
    raise ValueError(f'{source}: give action_names_csv or class_names, not both')
  info = read_video_info(video_info_csv)
  for video_id in data:
    if video_id not in info:
      raise ValueError(f'{source}: video {video_id!r} has no row in {os.fspath(video_info_csv)}')
  if action_names_csv is not None:
    class_names = read_class_names(action_names_csv)
  names = class_names if class_names is not None else file_class_names(data)
  labels = NameLabels(source, names, class_agnostic=class_agnostic)

  raw_videos = []
  for video_id, row in info.items():
    where = f'{source}: video {video_id!r}'
    entry = data.get(video_id, {'duration_second': row.seconds, 'annotations': []})
    if not isinstance(entry, dict):
      raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    if 'duration_second' not in entry:
      raise ValueError(f'{where}: missing field "duration_second"')
    duration = finite_number(entry['duration_second'], where=where, field='duration_second')
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
      start, end = read_segment(ann['segment'], where=at)
      segments.append((start, end, labels(ann, where=at)))
    fps = default_fps if default_fps else row.fps
    raw_videos.append(RawVideo(video_id, row.subset, duration, fps, segments))
  return build_annotation_set(
    f'{source} + {os.fspath(video_info_csv)}', raw_videos, labels, cleaning=cleaning
  )
