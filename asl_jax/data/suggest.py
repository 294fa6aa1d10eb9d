"""A config derived from the data: feature geometry, window, pyramid and ranges, with evidence.

Reads only what the files say (each video's duration, fps when the file has one, the length T
of its features and its actions) and proposes the ``config.*`` values that fit them, each with
the numbers it was derived from, and the whole as ready-to-paste ``--config.*`` flags.

The rules (docs/design.md, "Config suggestion"):
  * geometry: with fps in the file, frames per feature ``fps * duration / T`` is the stride
    (``num_frames``, the extractor's window, is about what is left of ``duration * fps`` after
    ``(T - 1)`` strides: its 10th percentile); when that varies between videos but the feature
    rate ``T / duration`` does not, the features were taken at a fixed rate: a common
    (fps, stride) pair that gives it becomes ``default_fps`` and ``feat_stride``. Without fps in
    the file the grid is each video's own feature rate (stride 1, the loader derives the fps).
    Videos more than ``rate_tol`` from the median of the measure used are listed.
  * the pyramid: the level of an action of ``L`` grid steps is the one whose range holds ``L / 2``
    (its centre point's distance to the ends); ranges double from (0, 4) as ActionFormer's do, and
    the deepest level holds the ``length_share`` percentile of action lengths.
  * the attention window: odd, about the median action length, between 3 and 19 (the largest
    window of the reference configs).
  * ``max_seq_len``: the ``video_share`` percentile of T, rounded up to a multiple of the pyramid
    stride (all this implementation needs); the evidence also gives the multiple of
    ``stride * (window - 1)`` that the reference's local attention needs (whole windows per level).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from asl_jax.data import coverage, pipeline
from asl_jax.data.records import VideoRecord

# Extractor settings seen in the wild, tried in this order when the features have a fixed rate.
COMMON_FPS = (30.0, 25.0, 24.0, 15.0, 10.0)
COMMON_STRIDES = (1.0, 2.0, 4.0, 5.0, 8.0, 10.0, 16.0, 32.0)
MAX_WINDOW = 19
LAST_RANGE_END = 10000.0  # The open end of the last level, as the reference configs write it.
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


@dataclasses.dataclass
class Suggestion:
  """Proposed config values (``'data.feat_stride' -> 4.0``), the evidence for each, outliers."""

  values: dict[str, Any]
  evidence: dict[str, list[str]]
  # (video id, value) of videos far from the median of the measure the geometry rests on.
  outliers: list[tuple[str, float]]
  measure: str  # 'frames per feature' or 'features per second'.
  median: float

  def flags(self) -> list[str]:
    return [f'--config.{key}={_flag_value(value)}' for key, value in self.values.items()]

  def format(self, *, max_outliers: int = 10) -> str:
    lines = ['Suggested config (from the annotation and feature files):']
    for key, value in self.values.items():
      lines.append(f'  {key} = {_flag_value(value)}')
      lines += [f'      {line}' for line in self.evidence.get(key, [])]
    if self.outliers:
      lines.append(
        f'  {len(self.outliers)} videos are far from the median {self.median:.4g} '
        f'{self.measure} (wrong fps, another extractor, or a truncated file):'
      )
      lines += [f'      {vid}: {x:.4g} {self.measure}' for vid, x in self.outliers[:max_outliers]]
      if len(self.outliers) > max_outliers:
        lines.append(f'      ... and {len(self.outliers) - max_outliers} more')
    lines += ['', 'As flags:', '  ' + ' \\\n  '.join(self.flags())]
    return '\n'.join(lines)

  def to_json(self) -> dict[str, Any]:
    return {
      'values': {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()},
      'flags': self.flags(),
      'evidence': self.evidence,
      'outliers': [{'video_id': v, self.measure.replace(' ', '_'): x} for v, x in self.outliers],
    }


def _flag_value(value: Any) -> str:
  """How a value is written after ``--config.x=``: tuples quoted for the shell."""
  if isinstance(value, tuple):
    return f"'{_tuple_text(value)}'"
  if isinstance(value, float) and value.is_integer():
    return f'{value:.1f}'
  return str(value)


def _tuple_text(value: Any) -> str:
  if isinstance(value, tuple):
    return '(' + ','.join(_tuple_text(v) for v in value) + (',)' if len(value) == 1 else ')')
  return f'{value:g}' if isinstance(value, float) else str(value)


def _nice(x: float, tol: float = 0.05) -> float:
  """``x`` rounded to an integer when within ``tol`` of one, else to 3 significant digits."""
  r = round(x)
  if r > 0 and abs(x - r) <= tol * r:
    return float(r)
  return float(f'{x:.3g}')


def _percentiles(values: np.ndarray) -> str:
  return ', '.join(f'p{p} {np.percentile(values, p):.3g}' for p in PERCENTILES)


def _consistent_share(values: np.ndarray, tol: float) -> float:
  return float(np.mean(np.abs(values / np.median(values) - 1) <= tol))


def regression_ranges(num_levels: int) -> tuple[tuple[float, float], ...]:
  """ActionFormer's doubling ranges: (0, 4), (4, 8), ..., the last open."""
  if num_levels == 1:
    return ((0.0, LAST_RANGE_END),)
  ranges = [(0.0, 4.0)] + [(4.0 * 2 ** (i - 1), 4.0 * 2**i) for i in range(1, num_levels - 1)]
  return (*ranges, (4.0 * 2 ** (num_levels - 2), LAST_RANGE_END))


