"""Precision-recall curves per class and tIoU, and per-class AP bars, from the mAP's own matching.

The TP flags come from :func:`asl_jax.evaluation.metrics.match_detections`, the routine behind
``compute_map`` (ActivityNet's greedy rule, stable score order, NaN IoU first), so the area under
each curve, interpolated as VOC does, is the per-class AP that ``compute_map`` reports.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from asl_jax.evaluation.metrics import GroundTruth, Predictions, match_detections
from asl_jax.visualization import render


@dataclasses.dataclass(frozen=True)
class PRCurves:
  """Precision and recall after each detection (score order), per tIoU and class."""

  tious: np.ndarray  # [T].
  class_ids: np.ndarray  # [C] label ids present in the ground truth.
  precision: list[list[np.ndarray]]  # [T][C] -> [n_c] precision after each detection of class c.
  recall: list[list[np.ndarray]]  # [T][C] -> [n_c].
  ap: np.ndarray  # [T, C] VOC all-point interpolated AP (equals compute_map's per-class AP).


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
  """VOC all-point AP: area under the precision envelope, summed where recall changes."""
  mprec = np.concatenate([[0.0], precision, [0.0]])
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mprec = np.maximum.accumulate(mprec[::-1])[::-1]
  changed = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[changed + 1] - mrec[changed]) * mprec[changed + 1]))


def precision_recall_curves(
  gt: GroundTruth, preds: Predictions, tious: Sequence[float]
) -> PRCurves:
  """Per tIoU and GT class: precision and recall after each of the class's detections."""
  matching = match_detections(gt, preds, tious, recall_topk=())
  tious, class_ids = matching.tious, matching.class_ids
  precision = [[None] * len(class_ids) for _ in tious]
  recall = [[None] * len(class_ids) for _ in tious]
  ap = np.zeros((len(tious), len(class_ids)))
  for c in range(len(class_ids)):
    npos = matching.npos[c]
    tp = matching.class_tp(c)
    tp_cum = np.cumsum(tp, axis=1).astype(np.float64)
    fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
    for t in range(len(tious)):
      with np.errstate(divide='ignore', invalid='ignore'):
        precision[t][c] = tp_cum[t] / (tp_cum[t] + fp_cum[t])
      recall[t][c] = tp_cum[t] / npos
      ap[t, c] = interpolated_ap(precision[t][c], recall[t][c]) if tp.shape[1] else 0.0
  return PRCurves(tious, class_ids, precision, recall, ap)


def mean_interpolated_precision(curves: PRCurves, t: int, grid: np.ndarray) -> np.ndarray:
  """Mean over classes of the precision envelope (max precision at recall >= r) on ``grid``."""
  out = np.zeros((len(curves.class_ids), len(grid)))
  for c in range(len(curves.class_ids)):
    prec, rec = curves.precision[t][c], curves.recall[t][c]
    if len(prec):
      envelope = np.maximum.accumulate(prec[::-1])[::-1]
      pos = np.searchsorted(rec, grid, side='left')
      out[c] = np.where(pos < len(prec), envelope[np.minimum(pos, len(prec) - 1)], 0.0)
  return out.mean(axis=0)


def _tiou_colors(num: int):
  cmap = mpl.colormaps['viridis']
  return [cmap(x) for x in np.linspace(0.0, 0.85, num)]


def plot_precision_recall(
  curves: PRCurves, class_names: Sequence[str], *, max_classes: int = 12
) -> Figure:
  """Left: the class-averaged interpolated PR curve per tIoU (legend: mAP). Right: per class."""
  shown = min(len(curves.class_ids), max_classes)
  ncols = min(4, max(shown, 1))
  nrows = max(1, math.ceil(shown / ncols))
  fig = render.new_figure(5.5 + 2.9 * ncols, max(4.8, 2.5 * nrows + 0.8))
  left, right = fig.subfigures(1, 2, width_ratios=[5.5, 2.9 * ncols])
  colors = _tiou_colors(len(curves.tious))
  ax = left.subplots()
  grid = np.linspace(0, 1, 101)
  for t, thr in enumerate(curves.tious):
    mean_ap = curves.ap[t].mean() if curves.ap.size else 0.0
    ax.plot(
      grid,
      mean_interpolated_precision(curves, t, grid),
      color=colors[t],
      label=f'tIoU {thr:.2f} (mAP {100 * mean_ap:.1f}%)',
    )
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  ax.set_xlabel('recall')
  ax.set_ylabel('interpolated precision (mean over classes)')
  ax.set_title(f'All {len(curves.class_ids)} classes')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='upper right')
  axes = right.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
  for i, a in enumerate(axes.flat):
    if i >= shown:
      a.set_axis_off()
      continue
    for t in range(len(curves.tious)):
      rec, prec = curves.recall[t][i], curves.precision[t][i]
      a.plot(np.r_[0.0, rec], np.r_[prec[:1] if len(prec) else [0.0], prec], color=colors[t])
    a.set_title(
      f'{class_names[int(curves.class_ids[i])]} (AP {100 * curves.ap[:, i].mean():.1f}%)',
      fontsize=9,
    )
    a.set_xlim(0, 1)
    a.set_ylim(0, 1.02)
    a.grid(alpha=0.3)
    if i % ncols == 0:
      a.set_ylabel('precision')
    if i >= shown - ncols:
      a.set_xlabel('recall')
  more = f', first {shown} of {len(curves.class_ids)}' if shown < len(curves.class_ids) else ''
  right.suptitle(f'Per class (colours: tIoU as on the left{more})', fontsize=10)
  fig.suptitle('Precision-recall of the detections, per tIoU threshold')
  return fig


def plot_class_ap(
  per_class_ap: np.ndarray,
  class_ids: Sequence[int],
  tious: Sequence[float],
  class_names: Sequence[str],
  *,
  max_rows: int = 40,
) -> Figure:
  """Horizontal bars: each class's AP averaged over tIoUs, with a dot per tIoU.

  ``per_class_ap`` is ``[C, T]`` (``MAPResult.per_class_ap``). With more than ``max_rows`` classes
  only the best and worst ``max_rows // 2`` are drawn.
  """
  per_class_ap = np.asarray(per_class_ap, np.float64).reshape(len(class_ids), len(tious))
  mean = per_class_ap.mean(axis=1)
  order = np.argsort(-mean, kind='stable')
  title = f'Average precision per class ({len(class_ids)} classes'
  if len(order) > max_rows:
    order = np.r_[order[: max_rows // 2], order[-(max_rows // 2) :]]
    title += f'; best and worst {max_rows // 2}'
  fig = render.new_figure(8.5, 1.6 + 0.3 * len(order))
  ax = fig.subplots()
  y = np.arange(len(order))
  names = [class_names[int(class_ids[i])] for i in order]
  ax.barh(y, 100 * mean[order], color='0.78', label='mean over tIoUs')
  for t, (thr, color) in enumerate(zip(tious, _tiou_colors(len(tious)))):
    ax.plot(100 * per_class_ap[order, t], y, 'o', ms=4, color=color, label=f'tIoU {thr:.2f}')
  ax.axvline(100 * mean.mean(), color='k', ls='--', lw=1, label=f'mAP {100 * mean.mean():.1f}%')
  ax.set_yticks(y)
  ax.set_yticklabels(names, fontsize=8)
  ax.set_ylim(len(order) - 0.5, -0.5)
  ax.set_xlim(0, 100)
  ax.set_xlabel('AP (%)')
  ax.grid(axis='x', alpha=0.3)
  ax.legend(fontsize=8, loc='lower right')
  ax.set_title(title + ', sorted by mean AP)')
  return fig
