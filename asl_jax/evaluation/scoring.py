"""mAP of an ActivityNet-format results file against a ground-truth file (``asl-evaluate``).

The rules, each counted and reported, never silent:
* Videos: a predicted id matches a GT id if equal, else if adding or removing a leading 'v_' makes
  it equal (ActivityNet's BSN files write 'v_<id>', its results files '<id>'). Predictions on a
  video the GT file does not know, or on a video of another subset, are false positives, as in
  ActivityNet's evaluator.
* Labels are matched by class name; a name the GT does not define is ignored. Predictions of a
  class without GT in the subset are ignored too (compute_map's rule).
* The subset is compared case-insensitively and may list several subsets (a,b). Without it the GT
  must have a single subset: with several, the choice would silently decide what a number means.
* Inverted detections (end < start), as other models' files contain a few, are scored as
  ActivityNet's evaluator scores them (a false positive: IoU 0 with every GT) and counted; with
  ``strict`` they are an error. NaN scores are always an error: the official evaluator silently
  produces wrong APs for them.
* GT cleaning: 'none' (default) evaluates every GT segment as written, as ActivityNet's official
  evaluator does; 'duplicates' removes repeated GT segments (ASL's ANETdetection); 'full' applies
  the training loader's cleaning (drop empty and late segments, clip, remove duplicates).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from asl_jax.data import annotations as annotations_lib
from asl_jax.data.records import AnnotationSet, VideoRecord
from asl_jax.evaluation import metrics

_V_PREFIX = 'v_'


def parse_tious(text: str) -> np.ndarray:
  """'a:b:n' -> np.linspace(a, b, n) (as the reference builds them); 'x,y,...' -> that list."""
  try:
    if ':' in text:
      start, stop, num = text.split(':')
      if float(num) != int(float(num)) or int(float(num)) < 1:
        raise ValueError
      tious = np.linspace(float(start), float(stop), int(float(num)))
    else:
      tious = np.array([float(t) for t in text.split(',')], dtype=np.float64)
  except ValueError:
    raise ValueError(f'--tiou {text!r}: expected A:B:N (np.linspace) or T1,T2,...') from None
  if not np.all((tious > 0) & (tious <= 1)):
    raise ValueError(f'--tiou {text!r}: thresholds must lie in (0, 1], got {tious.tolist()}')
  return tious


def _gt_id_matcher(gt_ids: Sequence[str]):
  """Returns pred id -> GT id (or None), tolerant of a 'v_' prefix on either side."""
  known = set(gt_ids)

  def match(video_id: str) -> str | None:
    for candidate in (
      video_id,
      _V_PREFIX + video_id,
      video_id[len(_V_PREFIX) :] if video_id.startswith(_V_PREFIX) else None,
    ):
      if candidate is not None and candidate in known:
        return candidate
    return None

  return match


def _number(value: Any, *, where: str, field: str) -> float:
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f'{where}: field {field!r} must be a number, got {value!r}')
  return float(value)


@dataclasses.dataclass
class PredictionCounts:
  """What happened to the rows of a results file."""

  total: int = 0
  used: int = 0  # Handed to compute_map (including false positives on other videos).
  unknown_label: int = 0  # Label not a GT class name: ignored.
  class_without_gt: int = 0  # A GT class with no GT in the subset: ignored by compute_map.
  other_subset: int = 0  # Video of another subset of the GT file: false positives.
  video_not_in_gt: int = 0  # Video unknown to the GT file: false positives.
  inverted: int = 0  # Used, with end < start: scored as ActivityNet's evaluator does.
  unknown_labels: collections.Counter = dataclasses.field(default_factory=collections.Counter)


def read_predictions(
  path: str,
  *,
  annotations: AnnotationSet,
  selected: Sequence[VideoRecord],
  gt_labels: set[int],
  strict: bool = False,
) -> tuple[metrics.Predictions, PredictionCounts]:
  """Parses and validates a results file, mapping its videos and labels onto the ground truth."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'prediction file {path} does not exist')
  with open(path, encoding='utf-8') as f:
    try:
      data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f'{path}: not a valid JSON file ({e})') from None
  if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
    raise ValueError(f'{path}: expected a top-level object with a "results" mapping of video ids')
  match = _gt_id_matcher([v.video_id for v in annotations.videos])
  in_subset = {v.video_id for v in selected}
  class_index = {name: k for k, name in enumerate(annotations.class_names)}
  counts = PredictionCounts()
  rows = []
  for video_id, detections in data['results'].items():
    where = f'{path}: video {video_id!r}'
    if not isinstance(detections, list):
      raise ValueError(f'{where}: expected a list of detections, got {type(detections).__name__}')
    gt_id = match(video_id)
    for i, det in enumerate(detections):
      at = f'{where} detection {i}'
      if not isinstance(det, dict) or not {'segment', 'label', 'score'} <= set(det):
        raise ValueError(f'{at}: expected an object with "segment", "label" and "score"')
      segment = det['segment']
      if not isinstance(segment, list | tuple) or len(segment) != 2:
        raise ValueError(f'{at}: field "segment" must be [start, end], got {segment!r}')
      start = _number(segment[0], where=at, field='segment')
      end = _number(segment[1], where=at, field='segment')
      if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f'{at}: field "segment" is not finite ({segment!r})')
      if end < start and strict:
        raise ValueError(
          f'{at}: field "segment" is inverted (end < start): {segment!r} (without --strict '
          "it is scored as a false positive, as ActivityNet's evaluator does)"
        )
      score = _number(det['score'], where=at, field='score')
      if math.isnan(score):
        raise ValueError(f'{at}: field "score" is NaN')
      label = det['label']
      if not isinstance(label, str):
        raise ValueError(f'{at}: field "label" must be a class name, got {label!r}')
      counts.total += 1
      if label not in class_index:
        counts.unknown_label += 1
        counts.unknown_labels[label] += 1
        continue
      if class_index[label] not in gt_labels:
        counts.class_without_gt += 1
        continue
      if gt_id is None:
        counts.video_not_in_gt += 1
      elif gt_id not in in_subset:
        counts.other_subset += 1
      counts.used += 1
      counts.inverted += end < start
      rows.append((gt_id or video_id, start, end, class_index[label], score))
  return metrics.Predictions.from_rows(rows), counts