def _geometry(
  records: Sequence[VideoRecord], lengths: np.ndarray, rate: np.ndarray, tol: float
) -> tuple[dict[str, float], dict[str, list[str]], str, np.ndarray]:
  """The geometry keys, their evidence, and the per-video measure they rest on (name, values)."""
  durations = np.array([r.duration for r in records])
  fps = np.array([r.fps for r in records])
  median_rate = float(np.median(rate))
  rate_share = _consistent_share(rate, tol)
  rate_line = (
    f'feature rate T / duration: median {median_rate:.4g} features/s, '
    f'{rate_share:.1%} of videos within {tol:.0%} of it'
  )
  if np.all(fps > 0):
    per_feature = fps * durations / lengths
    frames_share = _consistent_share(per_feature, tol)
    seen = ', '.join(f'{f:g}' for f in np.unique(fps)[:5]) + (' ...' if len(set(fps)) > 5 else '')
    frames_line = (
      f'frames per feature fps * duration / T: median {np.median(per_feature):.4g}, '
      f'{frames_share:.1%} of videos within {tol:.0%} of it (fps in the file: {seen})'
    )
    if frames_share >= rate_share:
      stride = _nice(float(np.median(per_feature)))
      # Left over after T - 1 strides: the window, plus up to one stride of frames the extractor
      # did not use (T rounded down); the 10th percentile is about the window itself.
      window = float(np.percentile(fps * durations - (lengths - 1) * stride, 10))
      num_frames = max(_nice(window), 1.0)
      evidence = {
        'data.feat_stride': [frames_line, rate_line],
        'data.num_frames': [
          'the extractor window: 10th percentile of duration * fps - (T - 1) * stride (the '
          'frames left after T - 1 strides); check it against the extractor'
        ],
        'data.default_fps': ['every video has an fps in the file and the stride fits them'],
      }
      geometry = {'feat_stride': stride, 'num_frames': num_frames, 'default_fps': -1.0}
      return geometry, evidence, 'frames per feature', per_feature
    for video_fps in COMMON_FPS:
      for stride in COMMON_STRIDES:
        if abs(video_fps / stride / median_rate - 1) <= 0.01:
          evidence = {
            'data.feat_stride': [rate_line, frames_line],
            'data.default_fps': [
              f'the features have a fixed rate whatever the file fps: {video_fps:g} fps / '
              f'{stride:g} frames = {video_fps / stride:.4g} features/s'
            ],
            'data.num_frames': ['unknown from lengths alone: the stride (check the extractor)'],
          }
          geometry = {'feat_stride': stride, 'num_frames': stride, 'default_fps': video_fps}
          return geometry, evidence, 'features per second', rate
    evidence = {
      'data.feat_stride': [rate_line, frames_line],
      'data.default_fps': ['fixed feature rate with no common (fps, stride) pair: the rate'],
    }
    geometry = {'feat_stride': 1.0, 'num_frames': 1.0, 'default_fps': _nice(median_rate)}
    return geometry, evidence, 'features per second', rate
  evidence = {
    'data.feat_stride': [
      rate_line,
      "no fps in the file: the grid is each video's own feature rate (the loader derives the "
      'fps as T * feat_stride / duration)',
    ],
  }
  geometry = {'feat_stride': 1.0, 'num_frames': 1.0, 'default_fps': -1.0}
  return geometry, evidence, 'features per second', rate


