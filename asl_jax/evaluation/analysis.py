"""Where detection errors come from: a DETAD-style breakdown of false positives and negatives.

After Alwassel et al., "Diagnosing Error in Temporal Action Detectors" (ECCV 2018). At one tIoU
threshold ``a`` (0.5 by default), the detections of each class are taken in descending score
order, as many as ``k`` times the class's ground-truth count (``k = 1 .. 10``: the top-kG).
A detection is a true positive when it reaches tIoU ``a`` with a ground truth of its class not
yet taken by a higher-scored detection (the mAP's greedy rule); every other detection is the
first that applies of:

  ``double_detection``  tIoU >= a with a ground truth of its class, already taken;
  ``wrong_label``       tIoU >= a with a ground truth of another class;
  ``localization``      0.1 <= tIoU < a with a ground truth of its class;
  ``confusion``         0.1 <= tIoU < a with a ground truth of another class;
  ``background``        tIoU < 0.1 with every ground truth of the video.

A ground truth is a false negative when no detection of the top-10G takes it; false negatives are
counted by action length (DETAD's buckets in seconds) and by the number of instances of its class
in its video.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

from asl_jax.evaluation import metrics, scoring

FP_KINDS = ('double_detection', 'wrong_label', 'localization', 'confusion', 'background')
LOW_TIOU = 0.1  # Below this a detection touches nothing (DETAD's background threshold).
TOP_K = tuple(range(1, 11))
# DETAD's buckets: action length in seconds, instances (of the class) per video.
LENGTH_BUCKETS = (('XS', 0.0, 3.0), ('S', 3.0, 6.0), ('M', 6.0, 18.0), ('L', 18.0, 36.0))
LENGTH_BUCKETS += (('XL', 36.0, np.inf),)
INSTANCE_BUCKETS = (('XS', 1, 1), ('S', 2, 4), ('M', 5, 8), ('L', 9, 16), ('XL', 17, np.inf))


def _tiou(s: float, e: float, gs: np.ndarray, ge: np.ndarray) -> np.ndarray:
  inter = (np.minimum(e, ge) - np.maximum(s, gs)).clip(0)
  union = (e - s) + (ge - gs) - inter
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(union > 0, inter / union, 0.0)


def classify_detections(
  gt: metrics.GroundTruth, preds: metrics.Predictions, *, tiou: float = 0.5, top_k: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Labels each kept detection and finds the ground truths they take.

  Returns:
    ``kind`` [P] str: 'true_positive', a key of :data:`FP_KINDS`, or '' for detections outside
    the top-``top_k``G of their class (and of classes without ground truth); ``rank_g`` [P]
    float: rank within the class divided by the class's GT count (detection in the top-kG iff
    ``rank_g < k``); ``taken`` [G] bool: ground truths matched by a kept detection.
  """
  kind = np.full(len(preds), '', dtype=object)
  rank_g = np.full(len(preds), np.inf)
  taken = np.zeros(len(gt), bool)
  by_video: dict[str, np.ndarray] = collections.defaultdict(lambda: np.zeros(0, int))
  for vid in np.unique(gt.video_ids):
    by_video[vid] = np.flatnonzero(gt.video_ids == vid)
  counts = collections.Counter(gt.labels.tolist())
  for label, num_gt in counts.items():
    idx = np.flatnonzero(preds.labels == label)
    idx = idx[np.argsort(-preds.scores[idx], kind='stable')][: top_k * num_gt]
    rank_g[idx] = np.arange(len(idx)) / num_gt
    for p in idx:
      g = by_video[preds.video_ids[p]]
      iou = _tiou(preds.starts[p], preds.ends[p], gt.starts[g], gt.ends[g])
      same = gt.labels[g] == label
      free = same & ~taken[g] & (iou >= tiou)
      if free.any():
        best = np.flatnonzero(free)[np.argmax(iou[free])]  # First of the highest tIoU.
        taken[g[best]] = True
        kind[p] = 'true_positive'
      elif (same & (iou >= tiou)).any():
        kind[p] = 'double_detection'
      elif (~same & (iou >= tiou)).any():
        kind[p] = 'wrong_label'
      elif (same & (iou >= LOW_TIOU)).any():
        kind[p] = 'localization'
      elif (~same & (iou >= LOW_TIOU)).any():
        kind[p] = 'confusion'
      else:
        kind[p] = 'background'
  return kind, rank_g, taken


