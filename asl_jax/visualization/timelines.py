"""Detection timelines: ground truth above the top-scoring detections, coloured by class."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from asl_jax.visualization import render


@dataclasses.dataclass(frozen=True)
class Timeline:
  """One video's ground truth and detections, in seconds."""

  video_id: str
  duration: float  # Seconds.
  gt_segments: np.ndarray  # [G, 2] seconds.
  gt_labels: np.ndarray  # [G] class ids.
  segments: np.ndarray  # [D, 2] detections, seconds.
  scores: np.ndarray  # [D].
  labels: np.ndarray  # [D] class ids.


def assign_lanes(segments: np.ndarray) -> np.ndarray:
  """Greedy interval packing: each segment's lane, so that segments of a lane do not overlap."""
  lanes = np.zeros(len(segments), np.int64)
  ends: list[float] = []
  for i in np.argsort(segments[:, 0], kind='stable') if len(segments) else []:
    s, e = segments[i]
    free = [k for k, end in enumerate(ends) if end <= s]
    if free:
      lanes[i] = free[0]
      ends[free[0]] = e
    else:
      lanes[i] = len(ends)
      ends.append(e)
  return lanes


def top_detections(timeline: Timeline, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The ``top_k`` highest-scoring detections (segments, scores, labels), best first."""
  order = np.argsort(-np.asarray(timeline.scores), kind='stable')[:top_k]
  return timeline.segments[order], timeline.scores[order], timeline.labels[order]


def _draw_lanes(ax, segments, labels, colors, y0, *, alphas=None, texts=None) -> int:
  lanes = assign_lanes(segments)
  for i, ((s, e), lab) in enumerate(zip(segments, labels)):
    y = y0 + lanes[i]
    alpha = 1.0 if alphas is None else alphas[i]
    ax.barh(y, e - s, left=s, height=0.8, color=colors[int(lab)], alpha=alpha, edgecolor='0.2')
    if texts is not None:
      ax.text(s, y, f' {texts[i]}', va='center', ha='left', fontsize=7, clip_on=True)
  return int(lanes.max()) + 1 if len(lanes) else 1


def plot_timelines(
  timelines: Sequence[Timeline], class_names: Sequence[str], *, top_k: int = 10
) -> Figure:
  """One panel per video: ground truth lanes on top, the ``top_k`` detections below.

  Detections are drawn with opacity growing with their score and labelled with it; overlapping
  bars are spread over lanes. The legend lists every class that appears.
  """
  colors = render.class_colors(len(class_names))
  rows = []
  for tl in timelines:
    segs, scores, labels = top_detections(tl, top_k)
    rows.append((tl, segs, scores, labels))
  heights = [
    (int(assign_lanes(np.asarray(tl.gt_segments)).max(initial=0)) + 1)
    + (int(assign_lanes(segs).max(initial=0)) + 1)
    for tl, segs, _, _ in rows
  ]
  fig = render.new_figure(11, 1.2 + sum(0.32 * h + 0.9 for h in heights))
  axes = fig.subplots(max(len(rows), 1), 1, squeeze=False, height_ratios=heights or None)[:, 0]
  present = set()
  for ax, (tl, segs, scores, labels) in zip(axes, rows):
    gt = np.asarray(tl.gt_segments, np.float64).reshape(-1, 2)
    n_gt = _draw_lanes(ax, gt, tl.gt_labels, colors, 0)
    top = scores.max() if len(scores) else 1.0
    alphas = 0.35 + 0.65 * (scores / top if top > 0 else np.ones_like(scores))
    n_det = _draw_lanes(
      ax, segs, labels, colors, n_gt + 1, alphas=alphas, texts=[f'{s:.2f}' for s in scores]
    )
    ax.axhline(n_gt, color='0.3', lw=0.8)
    ax.set_yticks([(n_gt - 1) / 2, n_gt + 1 + (n_det - 1) / 2])
    ax.set_yticklabels(['ground truth', f'top {len(segs)}\ndetections'])
    ax.set_ylim(n_gt + n_det + 0.6, -0.6)
    ax.set_xlim(0, tl.duration)
    ax.set_xlabel('time (s)')
    ax.set_title(f'{tl.video_id} ({tl.duration:.1f} s): {len(gt)} actions', fontsize=10)
    ax.grid(axis='x', alpha=0.3)
    present |= {int(x) for x in tl.gt_labels} | {int(x) for x in labels}
  if not rows:
    render.no_data(axes[0], 'no video to show')
  handles = [Patch(color=colors[c], label=class_names[c]) for c in sorted(present)]
  if handles:
    fig.legend(
      handles=handles,
      loc='outside right upper',
      title='class',
      fontsize=8,
      title_fontsize=9,
    )
  fig.suptitle('Ground truth vs. top detections (opacity and label: score)')
  return fig