def suggest_config(
  records: Sequence[VideoRecord],
  lengths: Mapping[str, int],
  *,
  num_classes: int | None = None,
  input_dim: int | None = None,
  video_share: float = 0.99,
  length_share: float = 0.99,
  rate_tol: float = 0.1,
) -> Suggestion:
  """Config values for videos ``records`` whose features have ``lengths[video_id]`` steps.

  Videos without a length (no feature file) or without a positive duration are left out.
  """
  used = [r for r in records if r.video_id in lengths and r.duration > 0 and lengths[r.video_id]]
  if not used:
    raise ValueError('no video has both a positive duration and a feature length')
  t = np.array([lengths[r.video_id] for r in used], np.float64)
  rate = t / np.array([r.duration for r in used])
  geometry, evidence, measure, values_ = _geometry(used, t, rate, rate_tol)
  median = float(np.median(values_))
  gap = np.abs(values_ / median - 1)
  outliers = [(used[i].video_id, float(values_[i])) for i in np.argsort(-gap) if gap[i] > rate_tol]

  # Actions on the grid: seconds * fps / stride (fps: default, the file's, or the features' own).
  stride = geometry['feat_stride']
  grid_lengths = []
  for r, ti in zip(used, t):
    fps = geometry['default_fps'] if geometry['default_fps'] > 0 else r.fps
    if fps <= 0:
      fps = ti * stride / r.duration
    grid_lengths.append((r.segments_sec[:, 1] - r.segments_sec[:, 0]) * fps / stride)
  actions = np.concatenate(grid_lengths) if grid_lengths else np.zeros(0)
  if not len(actions):
    raise ValueError('no actions in the videos that have features')

  longest = float(np.percentile(actions, 100 * length_share))
  num_levels = int(np.clip(math.ceil(math.log2(max(longest / 8.0, 1.0))) + 1, 2, 8))
  ranges = regression_ranges(num_levels)
  window = int(np.clip(round(float(np.median(actions))), 3, MAX_WINDOW))
  window += 1 - window % 2
  pyramid_stride = 2 ** (num_levels - 1)
  covering = float(np.percentile(t, 100 * video_share))
  max_seq_len = int(math.ceil(covering / pyramid_stride) * pyramid_stride)
  portable = 2 ** (num_levels - 1) * (window - 1)

  level_of = np.searchsorted([hi for _, hi in ranges[:-1]], actions / 2.0, side='left')
  per_level = np.bincount(level_of, minlength=num_levels)
  evidence['data.max_seq_len'] = [
    f'feature length T: {_percentiles(t)}',
    f'p{100 * video_share:g} = {covering:.0f} steps, rounded up to a multiple of the pyramid '
    f'stride {pyramid_stride}; {np.mean(t <= max_seq_len):.1%} of videos fit whole (longer ones '
    'are cropped to it in training)',
    f'the PyTorch reference also needs every level to split into whole windows: a multiple of '
    f'{portable} (stride x (window - 1)), here {int(math.ceil(covering / portable) * portable)}',
  ]
  if max_seq_len // pyramid_stride < window:
    evidence['data.max_seq_len'].append(
      f'the deepest level ({max_seq_len // pyramid_stride} steps) is shorter than the window: '
      'its attention covers the whole level'
    )
  evidence['model.arch'] = [
    f'action length in grid steps: {_percentiles(actions)}',
    f'{num_levels} levels: p{100 * length_share:g} = {longest:.3g} steps lies in the last level '
    f'(an action of L steps belongs to the level whose range holds L / 2)',
  ]
  evidence['model.regression_ranges'] = [
    'actions per level: '
    + ', '.join(f'{lo:g}-{hi:g}: {n}' for (lo, hi), n in zip(ranges, per_level))
  ]
  evidence['model.window_size'] = [
    f'median action {np.median(actions):.3g} steps, odd, within [3, {MAX_WINDOW}]'
  ]
  counts = [len(r.labels) for r in used]
  evidence['data.max_segments'] = [f'most actions in one video: {max(counts)}']

  values: dict[str, Any] = {}
  if num_classes is not None:
    values['data.num_classes'] = int(num_classes)
  if input_dim is not None:
    values['data.input_dim'] = int(input_dim)
  values.update({f'data.{k}': v for k, v in geometry.items()})
  values['data.max_seq_len'] = max_seq_len
  values['data.max_segments'] = int(max(counts))
  values['model.arch'] = (2, 2, num_levels - 1)
  values['model.regression_ranges'] = ranges
  values['model.window_size'] = window
  return Suggestion(values, evidence, outliers, measure, median)