def length_bucket(seconds: float) -> str:
  """DETAD's length bucket: (lo, hi] seconds; zero-length actions count as XS."""
  return next((name for name, _, hi in LENGTH_BUCKETS if seconds <= hi), LENGTH_BUCKETS[-1][0])


def instance_bucket(count: int) -> str:
  """DETAD's bucket of the number of instances of a class in one video: [lo, hi]."""
  return next(name for name, _, hi in INSTANCE_BUCKETS if count <= hi)


def analyze(
  gt: metrics.GroundTruth,
  preds: metrics.Predictions,
  *,
  tiou: float = 0.5,
  class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
  """The breakdown as JSON: false positives of the top-kG (k = 1..10), false negatives of the
  top-10G by length and by instances per video, and per class at the top-1G."""
  kind, rank_g, taken = classify_detections(gt, preds, tiou=tiou, top_k=max(TOP_K))
  profile = {}
  for k in TOP_K:
    kept = rank_g < k
    c = collections.Counter(kind[kept].tolist())
    profile[f'top_{k}G'] = {
      'detections': int(kept.sum()),
      'true_positive': c['true_positive'],
      **{name: c[name] for name in FP_KINDS},
    }
  instances = collections.Counter(zip(gt.video_ids.tolist(), gt.labels.tolist()))
  by_length = {name: {'gt': 0, 'missed': 0} for name, _, _ in LENGTH_BUCKETS}
  by_instances = {name: {'gt': 0, 'missed': 0} for name, _, _ in INSTANCE_BUCKETS}
  for i in range(len(gt)):
    for table, key in (
      (by_length, length_bucket(gt.ends[i] - gt.starts[i])),
      (by_instances, instance_bucket(instances[gt.video_ids[i], gt.labels[i]])),
    ):
      table[key]['gt'] += 1
      table[key]['missed'] += int(not taken[i])
  for table in (by_length, by_instances):
    for row in table.values():
      row['rate'] = row['missed'] / row['gt'] if row['gt'] else None
  per_class = {}
  top1 = rank_g < 1
  for label in sorted(set(gt.labels.tolist())):
    c = collections.Counter(kind[top1 & (preds.labels == label)].tolist())
    name = class_names[label] if class_names is not None and label < len(class_names) else label
    per_class[str(name)] = {'true_positive': c['true_positive'], **{k: c[k] for k in FP_KINDS}}
  return {
    'tiou': tiou,
    'ground_truth': len(gt),
    'false_positives': profile,
    'false_negatives': {
      'missed': int((~taken).sum()),
      'rate': float((~taken).mean()) if len(gt) else None,
      'by_length_sec': by_length,
      'by_instances_per_video': by_instances,
      'detections_considered': 'top-10G of each class',
    },
    'per_class_top_1G': per_class,
    'buckets': {
      'length_sec': {n: [lo, hi if np.isfinite(hi) else None] for n, lo, hi in LENGTH_BUCKETS},
      'instances': {n: [lo, hi if np.isfinite(hi) else None] for n, lo, hi in INSTANCE_BUCKETS},
    },
  }


def format_summary(result: dict[str, Any]) -> str:
  """A few lines for the command line: the top-1G and top-10G profiles and the miss rates."""
  lines = [f'error analysis at tIoU {result["tiou"]:g} (DETAD categories):']
  for key in ('top_1G', 'top_10G'):
    row = result['false_positives'][key]
    fps = ', '.join(f'{k} {row[k]}' for k in FP_KINDS)
    lines.append(
      f'  {key}: {row["detections"]} detections, {row["true_positive"]} true positives; {fps}'
    )
  fn = result['false_negatives']
  for title, table in (('length', 'by_length_sec'), ('instances/video', 'by_instances_per_video')):
    cells = ', '.join(
      f'{name} {row["missed"]}/{row["gt"]}' for name, row in fn[table].items() if row['gt']
    )
    lines.append(f'  missed by {title}: {cells}')
  return '\n'.join(lines)


def analyze_files(gt_path: str, pred_path: str, *, tiou: float = 0.5, **read_options) -> dict:
  """:func:`analyze` of two files, read as the mAP reads them
  (:func:`asl_jax.evaluation.scoring.read_inputs`, whose options it takes)."""
  inputs = scoring.read_inputs(gt_path, pred_path, **read_options)
  return analyze(inputs.gt, inputs.preds, tiou=tiou, class_names=inputs.annotations.class_names)
