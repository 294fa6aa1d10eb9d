"""The internal per-video annotation record every annotation schema is converted into."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class VideoRecord:
  """One video's ground truth, in seconds, with integer labels indexing ``class_names``."""

  video_id: str
  subset: str  # As written in the file (matching against split names is case-insensitive).
  duration: float  # Seconds.
  fps: float  # Frames per second used for seconds <-> grid conversion.
  segments_sec: np.ndarray  # [N, 2] float64, (start, end) in seconds.
  labels: np.ndarray  # [N] int32 class ids.

  def __post_init__(self):
    if self.segments_sec.shape != (len(self.labels), 2):
      raise ValueError(
        f'video {self.video_id!r}: segments shape {self.segments_sec.shape} does not match '
        f'{len(self.labels)} labels'
      )


@dataclasses.dataclass
class AnnotationSet:
  """All videos of an annotation file plus the label map and what was skipped while loading."""

  source: str  # Path of the file(s) the records came from, for error messages.
  videos: list[VideoRecord]
  class_names: list[str]  # Index = label id.
  skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> count.

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def subset(self, names: str | list[str] | tuple[str, ...]) -> list[VideoRecord]:
    """Videos whose subset matches one of ``names`` (case-insensitive); unknown names raise."""
    wanted = {names.lower()} if isinstance(names, str) else {n.lower() for n in names}
    present = {v.subset.lower() for v in self.videos}
    unknown = wanted - present
    if unknown:
      raise ValueError(
        f'{self.source}: subset(s) {sorted(unknown)} match no video; subsets in the file: '
        f'{sorted(present)}'
      )
    return [v for v in self.videos if v.subset.lower() in wanted]
