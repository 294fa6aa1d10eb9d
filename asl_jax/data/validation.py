"""Dataset validation: every problem of every video (annotations and features), as one report.

The loaders stop at the first bad value; before a long build or training run we want the whole
list at once, per video, with the file and field, so it can be fixed in one pass (or the bad
videos skipped knowingly: ``build_dataset --skip_bad``).

Every schema the loaders read is checked (ActionFormer / ActivityNet's official file, flat,
super-events, BSN + its CSVs; :func:`asl_jax.data.annotations.detect_schema`), with the label
rules of the config (ids + ``label_offset``, names from ``class_names_file``, class-agnostic BSN),
features through :class:`asl_jax.data.feature_formats.FeatureReader` (every format, several sets)
and the config's geometry through :func:`asl_jax.data.feature_geometry.adapt_features`. Finally
the real loader (:func:`asl_jax.data.pipeline.load_annotation_files`) runs on the videos without
problems, so a dataset that validates also loads and builds.

Segments the loader repairs (clipped to the video, or dropped when empty) are *warnings*: listed,
but they fail neither the check nor a build unless ``strict``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from asl_jax.configuration import parse_subsets
from asl_jax.data import annotations as annotations_lib
from asl_jax.data import annotations_common, pipeline, storage
from asl_jax.data.annotations import UNKNOWN_FPS
from asl_jax.data.annotations_bsn import read_video_info
from asl_jax.data.feature_formats import FeatureIssue, FeatureReader, feature_issues
from asl_jax.data.feature_geometry import adapt_features
from asl_jax.data.features import FeatureError, FeatureFolderMissing
from asl_jax.data.validation_report import (
  DATASET,
  WARNING_KINDS,
  Problem,
  ValidationReport,
  VideoSummary,
)

_FEATURE_KINDS = {
  'missing': 'missing_features',
  'transposed': 'transposed_features',
  'wrong_dim': 'wrong_dim',
  'non_finite': 'non_finite',
  'not_2d': 'bad_shape',
  'empty': 'bad_shape',
  'dtype': 'bad_shape',
}


def expected_length(duration: float, fps: float, feat_stride: float, num_frames: float) -> float:
  """Feature steps of a ``duration``-second video: ``(duration * fps - num_frames) / stride + 1``.

  The extractor slides a ``num_frames`` window by ``feat_stride`` frames; for long videos this is
  ``duration * fps / feat_stride`` to within ``num_frames / feat_stride`` steps.
  """
  return max(duration * fps - num_frames, 0.0) / feat_stride + 1.0


def _number(value: Any) -> float | None:
  if isinstance(value, bool) or not isinstance(value, int | float):
    return None
  return float(value) if math.isfinite(value) else None


class _Checker:
  """Accumulates the problems (and warnings) of one run."""

  def __init__(self, source: str, *, strict: bool):
    self.source = source
    self.strict = strict
    self.problems: list[Problem] = []
    self.warnings: list[Problem] = []

  def add(self, video_id: str, kind: str, field: str, detail: str, *, where: str | None = None):
    """Records a problem; ``where`` defaults to the annotation file and video ('' when ``detail``
    names them already). Kinds the loader repairs are warnings unless ``strict``."""
    if where is None:
      where = self.source if video_id == DATASET else f'{self.source}: video {video_id!r}'
    message = f'{where}: {detail}' if where else detail
    problem = Problem(video_id, kind, field, message, detail)
    warning = kind in WARNING_KINDS and not self.strict
    (self.warnings if warning else self.problems).append(problem)


class _IdLabels:
  """Labels written as integer ids (ActionFormer, flat, super-events): ``id + label_offset`` in
  ``[0, num_classes)``, and one name <-> one id everywhere (``class_names_file`` included)."""

  def __init__(self, num_classes: int, label_offset: int, class_names: Sequence[str] | None):
    self.num_classes = num_classes
    self.label_offset = label_offset
    self._name_of: dict[int, tuple[str, str]] = {}  # id -> (name, first video).
    self._id_of: dict[str, tuple[int, str]] = {}  # name -> (id, first video).
    for k, name in enumerate(class_names or ()):
      self._name_of[k] = (name, 'class_names_file')
      self._id_of[name] = (k, 'class_names_file')

  def check(self, check: _Checker, video_id: str, field: str, label_id: Any, name: Any = None):
    offset = f' + label_offset {self.label_offset}' if self.label_offset else ''
    if (
      isinstance(label_id, bool)
      or not isinstance(label_id, int | float)
      or not math.isfinite(label_id)
      or label_id != int(label_id)
      or not 0 <= int(label_id) + self.label_offset < self.num_classes
    ):
      named = f' (label {name!r})' if name is not None else ''
      check.add(
        video_id,
        'unknown_label',
        field,
        f'{label_id!r}{offset}{named} is not an integer in [0, {self.num_classes})',
      )
      return
    name_field = field.rsplit('.', 1)[0] + '.label'
    if name is None:
      return
    if not isinstance(name, str):
      check.add(video_id, 'bad_annotation', name_field, f'must be a string, got {name!r}')
      return
    label_id = int(label_id) + self.label_offset
    known_name, first = self._name_of.setdefault(label_id, (name, video_id))
    known_id, first_id = self._id_of.setdefault(name, (label_id, video_id))
    if known_name != name:
      check.add(
        video_id,
        'label_conflict',
        name_field,
        f'{name!r} has label_id {label_id}, which {_origin(first)} calls {known_name!r}',
      )
    elif known_id != label_id:
      check.add(
        video_id,
        'label_conflict',
        field,
        f'{label_id} for {name!r}, which {_origin(first_id)} gives id {known_id}',
      )

  def check_file(self, check: _Checker) -> None:
    del check  # Ids are checked one by one.


def _origin(first: str) -> str:
  return 'class_names_file' if first == 'class_names_file' else f'video {first!r}'


class _NameLabels:
  """Labels written as names (ActivityNet's official file, BSN): each must be one of the class
  names when they are given (``class_names_file``); otherwise the file's names are the classes,
  and (unless class-agnostic) there must be no more of them than ``num_classes``."""

  def __init__(self, num_classes: int, names: Sequence[str] | None, *, class_agnostic: bool):
    self.num_classes = num_classes
    self.names = None if names is None else set(names)
    self.class_agnostic = class_agnostic
    self.seen: set[str] = set()

  def check(self, check: _Checker, video_id: str, field: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
      check.add(video_id, 'unknown_label', field, f'{name!r} is not a label name')
    elif self.names is not None and name not in self.names:
      check.add(
        video_id,
        'unknown_label',
        field,
        f'{name!r} is not one of the {len(self.names)} names of class_names_file',
      )
    else:
      self.seen.add(name)

  def check_file(self, check: _Checker) -> None:
    count = len(self.names) if self.names is not None else len(self.seen)
    if not self.class_agnostic and count > self.num_classes:
      check.add(
        DATASET, 'unknown_label', 'label', f'{count} label names but num_classes={self.num_classes}'
      )


@dataclasses.dataclass
class _Context:
  """What the per-video checks of one run share."""

  check: _Checker
  labels: _IdLabels | _NameLabels
  default_fps: float | None
  segment_tol_sec: float


def _check_segment(
  ctx: _Context, video_id: str, field: str, bounds: list[Any], duration: float | None
) -> None:
  values = [_number(x) for x in bounds]
  if len(values) != 2 or None in values:
    ctx.check.add(
      video_id, 'bad_annotation', field, f'must be 2 finite numbers [start, end], got {bounds!r}'
    )
    return
  start, end = values
  tol = ctx.segment_tol_sec
  if end <= start:
    ctx.check.add(video_id, 'zero_length_segment', field, f'[{start}, {end}] has length <= 0')
  if duration is not None and (start < -tol or end > duration + tol):
    ctx.check.add(
      video_id,
      'segment_outside_duration',
      field,
      f'[{start}, {end}] is not inside [0, {duration}] (tolerance {tol} s)',
    )


def _positive(ctx: _Context, video_id: str, entry: dict, field: str) -> float | None:
  value = _number(entry.get(field))
  if value is None or value <= 0:
    ctx.check.add(
      video_id, 'bad_annotation', field, f'must be a positive number, got {entry.get(field)!r}'
    )
    return None
  return value


def _check_subset(ctx: _Context, video_id: str, entry: dict, summary: VideoSummary) -> None:
  subset = entry.get('subset')
  if isinstance(subset, str):
    summary.subset = subset
  else:
    ctx.check.add(video_id, 'bad_annotation', 'subset', f'must be a string, got {subset!r}')


def _check_fps(ctx: _Context, video_id: str, entry: dict, unknown_ok: bool) -> float | None:
  """The fps the loader will use (``default_fps`` first); None when unknown or bad."""
  if ctx.default_fps:
    return ctx.default_fps
  if unknown_ok and entry.get('fps') in (None, UNKNOWN_FPS):
    return None  # The loader takes the feature rate: the length cannot disagree.
  return _positive(ctx, video_id, entry, 'fps')


def _check_listed_video(
  ctx: _Context, video_id: str, entry: dict, summary: VideoSummary, *, by_name: bool, flat: bool
) -> tuple[float | None, float | None]:
  """An ActionFormer / ActivityNet (``database``) or flat video; returns its duration and fps."""
  _check_subset(ctx, video_id, entry, summary)
  duration = _positive(ctx, video_id, entry, 'duration')
  fps = _check_fps(ctx, video_id, entry, unknown_ok=by_name or flat)
  _check_annotations(ctx, video_id, entry, duration, summary, by_name=by_name)
  return duration, fps


def _check_annotations(
  ctx: _Context,
  video_id: str,
  entry: dict,
  duration: float | None,
  summary: VideoSummary,
  *,
  by_name: bool,
) -> None:
  """``entry['annotations']``: ``[{segment, label[, label_id]}]``, labels by name or by id."""
  annotations = entry.get('annotations', [])
  if not isinstance(annotations, list):
    ctx.check.add(video_id, 'bad_annotation', 'annotations', 'must be a list')
    return
  summary.num_segments = len(annotations)
  for i, ann in enumerate(annotations):
    field = f'annotations[{i}]'
    if not isinstance(ann, dict):
      ctx.check.add(video_id, 'bad_annotation', field, f'expected an object, got {ann!r}')
      continue
    segment = ann.get('segment')
    bounds = list(segment) if isinstance(segment, list | tuple) else [segment]
    _check_segment(ctx, video_id, f'{field}.segment', bounds, duration)
    if by_name:
      ctx.labels.check(ctx.check, video_id, f'{field}.label', ann.get('label'))
    else:
      ctx.labels.check(
        ctx.check, video_id, f'{field}.label_id', ann.get('label_id'), ann.get('label')
      )


def _check_superevents_video(
  ctx: _Context, video_id: str, entry: dict, summary: VideoSummary
) -> tuple[float | None, float | None]:
  """A super-events video: ``actions: [[class, start, end], ...]``; the file has no fps."""
  _check_subset(ctx, video_id, entry, summary)
  duration = _positive(ctx, video_id, entry, 'duration')
  actions = entry.get('actions')
  if not isinstance(actions, list):
    ctx.check.add(video_id, 'bad_annotation', 'actions', 'must be a list of [class, start, end]')
    return duration, ctx.default_fps
  summary.num_segments = len(actions)
  for i, action in enumerate(actions):
    field = f'actions[{i}]'
    if not isinstance(action, list | tuple) or len(action) != 3:
      ctx.check.add(
        video_id, 'bad_annotation', field, f'must be [class, start, end], got {action!r}'
      )
      continue
    _check_segment(ctx, video_id, f'{field}[1:]', list(action[1:]), duration)
    ctx.labels.check(ctx.check, video_id, f'{field}[0]', action[0])
  return duration, ctx.default_fps


def _check_bsn_video(
  ctx: _Context, video_id: str, entry: Any, row: Any, summary: VideoSummary
) -> tuple[float | None, float | None]:
  """A BSN video: subset and fps from its video_info.csv row, the rest from the JSON (a video
  only in the CSV has no annotations, as the loader keeps it)."""
  fps = None
  if row is None:
    ctx.check.add(video_id, 'bad_annotation', 'video_info_csv', 'has no row in video_info_csv')
  else:
    summary.subset = row.subset
    fps = ctx.default_fps or row.fps
  if entry is None:
    return (row.seconds if row is not None else None), fps
  if not isinstance(entry, dict):
    ctx.check.add(video_id, 'bad_annotation', 'entry', f'expected an object, got {entry!r}')
    return None, fps
  duration = _positive(ctx, video_id, entry, 'duration_second')
  _check_annotations(ctx, video_id, entry, duration, summary, by_name=True)
  return duration, fps


def _check_features(
  check: _Checker,
  video_id: str,
  reader: FeatureReader,
  summary: VideoSummary,
) -> None:
  try:
    arrays = reader.read_raw(video_id)
  except FeatureFolderMissing:
    raise  # Not a problem of this video: one error for the folder.
  except FeatureError as e:
    kind = (
      _FEATURE_KINDS.get(e.kind, 'unreadable_features') if isinstance(e, FeatureIssue) else None
    )
    check.add(video_id, kind or 'unreadable_features', 'features', str(e), where='')
    return
  issues = [
    (source, kind, message)
    for source, raw in zip(reader.sources, arrays)
    for kind, message in feature_issues(raw, expected_dim=source.dim)
  ]
  for source, kind, message in issues:
    detail = f'{source.location(video_id)}: {message}'
    check.add(
      video_id, _FEATURE_KINDS[kind], 'features', detail, where=f'features of video {video_id!r}'
    )
  if issues:
    if len(arrays) == 1 and arrays[0].ndim == 2:  # Still show T and C, un-transposed if need be.
      transposed = any(kind == 'transposed' for _, kind, _ in issues)
      summary.length, summary.dim = arrays[0].shape[::-1] if transposed else arrays[0].shape
    return
  try:
    feats = reader.combine([a.astype(np.float32, copy=False) for a in arrays], video_id)
  except FeatureIssue as e:
    check.add(video_id, _FEATURE_KINDS.get(e.kind, 'bad_shape'), 'features', str(e), where='')
    return
  except ValueError as e:  # Unequal lengths under policy='error'.
    check.add(video_id, 'bad_shape', 'features', str(e), where='')
    return
  summary.length, summary.dim = feats.shape


def _check_length(
  check: _Checker,
  summary: VideoSummary,
  duration: float,
  fps: float,
  feat_stride: float,
  num_frames: float,
  tols: tuple[float, float],
) -> None:
  """Feature length against :func:`expected_length`, within ``max(tol * expected, tol_steps)``."""
  summary.expected_length = expected = expected_length(duration, fps, feat_stride, num_frames)
  if summary.length is None:
    return
  gap, allowed = abs(summary.length - expected), max(tols[0] * expected, tols[1])
  if gap > allowed:
    check.add(
      summary.video_id,
      'length_mismatch',
      'features',
      f'T={summary.length}, expected {expected:.1f} from duration {duration:.6g} s, fps '
      f'{fps:.6g}, feat_stride {feat_stride:g}, num_frames {num_frames:g} (off by {gap:.1f} > '
      f'{allowed:.1f}): wrong fps, stride or file?',
    )


def _check_geometry(check: _Checker, geometry: dict[str, Any]) -> None:
  """The config's geometry tried on a stand-in video: its errors are the config's, not a video's."""
  try:
    adapt_features(np.zeros((2, 1), np.float32), duration=1.0, fps=1.0, **geometry)
  except ValueError as e:
    check.add(DATASET, 'bad_config', 'geometry', str(e))


def _read_error(e: Exception) -> bool:
  """A file that cannot be read or parsed: OS and parse errors, and tf.io.gfile's for URLs
  (``tf.errors.OpError`` is no ``OSError``; matched by module so TF is not imported here)."""
  return isinstance(e, OSError | ValueError) or type(e).__module__.startswith('tensorflow')


def _local_csv(check: _Checker, path: str, field: str, read) -> Any:
  """``read(local copy of path)``, or None with a file-level problem naming ``field``."""
  try:
    with storage.local_copy(path) as local:
      return read(local)
  except Exception as e:
    if not _read_error(e):
      raise
    check.add(DATASET, 'bad_annotation_file', field, f'{path}: {e}')
    return None


def validate_dataset(
  annotation_file: str,
  reader: FeatureReader,
  *,
  num_classes: int,
  feat_stride: float,
  num_frames: float,
  default_fps: float | None = None,
  subsets: Sequence[str] = (),
  length_tol: float = 0.1,
  length_tol_steps: float = 2.0,
  segment_tol_sec: float = 1e-3,
  annotation_format: str = 'auto',
  video_info_csv: str = '',
  class_names_file: str = '',
  label_offset: int = 0,
  downsample_rate: int = 1,
  force_upsampling: bool = False,
  max_seq_len: int | None = None,
  strict: bool = False,
) -> ValidationReport:
  """Checks every video of an annotation file (any schema) and its features.

  The options mean what the ``config.data`` fields of the same names do
  (:func:`validate_from_config` passes them): the schema is detected (``annotation_format``
  must agree when not 'auto'); BSN files take ``video_info_csv`` (subsets, fps, the video list)
  and are class-agnostic when ``num_classes == 1``; label names come from ``class_names_file``.
  Files with unknown fps (flat, super-events, ActivityNet's official one) skip the length check:
  the loader derives the fps from the feature length.

  Args:
    annotation_file: the annotation file (local or URL).
    reader: where the features live and what channel count(s) they must have.
    num_classes: valid label ids are ``0 .. num_classes - 1``.
    feat_stride, num_frames: the feature geometry, for the length check.
    default_fps: overrides each video's ``fps`` (as the loader does).
    subsets: subset names the config will ask for; each must match some video (case-insensitive).
    length_tol, length_tol_steps: a feature length ``T`` passes when
      ``|T - expected| <= max(length_tol_steps, length_tol * expected)`` with ``expected`` from
      :func:`expected_length` (10% or 2 steps by default: catches a wrong fps or stride, which
      are off by factors, but not extractor edge effects). Skipped when ``feat_stride <= 0``.
    segment_tol_sec: how far outside ``[0, duration]`` a segment may reach (rounding).
    downsample_rate, force_upsampling, max_seq_len: the geometry the features go through.
    strict: report segments the loader repairs (clips, drops) as problems, not warnings.

  Returns:
    The report; ``report.ok`` is False when anything is wrong.
  """
  geometry = dict(
    feat_stride=float(feat_stride),
    num_frames=float(num_frames),
    downsample_rate=int(downsample_rate),
    force_upsampling=bool(force_upsampling),
    max_seq_len=max_seq_len,
  )
  settings: dict[str, Any] = {
    'schema': '?',
    'features': ', '.join(s.path for s in reader.sources),
    'input_dim': reader.input_dim,
    'num_classes': num_classes,
    'geometry': ', '.join(f'{k}={v}' for k, v in geometry.items()) + f', default_fps={default_fps}',
    'length tolerance': f'max({length_tol_steps} steps, {length_tol:.0%} of expected)',
    'segment tolerance': f'{segment_tol_sec} s',
  }
  check = _Checker(annotation_file, strict=strict)
  report = ValidationReport(annotation_file, [], check.problems, settings, check.warnings)
  _check_geometry(check, geometry)
  try:
    with storage.open_file(annotation_file, 'r') as f:
      data = json.load(f)
  except Exception as e:
    if not _read_error(e):
      raise
    check.add(DATASET, 'bad_annotation_file', 'file', f'cannot read JSON ({type(e).__name__}: {e})')
    return report
  try:
    schema = pipeline.annotation_schema(annotation_file, data, annotation_format)
  except ValueError as e:
    check.add(DATASET, 'bad_config', 'annotation_format', str(e), where='')
    return report
  settings['schema'] = schema
  entries = data.get('database') if schema == 'database' else data
  if not isinstance(entries, dict):
    what = 'a "database" mapping' if schema == 'database' else 'an object of videos'
    check.add(DATASET, 'bad_annotation_file', 'database', f'expected {what} of video ids')
    return report

  class_names = None
  if class_names_file:
    class_names = _local_csv(
      check, class_names_file, 'class_names_file', annotations_lib.read_class_names
    )
    if class_names is None:
      return report
  rows: dict[str, Any] = {}
  if schema == 'bsn':
    if not video_info_csv:
      check.add(DATASET, 'bad_config', 'video_info_csv', 'BSN annotations need video_info_csv')
      return report
    rows = _local_csv(check, video_info_csv, 'video_info_csv', read_video_info)
    if rows is None:
      return report
  every = [a for a in _all_annotations(entries, schema) if isinstance(a, dict)]
  by_name = schema == 'bsn' or (bool(every) and not any('label_id' in a for a in every))
  if by_name:
    agnostic = schema == 'bsn' and num_classes == 1
    labels: _IdLabels | _NameLabels = _NameLabels(num_classes, class_names, class_agnostic=agnostic)
  else:
    if class_names is not None and len(class_names) != num_classes:
      check.add(
        DATASET,
        'bad_config',
        'class_names_file',
        f'{class_names_file}: {len(class_names)} class names but num_classes={num_classes}',
      )
      return report
    labels = _IdLabels(num_classes, label_offset if schema != 'database' else 0, class_names)
  ctx = _Context(check, labels, default_fps, segment_tol_sec)

  video_ids = list(rows) + [v for v in entries if v not in rows] if schema == 'bsn' else entries
  tols = (length_tol, length_tol_steps)
  present_subsets = set()
  for video_id in video_ids:
    entry = entries.get(video_id)
    video_id = str(video_id)
    summary = VideoSummary(video_id)
    report.videos.append(summary)
    if schema == 'bsn':
      duration, fps = _check_bsn_video(ctx, video_id, entry, rows.get(video_id), summary)
    elif not isinstance(entry, dict):
      check.add(video_id, 'bad_annotation', 'entry', f'expected an object, got {entry!r}')
      continue
    elif schema == 'superevents':
      duration, fps = _check_superevents_video(ctx, video_id, entry, summary)
    else:
      duration, fps = _check_listed_video(
        ctx, video_id, entry, summary, by_name=by_name, flat=schema == 'flat'
      )
    if summary.subset:
      present_subsets.add(summary.subset.lower())
    _check_features(check, video_id, reader, summary)
    if duration is not None and fps is not None and feat_stride > 0:
      _check_length(check, summary, duration, fps, feat_stride, num_frames, tols)

  labels.check_file(check)
  subset_of = {v.video_id: v.subset for v in report.videos}
  for group in annotations_common.case_collisions([v.video_id for v in report.videos]):
    where = ', '.join(f'{v!r} ({subset_of[v] or "no subset"})' for v in group)
    for video_id in group:
      check.add(
        video_id,
        'video_id_case',
        'video_id',
        f'video ids {where} differ only in letter case: they read one feature file on a '
        'case-insensitive file system; rename one',
      )
  for name in subsets:
    if name.lower() not in present_subsets:
      check.add(
        DATASET,
        'unknown_subset',
        'subset',
        f'subset {name!r} matches no video; subsets in the file: {sorted(present_subsets)}',
      )
  if not report.dataset_problems:
    loader_options = dict(
      num_classes=num_classes,
      annotation_format=annotation_format,
      video_info_csv=video_info_csv,
      class_names_file=class_names_file,
      default_fps=default_fps,
      label_offset=label_offset,
    )
    _check_loads(check, report, annotation_file, loader_options)
  return report


def _check_loads(
  check: _Checker, report: ValidationReport, annotation_file: str, options: dict[str, Any]
) -> None:
  """Runs the real loader on the videos without problems: anything it still refuses is a
  problem of the file (the checks above missed a rule), so a valid dataset always loads."""
  try:
    pipeline.load_annotation_files(
      annotation_file, exclude=set(report.problems_by_video()), **options
    )
  except Exception as e:
    if not _read_error(e):
      raise
    check.add(DATASET, 'bad_annotation_file', 'file', f'the loader refuses it: {e}', where='')


def _all_annotations(entries: dict, schema: str) -> list[Any]:
  """Every annotation object of the file, for the by-name / by-id decision (as the loader)."""
  if schema == 'superevents':
    return []
  out = []
  for entry in entries.values():
    anns = entry.get('annotations') if isinstance(entry, dict) else None
    if isinstance(anns, list):
      out.extend(anns)
  return out


def validate_from_config(data_config, **kwargs) -> ValidationReport:
  """:func:`validate_dataset` with the files, schema options, classes, geometry and subsets of
  ``config.data`` (``kwargs``: the tolerances and ``strict``)."""
  subsets = (*parse_subsets(data_config.train_subset), *parse_subsets(data_config.eval_subset))
  geometry = pipeline.geometry_from_config(data_config)
  with FeatureReader.from_config(data_config) as reader:
    return validate_dataset(
      data_config.annotation_file,
      reader,
      num_classes=data_config.num_classes,
      default_fps=data_config.default_fps if data_config.default_fps > 0 else None,
      subsets=tuple(dict.fromkeys(subsets)),
      annotation_format=data_config.annotation_format,
      video_info_csv=data_config.video_info_csv,
      class_names_file=data_config.class_names_file,
      label_offset=data_config.label_offset,
      **geometry,
      **kwargs,
    )