def _select(annotations: AnnotationSet, subset: str | None) -> tuple[list[VideoRecord], str]:
  """The evaluated videos; without --subset the file must have a single subset."""
  if subset is None:
    present = sorted({v.subset for v in annotations.videos}, key=str.lower)
    if len({s.lower() for s in present}) > 1:
      raise ValueError(
        f'{annotations.source}: the ground truth has subsets {present}: choose with --subset'
      )
    return list(annotations.videos), ','.join(present)
  return annotations.subset([s for s in subset.split(',') if s]), subset


@dataclasses.dataclass(frozen=True)
class ScoredInputs:
  """A ground-truth file and a results file, read and matched up as every score of them is."""

  annotations: AnnotationSet
  selected: list[VideoRecord]  # The GT videos of the evaluated subset(s).
  subset_name: str
  gt: metrics.GroundTruth
  preds: metrics.Predictions
  counts: Any  # What read_predictions counted (used, ignored, inverted, ...).


def read_inputs(
  gt_path: str,
  pred_path: str,
  *,
  subset: str | None = None,
  video_info_csv: str | None = None,
  action_names_csv: str | None = None,
  gt_cleaning: annotations_lib.Cleaning = 'none',
  strict: bool = False,
) -> ScoredInputs:
  """Both files through the loaders, the subset choice and the prediction filtering.

  ``strict``: an inverted detection (end < start) is an error instead of a counted false positive.
  """
  class_names = None
  if action_names_csv is not None and video_info_csv is None:
    class_names = annotations_lib.read_class_names(action_names_csv)
    action_names_csv = None
  annotations = annotations_lib.load_annotations(
    gt_path,
    video_info_csv=video_info_csv,
    action_names_csv=action_names_csv,
    class_names=class_names,
    cleaning=gt_cleaning,
  )
  selected, subset_name = _select(annotations, subset)
  gt = metrics.GroundTruth.from_rows(
    (v.video_id, float(s), float(e), int(k))
    for v in selected
    for (s, e), k in zip(v.segments_sec, v.labels)
  )
  if len(gt) == 0:
    raise ValueError(f'{annotations.source}: subset {subset_name!r} has no ground-truth segments')
  preds, counts = read_predictions(
    pred_path,
    annotations=annotations,
    selected=selected,
    gt_labels=set(gt.labels.tolist()),
    strict=strict,
  )
  return ScoredInputs(annotations, selected, subset_name, gt, preds, counts)


