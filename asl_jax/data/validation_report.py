"""The validator's report: problems per video and for the whole file, as a table or JSON."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

# Every problem kind; the table ends with the meaning of those it lists.
KINDS = {
  'bad_annotation_file': 'the annotation file (or a CSV it needs) is unreadable, not in a '
  'supported schema, or refused by the loader',
  'bad_config': 'a data setting that cannot apply (annotation_format of another schema, '
  'class_names_file vs num_classes, force_upsampling without max_seq_len, downsample_rate < 1)',
  'unknown_subset': 'a subset name of the config matches no video',
  'bad_annotation': 'a field is missing, not a number or not finite',
  'missing_features': 'no feature file (or HDF5 key) for the video',
  'unreadable_features': 'the feature file exists but cannot be read',
  'transposed_features': 'features stored as [C, T] instead of [T, C]',
  'wrong_dim': 'channel count differs from input_dim (or the per-folder dims)',
  'bad_shape': 'features are not a non-empty numeric 2-D array',
  'non_finite': 'features hold NaN or Inf',
  'length_mismatch': 'feature length disagrees with duration * fps / feat_stride',
  'zero_length_segment': 'a segment ends at or before its start (the loader drops it)',
  'segment_outside_duration': 'a segment starts before 0 or ends after the duration (the loader '
  'clips it, or drops it when it starts after the end)',
  'unknown_label': 'label_id (+ label_offset) is not an integer in [0, num_classes), a name is not '
  'one of class_names_file, or a name-labelled file has more names than num_classes',
  'label_conflict': 'one label name with two ids, or one id with two names',
  'video_id_case': 'video ids that differ only in letter case: one feature file on a '
  'case-insensitive file system, and a leak when split over training and evaluation',
}
# Kinds the loader repairs deterministically: reported as warnings (they fail neither the check
# nor a build) unless the validator runs strict. Real files have many: 7,430 of Charades' 9,846
# videos have actions ending up to 1.5 s after the video.
WARNING_KINDS = frozenset({'zero_length_segment', 'segment_outside_duration', 'video_id_case'})
DATASET = '<dataset>'  # The video id of problems that concern the whole file.


@dataclasses.dataclass(frozen=True)
class Problem:
  """One thing wrong with one video (or with the file)."""

  video_id: str  # DATASET for file-level problems.
  kind: str  # A key of KINDS.
  field: str  # Where: 'annotations[2].segment', 'features', 'subset', ...
  message: str  # Complete: names the file and video.
  detail: str  # The same without the file and video, for the table's rows.

  def to_json(self) -> dict[str, str]:
    return {'kind': self.kind, 'field': self.field, 'message': self.message}


@dataclasses.dataclass
class VideoSummary:
  """What the validator saw of one video (``None`` where it could not tell)."""

  video_id: str
  subset: str | None = None
  length: int | None = None  # T of the features (after concatenating sources).
  dim: int | None = None
  expected_length: float | None = None  # From duration, fps and the geometry.
  num_segments: int = 0


@dataclasses.dataclass
class ValidationReport:
  source: str  # The annotation file.
  videos: list[VideoSummary]
  problems: list[Problem]
  settings: dict[str, Any]  # The tolerances and geometry the checks used.
  warnings: list[Problem] = dataclasses.field(default_factory=list)  # Repaired by the loader.

  @property
  def ok(self) -> bool:
    return not self.problems

  @property
  def dataset_problems(self) -> list[Problem]:
    return [p for p in self.problems if p.video_id == DATASET]

  def problems_by_video(self) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in self.problems:
      if p.video_id != DATASET:
        out.setdefault(p.video_id, []).append(p)
    return out

  def warnings_by_video(self) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in self.warnings:
      out.setdefault(p.video_id, []).append(p)
    return out

  def counts(self) -> dict[str, int]:
    return dict(collections.Counter(p.kind for p in self.problems))

  def warning_counts(self) -> dict[str, int]:
    return dict(collections.Counter(p.kind for p in self.warnings))

  def to_json(self) -> dict[str, Any]:
    return {
      'source': self.source,
      'settings': self.settings,
      'num_videos': len(self.videos),
      'counts': self.counts(),
      'dataset': [p.to_json() for p in self.dataset_problems],
      'videos': {v: [p.to_json() for p in ps] for v, ps in self.problems_by_video().items()},
      'warning_counts': self.warning_counts(),
      'warnings': {v: [p.to_json() for p in ps] for v, ps in self.warnings_by_video().items()},
    }

  def format_table(
    self, *, all_videos: bool = False, show_warnings: bool = False, max_message: int = 160
  ) -> str:
    """A table of the videos with problems (every video with ``all_videos``; their warnings too
    with ``show_warnings``), then a summary; warnings are otherwise counted with one example."""
    by_video = self.problems_by_video()
    warned = self.warnings_by_video() if show_warnings else {}
    lines = [f'annotation file: {self.source}']
    lines += [f'  {k}: {v}' for k, v in self.settings.items()]
    for p in self.dataset_problems:
      lines.append(f'{DATASET} {p.kind} [{p.field}]: {p.detail}')
    header = ('video', 'subset', 'T', 'C', 'T expected', 'segs', 'kind', 'field: message')
    rows = []
    for v in self.videos:
      listed = [(p, p.kind) for p in by_video.get(v.video_id, [])]
      listed += [(p, f'{p.kind} (warning)') for p in warned.get(v.video_id, [])]
      if not listed and not all_videos:
        continue
      base = (
        v.video_id,
        v.subset or '?',
        '?' if v.length is None else str(v.length),
        '?' if v.dim is None else str(v.dim),
        '?' if v.expected_length is None else f'{v.expected_length:.1f}',
        str(v.num_segments),
      )
      if not listed:
        rows.append((*base, 'ok', ''))
      for i, (p, kind) in enumerate(listed):
        text = f'{p.field}: {p.detail}'
        if len(text) > max_message:
          text = text[: max_message - 3] + '...'
        rows.append((*(base if i == 0 else ('',) * len(base)), kind, text))
    if rows:
      widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
      fmt = lambda r: '  '.join(c.ljust(w) for c, w in zip(r, widths)) + '  ' + r[-1]
      lines += [fmt(header), fmt(tuple('-' * w for w in widths) + ('-' * 14,))]
      lines += [fmt(r) for r in rows]
    shown = {**self.counts(), **self.warning_counts()}
    lines += [f'  {kind}: {KINDS[kind]}' for kind in KINDS if kind in shown]
    if self.warnings and not show_warnings:
      lines.append('warnings (the loader repairs these; --show_warnings lists them all):')
      for kind, n in sorted(self.warning_counts().items()):
        example = next(p for p in self.warnings if p.kind == kind)
        videos = len({p.video_id for p in self.warnings if p.kind == kind})
        lines.append(f'  {kind}: {n} in {videos} videos, e.g. {example.message[:max_message]}')
    counts = ', '.join(f'{k}: {n}' for k, n in sorted(self.counts().items())) or 'none'
    warnings = f', {len(self.warnings_by_video())} with warnings' if self.warnings else ''
    lines.append(
      f'{len(self.videos)} videos checked, {len(by_video)} with problems{warnings}; by kind: '
      f'{counts}'
    )
    return '\n'.join(lines)
