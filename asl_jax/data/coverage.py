"""Label-assignment coverage: ground-truth actions that training never gives a positive point.

An action is *covered* when, in the training view of its video, at least one valid pyramid point
carries its label in the classification target of :func:`asl_jax.ops.assignment.assign_targets`
(the function the training objective calls). Every other action is reported with the first
reason that applies:

  ``outside_features``    the action does not overlap the feature sequence ``[0, T]`` at all;
  ``cut_by_max_seq_len``  the video is longer than ``max_seq_len`` and no training window keeps
                          ``trunc_thresh`` of the action (an action longer than
                          ``max_seq_len / trunc_thresh``);
  ``cut_by_crop``         the same for the random crops of shorter videos (``data.crop_ratio``);
  ``between_points``      no point of any level lies strictly inside it (shorter than one step);
  ``outside_ranges``      points lie inside it but none has its distances within its level's
                          regression range;
  ``centre_sampling``     in range only at points outside the centre region
                          (``center_sample_radius`` strides around the action's centre): too
                          short for centre sampling at its level;
  ``hidden_by_shorter``   it is a candidate, but at every such point a shorter overlapping action
                          wins the point.

The training view: a video of ``T <= max_seq_len`` steps is seen whole, padded; a longer one is
seen through windows of ``max_seq_len`` steps, and the assignment is evaluated on the whole
video's grid (the assignment of a point depends only on the actions around it, so a window holding
the action gives the same answer; actions that no window can hold are ``cut_by_max_seq_len``).
Actions are clipped to ``[0, T]`` as the batcher clips them to its window.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.configuration import parse_subsets
from asl_jax.data import pipeline
from asl_jax.data.feature_formats import FeatureReader
from asl_jax.ops import assignment
from asl_jax.ops import segments as seg_ops

logger = logging.getLogger(__name__)

REASONS = {
  'outside_features': 'does not overlap the features [0, T]',
  'cut_by_max_seq_len': 'no max_seq_len window keeps trunc_thresh of it',
  'cut_by_crop': 'no crop of data.crop_ratio keeps trunc_thresh of it',
  'between_points': 'no pyramid point strictly inside (shorter than one step)',
  'outside_ranges': 'inside points, but outside every level regression range',
  'centre_sampling': 'too short for centre sampling at its level',
  'hidden_by_shorter': 'every point it could take goes to a shorter action',
}
# Length buckets in feature-grid steps (upper bounds); the last is open.
BUCKET_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WARN_FRACTION = 0.01  # Training warns when more than this share of actions is uncovered.


@dataclasses.dataclass(frozen=True)
class AssignmentSettings:
  """What decides coverage: the pyramid, the assignment rule and the training windows."""

  regression_ranges: tuple[tuple[float, float], ...]
  center_sample_radius: float
  max_seq_len: int
  trunc_thresh: float
  crop_ratio: tuple[float, ...] = ()
  scale_factor: int = 2

  @classmethod
  def from_config(cls, config) -> AssignmentSettings:
    return cls(
      regression_ranges=tuple((float(lo), float(hi)) for lo, hi in config.model.regression_ranges),
      center_sample_radius=float(config.train.center_sample_radius),
      max_seq_len=int(config.data.max_seq_len),
      trunc_thresh=float(config.data.trunc_thresh),
      crop_ratio=tuple(float(r) for r in config.data.crop_ratio),
      scale_factor=int(config.model.scale_factor),
    )


@dataclasses.dataclass(frozen=True)
class ActionCoverage:
  """One ground-truth action and whether training gives it a positive point."""

  video_id: str
  label: int
  length: float  # Grid steps.
  reason: str  # '' when covered, else a key of REASONS.


def bucket_name(length: float) -> str:
  """The length bucket of an action of ``length`` grid steps, e.g. ``'4-8'``, ``'>=256'``."""
  lo = 0
  for hi in BUCKET_EDGES:
    if length < hi:
      return f'{lo}-{hi}'
    lo = hi
  return f'>={lo}'


def bucket_names() -> list[str]:
  lows = (0, *BUCKET_EDGES)
  return [f'{lo}-{hi}' for lo, hi in zip(lows, BUCKET_EDGES)] + [f'>={BUCKET_EDGES[-1]}']


@functools.partial(jax.jit, static_argnames=('radius',))
def _tests(points, segments, segment_valid, point_valid, *, radius: float):
  """Per action: covered among all; candidate alone (real rule; anywhere inside; any range)."""
  m = segments.shape[0]
  full = assignment.assign_targets(
    points,
    segments,
    jnp.arange(m),  # One class per action: the multi-hot target then names each tied action.
    segment_valid,
    num_classes=m,
    center_sample_radius=radius,
  )
  covered = jnp.any((full['cls'] > 0) & point_valid[:, None], axis=0)
  open_points = points.at[:, 1].set(0.0).at[:, 2].set(jnp.inf)

  def alone(pts, r):
    def one(segment, valid):
      out = assignment.assign_targets(
        pts, segment[None], jnp.zeros(1, jnp.int32), valid[None], num_classes=1,
        center_sample_radius=r,
      )  # fmt: skip
      return jnp.any(out['positive'] & point_valid)

    return jax.vmap(one)(segments, segment_valid)

  return covered, alone(points, radius), alone(points, 0.0), alone(open_points, 0.0)


def _best_overlap(segments: np.ndarray, length: int, window: int) -> np.ndarray:
  """Largest share of each action inside a window ``[s, s + window)``, ``0 <= s <= T - window``."""
  starts = np.arange(length - window + 1, dtype=np.float64)[:, None]
  inter = np.minimum(starts + window, segments[None, :, 1]) - np.maximum(
    starts, segments[None, :, 0]
  )
  seg_len = np.maximum(segments[:, 1] - segments[:, 0], 1e-8)
  return np.clip(inter, 0, None).max(axis=0) / seg_len


def video_reasons(segments: np.ndarray, length: int, settings: AssignmentSettings) -> list[str]:
  """The coverage of each action of one video: ``''`` (covered) or a key of :data:`REASONS`.

  Args:
    segments: ``[N, 2]`` actions in grid units, as :func:`asl_jax.data.pipeline.make_video`
      computes them.
    length: T, the video's feature steps after the geometry.
    settings: pyramid, assignment and window settings.
  """
  segments = np.asarray(segments, np.float64).reshape(-1, 2)
  n = len(segments)
  reasons = [''] * n
  if n == 0:
    return reasons
  span = np.minimum(segments[:, 1], length) - np.maximum(segments[:, 0], 0)
  # The batcher keeps every action of a video seen whole (pipeline.random_window); windows keep
  # the actions with trunc_thresh of their length inside.
  window, cut = length, ''
  if length > settings.max_seq_len:
    window, cut = settings.max_seq_len, 'cut_by_max_seq_len'
  elif settings.crop_ratio and int(round(settings.crop_ratio[1] * length)) < length:
    window, cut = max(int(round(settings.crop_ratio[1] * length)), 1), 'cut_by_crop'
  kept = np.ones(n, bool)
  if cut:
    kept = _best_overlap(segments, length, window) >= settings.trunc_thresh
  for i in range(n):
    if span[i] <= 0:
      reasons[i] = 'outside_features'
    elif not kept[i]:
      reasons[i] = cut
  live = [i for i in range(n) if not reasons[i]]
  if not live:
    return reasons

  padded = pipeline.eval_length(length, settings.max_seq_len)
  points = seg_ops.make_points(
    padded, settings.regression_ranges, scale_factor=settings.scale_factor
  )
  m = 1 << max(len(live) - 1, 0).bit_length()  # Padded to a power of two: few compiled shapes.
  segs = np.zeros((m, 2), np.float32)
  segs[: len(live)] = np.clip(segments[live], 0, length)
  valid = np.zeros(m, bool)
  valid[: len(live)] = True
  covered, alone, anywhere, any_range = map(
    np.asarray,
    _tests(
      jnp.asarray(points), jnp.asarray(segs), jnp.asarray(valid),
      jnp.asarray(points[:, 0] < length), radius=settings.center_sample_radius,
    ),
  )  # fmt: skip
  for j, i in enumerate(live):
    if covered[j]:
      continue
    if not any_range[j]:
      reasons[i] = 'between_points'
    elif not anywhere[j]:
      reasons[i] = 'outside_ranges'
    elif not alone[j]:
      reasons[i] = 'centre_sampling'
    else:
      reasons[i] = 'hidden_by_shorter'
  return reasons


@dataclasses.dataclass
class CoverageReport:
  """Coverage of every action of a split, with tables per reason, class and length bucket."""

  actions: list[ActionCoverage]
  class_names: list[str]
  settings: AssignmentSettings
  skipped_videos: int = 0  # Videos left out: no feature length known.

  @property
  def num_uncovered(self) -> int:
    return sum(1 for a in self.actions if a.reason)

  @property
  def uncovered_fraction(self) -> float:
    return self.num_uncovered / max(len(self.actions), 1)

  def by_reason(self) -> dict[str, int]:
    counts = collections.Counter(a.reason for a in self.actions if a.reason)
    return {r: counts[r] for r in REASONS if counts[r]}

  def by_class(self) -> dict[str, dict[str, int]]:
    """Class name -> ``{'actions': N, 'uncovered': U, <reason>: count}`` (classes with actions)."""
    return self._grouped(lambda a: self._class_name(a.label))

  def by_bucket(self) -> dict[str, dict[str, int]]:
    """Length bucket (grid steps) -> the same counts, buckets in increasing length."""
    grouped = self._grouped(lambda a: bucket_name(a.length))
    return {b: grouped[b] for b in bucket_names() if b in grouped}

  def _class_name(self, label: int) -> str:
    return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

  def _grouped(self, key) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for a in self.actions:
      row = out.setdefault(key(a), {'actions': 0, 'uncovered': 0})
      row['actions'] += 1
      if a.reason:
        row['uncovered'] += 1
        row[a.reason] = row.get(a.reason, 0) + 1
    return out

  def to_json(self) -> dict[str, Any]:
    return {
      'actions': len(self.actions),
      'uncovered': self.num_uncovered,
      'uncovered_fraction': self.uncovered_fraction,
      'skipped_videos': self.skipped_videos,
      'by_reason': self.by_reason(),
      'by_class': self.by_class(),
      'by_length_bucket': self.by_bucket(),
      'settings': dataclasses.asdict(self.settings),
      'uncovered_actions': [dataclasses.asdict(a) for a in self.actions if a.reason],
    }

  def summary(self) -> str:
    reasons = ', '.join(f'{r} {c}' for r, c in self.by_reason().items()) or 'none'
    skipped = f'; {self.skipped_videos} videos without features left out' * bool(
      self.skipped_videos
    )
    return (
      f'label-assignment coverage: {self.num_uncovered} of {len(self.actions)} actions '
      f'({self.uncovered_fraction:.2%}) get no positive point ({reasons}){skipped}'
    )

  def format_table(self, *, max_classes: int = 10) -> str:
    """The summary, then uncovered actions per length bucket and for the worst classes."""
    reasons = list(self.by_reason())
    header = ['actions', 'uncovered', *reasons]
    lines = [self.summary(), '', _table('length (steps)', header, self.by_bucket())]
    worst = sorted(self.by_class().items(), key=lambda kv: (-kv[1]['uncovered'], kv[0]))
    worst = {k: v for k, v in worst if v['uncovered']}
    if worst:
      shown = dict(list(worst.items())[:max_classes])
      more = f' ({len(worst) - len(shown)} more classes)' if len(worst) > len(shown) else ''
      lines += ['', _table('class', header, shown) + more]
    lines += [''] + [f'  {r}: {REASONS[r]}' for r in reasons]
    return '\n'.join(lines)


def _table(key: str, header: Sequence[str], rows: Mapping[str, Mapping[str, int]]) -> str:
  width = max([len(key), *(len(k) for k in rows)])
  cols = [max(len(h), 6) for h in header]
  out = [f'{key:<{width}}  ' + '  '.join(f'{h:>{w}}' for h, w in zip(header, cols))]
  for name, row in rows.items():
    out.append(
      f'{name:<{width}}  ' + '  '.join(f'{row.get(h, 0):>{w}}' for h, w in zip(header, cols))
    )
  return '\n'.join(out)


def coverage_of_videos(
  videos: Iterable[pipeline.Video], settings: AssignmentSettings, class_names: Sequence[str] = ()
) -> CoverageReport:
  """Coverage of the actions of ``videos`` (made by :func:`asl_jax.data.pipeline.make_video`)."""
  actions = []
  for video in videos:
    lengths = video.segments[:, 1] - video.segments[:, 0]
    reasons = video_reasons(video.segments, len(video.feats), settings)
    actions += [
      ActionCoverage(video.video_id, int(lab), float(ln), r)
      for lab, ln, r in zip(video.labels, lengths, reasons)
    ]
  return CoverageReport(actions, list(class_names), settings)


def coverage_from_config(
  config, *, lengths: Mapping[str, int] | None = None, subsets: Sequence[str] | None = None
) -> CoverageReport:
  """Coverage of ``config``'s training split (or ``subsets``).

  ``lengths`` maps video ids to raw feature lengths T (before the config's geometry; videos
  without one are left out and counted in ``report.skipped_videos``); without it every feature
  file is read. Only lengths matter, so the features are replaced by zeros ``[T, 1]`` that go
  through the real geometry (downsampling, fixed-length resizing, unknown fps).
  """
  data = config.data
  names = subsets or parse_subsets(data.train_subset)
  annotations = pipeline.annotations_from_config(data)
  records = annotations.subset(names)
  geometry = pipeline.geometry_from_config(data)
  if lengths is None:
    with FeatureReader.from_config(data) as reader:
      lengths = {r.video_id: len(reader.load(r.video_id)) for r in records}
  videos = (
    pipeline.make_video(r, np.zeros((int(lengths[r.video_id]), 1), np.float32), **geometry)
    for r in records
    if lengths.get(r.video_id)
  )
  report = coverage_of_videos(
    videos, AssignmentSettings.from_config(config), annotations.class_names
  )
  report.skipped_videos = sum(1 for r in records if not lengths.get(r.video_id))
  return report


def log_coverage(report: CoverageReport) -> None:
  """Logs the summary; a warning with the tables when more than 1% of the actions are uncovered."""
  if report.uncovered_fraction > WARN_FRACTION:
    logger.warning(
      '%s; more than %.0f%% of the actions are never trained on: check max_seq_len, the '
      'regression ranges and center_sample_radius (python -m asl_jax.tools.validate_data '
      '--suggest proposes them)\n%s',
      report.summary(),
      100 * WARN_FRACTION,
      report.format_table(),
    )
  else:
    logger.info('%s', report.summary())


def expected_feature_lengths(
  records: Iterable[Any], *, fps: float | None, feat_stride: float, num_frames: float
) -> dict[str, int]:
  """Feature lengths an extractor with this geometry gives: ``(duration * fps - window) // stride
  + 1`` (at least 1) per record, for coverage without the feature files. ``fps=None``: each
  record's own fps (features taken at the video's rate)."""
  return {
    r.video_id: max(
      int(math.floor((r.duration * (fps or r.fps) - num_frames) / feat_stride)) + 1, 1
    )
    for r in records
  }
