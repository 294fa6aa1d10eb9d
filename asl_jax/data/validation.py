"""Dataset validation: every problem of every video (annotations and features), as one report.

The loaders stop at the first bad value; before a long build or training run we want the whole
list at once, per video, with the file and field, so it can be fixed in one pass (or the bad
videos skipped knowingly: ``build_dataset --skip_bad``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from asl_jax.configuration import parse_subsets
from asl_jax.data import storage
from asl_jax.data.annotations import UNKNOWN_FPS
from asl_jax.data.feature_formats import FeatureIssue, FeatureReader, feature_issues
from asl_jax.data.features import FeatureError
from asl_jax.data.validation_report import DATASET, Problem, ValidationReport, VideoSummary

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
  """Accumulates the problems of one run."""

  def __init__(self, source: str):
    self.source = source
    self.problems: list[Problem] = []

  def add(self, video_id: str, kind: str, field: str, detail: str, *, where: str | None = None):
    """Records a problem; ``where`` defaults to the annotation file and video ('' when ``detail``
    names them already)."""
    if where is None:
      where = self.source if video_id == DATASET else f'{self.source}: video {video_id!r}'
    message = f'{where}: {detail}' if where else detail
    self.problems.append(Problem(video_id, kind, field, message, detail))


class _Labels:
  """Label checks across the file: ids in range, and one name <-> one id everywhere.

  As the loader does, a file whose annotations carry no ``label_id`` at all (ActivityNet's
  official file) is labelled by name; then only the number of names is checked.
  """

  def __init__(self, database: dict, num_classes: int):
    every = [
      a
      for e in database.values()
      if isinstance(e, dict) and isinstance(e.get('annotations'), list)
      for a in e['annotations']
      if isinstance(a, dict)
    ]
    self.by_name = bool(every) and not any('label_id' in a for a in every)
    self.num_classes = num_classes
    self.names: set[str] = set()
    self._name_of: dict[int, tuple[str, str]] = {}  # id -> (name, first video).
    self._id_of: dict[str, tuple[int, str]] = {}  # name -> (id, first video).

  def check(self, check: _Checker, video_id: str, field: str, ann: dict) -> None:
    label_id, name = ann.get('label_id'), ann.get('label')
    if self.by_name:
      if isinstance(name, str) and name:
        self.names.add(name)
      else:
        check.add(video_id, 'unknown_label', f'{field}.label', f'{name!r} is not a label name')
      return
    if (
      isinstance(label_id, bool)
      or not isinstance(label_id, int | float)
      or label_id != int(label_id)
      or not 0 <= label_id < self.num_classes
    ):
      named = f' (label {name!r})' if name is not None else ''
      check.add(
        video_id,
        'unknown_label',
        f'{field}.label_id',
        f'{label_id!r}{named} is not an integer in [0, {self.num_classes})',
      )
      return
    if not isinstance(name, str):
      return
    label_id = int(label_id)
    known_name, first = self._name_of.setdefault(label_id, (name, video_id))
    known_id, first_id = self._id_of.setdefault(name, (label_id, video_id))
    if known_name != name:
      check.add(
        video_id,
        'label_conflict',
        f'{field}.label',
        f'{name!r} has label_id {label_id}, which video {first!r} calls {known_name!r}',
      )
    elif known_id != label_id:
      check.add(
        video_id,
        'label_conflict',
        f'{field}.label_id',
        f'{label_id} for {name!r}, which video {first_id!r} gives id {known_id}',
      )

  def check_file(self, check: _Checker) -> None:
    if len(self.names) > self.num_classes:
      check.add(
        DATASET,
        'unknown_label',
        'label',
        f'{len(self.names)} label names but num_classes={self.num_classes}',
      )


def _check_annotations(
  check: _Checker,
  video_id: str,
  entry: dict,
  summary: VideoSummary,
  *,
  duration: float | None,
  segment_tol_sec: float,
  labels: _Labels,
) -> None:
  annotations = entry.get('annotations', [])
  if not isinstance(annotations, list):
    check.add(video_id, 'bad_annotation', 'annotations', 'must be a list')
    return
  summary.num_segments = len(annotations)
  for i, ann in enumerate(annotations):
    field = f'annotations[{i}]'
    if not isinstance(ann, dict):
      check.add(video_id, 'bad_annotation', field, f'expected an object, got {ann!r}')
      continue
    segment = ann.get('segment')
    bounds = (
      [_number(x) for x in segment]
      if isinstance(segment, list | tuple) and len(segment) == 2
      else []
    )
    if len(bounds) != 2 or None in bounds:
      check.add(
        video_id, 'bad_annotation', f'{field}.segment', f'must be 2 finite numbers, got {segment!r}'
      )
    else:
      start, end = bounds
      if end <= start:
        check.add(
          video_id, 'zero_length_segment', f'{field}.segment', f'[{start}, {end}] has length <= 0'
        )
      if duration is not None and (start < -segment_tol_sec or end > duration + segment_tol_sec):
        check.add(
          video_id,
          'segment_outside_duration',
          f'{field}.segment',
          f'[{start}, {end}] is not inside [0, {duration}] (tolerance {segment_tol_sec} s)',
        )
    labels.check(check, video_id, field, ann)


def _check_features(
  check: _Checker,
  video_id: str,
  reader: FeatureReader,
  summary: VideoSummary,
) -> None:
  try:
    arrays = reader.read_raw(video_id)
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


def _check_header(
  check: _Checker,
  video_id: str,
  entry: dict,
  summary: VideoSummary,
  default_fps: float | None,
  fps_may_be_unknown: bool,
) -> tuple[float | None, float | None]:
  """Checks ``subset``, ``duration`` and ``fps``; returns the usable duration and fps (or None)."""
  subset = entry.get('subset')
  if isinstance(subset, str):
    summary.subset = subset
  else:
    check.add(video_id, 'bad_annotation', 'subset', f'must be a string, got {subset!r}')
  duration = _number(entry.get('duration'))
  if duration is None or duration <= 0:
    got = entry.get('duration')
    check.add(video_id, 'bad_annotation', 'duration', f'must be a positive number, got {got!r}')
    duration = None
  if default_fps:
    return duration, default_fps
  fps = _number(entry.get('fps'))
  if fps_may_be_unknown and entry.get('fps') in (None, UNKNOWN_FPS):
    return duration, None  # The loader takes the feature rate: the length cannot disagree.
  if fps is None or fps <= 0:
    check.add(
      video_id, 'bad_annotation', 'fps', f'must be a positive number, got {entry.get("fps")!r}'
    )
    fps = None
  return duration, fps


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
) -> ValidationReport:
  """Checks every video of an ActionFormer-format annotation file and its features.

  A file whose annotations have no ``label_id`` at all (ActivityNet's official file) is labelled
  by name and may omit ``fps``, as :func:`asl_jax.data.annotations.load_actionformer_json` allows;
  its length check is then skipped (the loader derives fps from the feature length).

  Args:
    annotation_file: ``{"database": {vid: {subset, duration, fps, annotations}}}`` (local or URL).
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

  Returns:
    The report; ``report.ok`` is False when anything is wrong.
  """
  settings = {
    'features': ', '.join(s.path for s in reader.sources),
    'input_dim': reader.input_dim,
    'num_classes': num_classes,
    'geometry': f'feat_stride={feat_stride}, num_frames={num_frames}, default_fps={default_fps}',
    'length tolerance': f'max({length_tol_steps} steps, {length_tol:.0%} of expected)',
    'segment tolerance': f'{segment_tol_sec} s',
  }
  check = _Checker(annotation_file)
  report = ValidationReport(annotation_file, [], check.problems, settings)
  try:
    with storage.open_file(annotation_file, 'r') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    check.add(DATASET, 'bad_annotation_file', 'file', f'cannot read JSON ({type(e).__name__}: {e})')
    return report
  if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
    check.add(DATASET, 'bad_annotation_file', 'database', 'no top-level "database" mapping')
    return report

  labels = _Labels(data['database'], num_classes)
  tols = (length_tol, length_tol_steps)
  present_subsets = set()
  for video_id, entry in data['database'].items():
    video_id = str(video_id)
    summary = VideoSummary(video_id)
    report.videos.append(summary)
    if not isinstance(entry, dict):
      check.add(video_id, 'bad_annotation', 'entry', f'expected an object, got {entry!r}')
      continue
    duration, fps = _check_header(check, video_id, entry, summary, default_fps, labels.by_name)
    if summary.subset:
      present_subsets.add(summary.subset.lower())
    _check_annotations(
      check,
      video_id,
      entry,
      summary,
      duration=duration,
      segment_tol_sec=segment_tol_sec,
      labels=labels,
    )
    _check_features(check, video_id, reader, summary)
    if duration is not None and fps is not None and feat_stride > 0:
      _check_length(check, summary, duration, fps, feat_stride, num_frames, tols)

  labels.check_file(check)
  for name in subsets:
    if name.lower() not in present_subsets:
      check.add(
        DATASET,
        'unknown_subset',
        'subset',
        f'subset {name!r} matches no video; subsets in the file: {sorted(present_subsets)}',
      )
  return report


def validate_from_config(data_config, **kwargs) -> ValidationReport:
  """:func:`validate_dataset` with the files, classes, geometry and subsets of ``config.data``."""
  subsets = (*parse_subsets(data_config.train_subset), *parse_subsets(data_config.eval_subset))
  with FeatureReader.from_config(data_config) as reader:
    return validate_dataset(
      data_config.annotation_file,
      reader,
      num_classes=data_config.num_classes,
      feat_stride=data_config.feat_stride,
      num_frames=data_config.num_frames,
      default_fps=data_config.default_fps if data_config.default_fps > 0 else None,
      subsets=tuple(dict.fromkeys(subsets)),
      **kwargs,
    )