def evaluate_files(
  gt_path: str,
  pred_path: str,
  *,
  tious: np.ndarray,
  gt_cleaning: annotations_lib.Cleaning = 'none',
  **read_options,
) -> tuple[metrics.MAPResult, dict]:
  """Loads both files (:func:`read_inputs`, whose options it takes) and computes the metrics;
  returns the result and the JSON report."""
  inputs = read_inputs(gt_path, pred_path, gt_cleaning=gt_cleaning, **read_options)
  annotations, selected, subset_name = inputs.annotations, inputs.selected, inputs.subset_name
  gt, preds, counts = inputs.gt, inputs.preds, inputs.counts
  result = metrics.compute_map(gt, preds, tious, class_names=annotations.class_names)
  report = result.to_json_dict()
  report.update(
    gt_file=gt_path,
    pred_file=pred_path,
    subset=subset_name,
    gt_cleaning=gt_cleaning,
    counts={
      'gt_videos': len(selected),
      'gt_videos_with_segments': int(sum(len(v.labels) > 0 for v in selected)),
      'gt_segments': len(gt),
      'gt_classes': len(result.class_ids),
      'gt_skipped': dict(annotations.skipped),
      'predictions_total': counts.total,
      'predictions_used': counts.used,
      'predictions_unknown_label': counts.unknown_label,
      'predictions_class_without_gt': counts.class_without_gt,
      'predictions_other_subset': counts.other_subset,
      'predictions_video_not_in_gt': counts.video_not_in_gt,
      'predictions_inverted': counts.inverted,
    },
    unknown_labels=dict(counts.unknown_labels.most_common()),
  )
  return result, report


def summary_text(report: dict) -> str:
  """The counts of a report, in words, for the command line."""
  c = report['counts']
  lines = [
    f'ground truth: {c["gt_segments"]} segments of {c["gt_classes"]} classes in '
    f'{c["gt_videos"]} videos (subset {report["subset"]}, cleaning {report["gt_cleaning"]}); '
    f'skipped while loading: {c["gt_skipped"] or "none"}',
    f'predictions: {c["predictions_used"]} of {c["predictions_total"]} used '
    f'({c["predictions_other_subset"]} on videos of other subsets and '
    f'{c["predictions_video_not_in_gt"]} on videos not in the ground truth count as false '
    'positives)',
  ]
  if c['predictions_unknown_label']:
    names = list(report['unknown_labels'])
    shown = ', '.join(repr(n) for n in names[:10]) + (', ...' if len(names) > 10 else '')
    lines.append(
      f'ignored: {c["predictions_unknown_label"]} predictions with labels that are not GT '
      f'classes ({len(names)} names: {shown})'
    )
  if c.get('predictions_inverted'):
    lines.append(
      f'scored: {c["predictions_inverted"]} predictions with end < start, as the official '
      'ActivityNet evaluator scores them (false positives); --strict rejects them'
    )
  if c['predictions_class_without_gt']:
    lines.append(
      f'ignored: {c["predictions_class_without_gt"]} predictions of classes without GT in the '
      'subset'
    )
  lines.append(f'average mAP: {report["average_mAP"]!r}')
  return '\n'.join(lines)