def apply(config, suggestion: Suggestion):
  """A copy of ``config`` with the suggested values (e.g. to compute their coverage)."""
  config = config.copy_and_resolve_references()
  for key, value in suggestion.values.items():
    section, field = key.split('.')
    config[section][field] = value
  return config


def suggest_from_config(
  config, lengths: Mapping[str, int], *, input_dim: int | None = None, **kwargs: Any
) -> Suggestion:
  """:func:`suggest_config` for the annotation file of ``config.data`` (every video, the file's own
  fps: ``data.default_fps`` is what is being suggested) and raw feature ``lengths``."""
  data = config.data
  annotations = pipeline.load_annotation_files(
    data.annotation_file,
    num_classes=data.num_classes,
    annotation_format=data.annotation_format,
    video_info_csv=data.video_info_csv,
    class_names_file=data.class_names_file,
    label_offset=data.label_offset,
  )
  return suggest_config(
    annotations.videos, lengths, num_classes=annotations.num_classes, input_dim=input_dim, **kwargs
  )


def after_validation(config, report, *, suggest: bool = False) -> tuple[str, dict[str, Any]]:
  """What the validator prints after its table: the label-assignment coverage of the training
  split under ``config`` and, with ``suggest``, the suggested values and their coverage.

  Feature lengths come from the validator's ``report`` (videos whose features could not be read
  are left out). Returns the text and the same as JSON.
  """
  lengths = {v.video_id: v.length for v in report.videos if v.length}
  dims = [v.dim for v in report.videos if v.dim]
  out: dict[str, Any] = {}
  lines = []
  try:
    current = coverage.coverage_from_config(config, lengths=lengths)
  except ValueError as e:  # A file the loader refuses: the table above already says why.
    return f'label-assignment coverage not computed: {e}', {'coverage_error': str(e)}
  lines += ['', 'Label-assignment coverage of the training split (this config):']
  lines.append(current.format_table())
  out['coverage'] = current.to_json()
  if suggest:
    try:
      suggestion = suggest_from_config(
        config, lengths, input_dim=max(set(dims), key=dims.count) if dims else None
      )
    except ValueError as e:  # No video with features and a duration, or no actions.
      lines += ['', f'no suggestion: {e}']
      return '\n'.join(lines), {**out, 'suggestion_error': str(e)}
    proposed = coverage.coverage_from_config(apply(config, suggestion), lengths=lengths)
    lines += ['', suggestion.format(), '', f'With the suggested values: {proposed.summary()}']
    out['suggestion'] = suggestion.to_json()
    out['suggested_coverage'] = proposed.to_json()
  return '\n'.join(lines), out
