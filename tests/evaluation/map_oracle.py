"""Test oracle: a literal loop-based float64 NumPy transcription of the ANETdetection evaluator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Written from the reference (ActivityNet `eval_detection.py` / ActionFormer `ANETdetection`)
# as described in docs/reference-eval-nms.md §4, with one deliberate change: every sort is
# stable (ties broken by input order, earlier first), because the references' unstable
# `argsort()[::-1]` makes tie order platform-dependent. It shares no code with
# `asl_jax.evaluation.metrics`, so the tests compare two independent implementations.


def segment_iou(target: Sequence[float], candidates: np.ndarray) -> np.ndarray:
  """tIoU of one [start, end] with each row of candidates [N, 2]; no epsilon (0/0 = NaN)."""
  tt1 = np.maximum(target[0], candidates[:, 0])
  tt2 = np.minimum(target[1], candidates[:, 1])
  inter = (tt2 - tt1).clip(0)
  union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
  with np.errstate(divide='ignore', invalid='ignore'):
    return inter.astype(float) / union


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
  """VOC2011 all-point interpolated AP, as in the references."""
  mprec = np.hstack([[0], prec, [0]])
  mrec = np.hstack([[0], rec, [1]])
  for i in range(len(mprec) - 1)[::-1]:
    mprec[i] = max(mprec[i], mprec[i + 1])
  idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
  return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _stable_desc_order(values: Sequence[float]) -> list[int]:
  """Indices by descending value, NaN first (as after the reference's reversal), ties in order."""
  return sorted(range(len(values)), key=lambda i: (0 if math.isnan(values[i]) else 1, -values[i]))


def compute_average_precision_detection(
  gt_rows: list[tuple], pred_rows: list[tuple], tious: Sequence[float]
) -> np.ndarray:
  """AP [T] of one class. gt_rows: (video, start, end); pred_rows: (video, start, end, score)."""
  ap = np.zeros(len(tious))
  if not pred_rows:
    return ap
  npos = float(len(gt_rows))
  lock_gt = np.ones((len(tious), len(gt_rows))) * -1
  order = sorted(range(len(pred_rows)), key=lambda i: -pred_rows[i][3])  # stable
  preds = [pred_rows[i] for i in order]
  tp = np.zeros((len(tious), len(preds)))
  fp = np.zeros((len(tious), len(preds)))
  gt_by_video: dict[str, list[int]] = {}
  for j, row in enumerate(gt_rows):
    gt_by_video.setdefault(row[0], []).append(j)
  for idx, (video, start, end, _) in enumerate(preds):
    if video not in gt_by_video:
      fp[:, idx] = 1
      continue
    gt_idx = gt_by_video[video]
    segs = np.array([[gt_rows[j][1], gt_rows[j][2]] for j in gt_idx], dtype=np.float64)
    tiou_arr = segment_iou([start, end], segs)
    sorted_idx = _stable_desc_order(list(tiou_arr))
    for tidx, thr in enumerate(tious):
      for jdx in sorted_idx:
        if tiou_arr[jdx] < thr:
          fp[tidx, idx] = 1
          break
        if lock_gt[tidx, gt_idx[jdx]] >= 0:
          continue
        tp[tidx, idx] = 1
        lock_gt[tidx, gt_idx[jdx]] = idx
        break
      if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
        fp[tidx, idx] = 1
  tp_cumsum = np.cumsum(tp, axis=1).astype(float)
  fp_cumsum = np.cumsum(fp, axis=1).astype(float)
  recall_cumsum = tp_cumsum / npos
  precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
  for tidx in range(len(tious)):
    ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
  return ap


def compute_topkx_recall_detection(
  gt_rows: list[tuple], pred_rows: list[tuple], tious: Sequence[float], top_k: Sequence[int]
) -> np.ndarray:
  """ActionFormer's Recall@kx of one class, [T, K]: per GT video, its top k * n_gt predictions."""
  if not pred_rows:
    return np.zeros((len(tious), len(top_k)))
  tp = np.zeros((len(tious), len(top_k)))
  gt_by_video: dict[str, list[tuple]] = {}
  for row in gt_rows:
    gt_by_video.setdefault(row[0], []).append(row)
  n_gts = 0
  for video, this_gt in gt_by_video.items():
    n_gts += len(this_gt)
    this_pred = [row for row in pred_rows if row[0] == video]
    if not this_pred:
      continue
    order = sorted(range(len(this_pred)), key=lambda i: -this_pred[i][3])  # stable
    top = [this_pred[i] for i in order[: max(top_k) * len(this_gt)]]
    gt_segs = np.array([[r[1], r[2]] for r in this_gt], dtype=np.float64)
    tiou = np.stack([segment_iou([r[1], r[2]], gt_segs) for r in top])
    for tidx, thr in enumerate(tious):
      for kidx, k in enumerate(top_k):
        tp[tidx, kidx] += ((tiou[: k * len(this_gt)] >= thr).sum(axis=0) > 0).sum()
  return tp / n_gts


def evaluate(
  gt_rows: Sequence[tuple],
  pred_rows: Sequence[tuple],
  tious: Sequence[float],
  top_k: Sequence[int] = (1, 5),
) -> dict:
  """Per-class AP, mAP and Recall@kx over the classes present in the GT (sorted label ids).

  gt_rows: (video, start, end, label); pred_rows: (video, start, end, label, score). Predictions
  whose label has no GT are dropped.
  """
  class_ids = sorted({int(r[3]) for r in gt_rows})
  ap = np.zeros((len(tious), len(class_ids)))
  recall = np.zeros((len(tious), len(top_k), len(class_ids)))
  for c, label in enumerate(class_ids):
    gt_c = [(r[0], float(r[1]), float(r[2])) for r in gt_rows if int(r[3]) == label]
    pred_c = [
      (r[0], float(r[1]), float(r[2]), float(r[4])) for r in pred_rows if int(r[3]) == label
    ]
    ap[:, c] = compute_average_precision_detection(gt_c, pred_c, tious)
    recall[:, :, c] = compute_topkx_recall_detection(gt_c, pred_c, tious, top_k)
  mean_ap = ap.mean(axis=1)
  return {
    'class_ids': np.array(class_ids),
    'ap': ap,
    'map': mean_ap,
    'average_map': float(mean_ap.mean()),
    'recall': recall.mean(axis=2),
  }
