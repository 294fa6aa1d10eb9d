"""Seconds <-> feature-grid conversions: the single place where time units change.

A feature at grid index g covers the frame window starting at frame ``g * feat_stride`` and
``num_frames`` long; its centre in seconds is ``(g * feat_stride + 0.5 * num_frames) / fps``.
Segments are stored in seconds in annotation files and in grid units everywhere inside the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureGeometry:
  """How a video's feature sequence maps onto its timeline."""

  feat_stride: float  # Frames between consecutive feature vectors.
  num_frames: float  # Frames seen by one feature vector (the extractor's window).
  fps: float  # Frames per second of the video the features were extracted from.

  @property
  def feat_offset(self) -> float:
    """Offset of a feature's centre in grid units: 0.5 * num_frames / feat_stride."""
    return 0.5 * self.num_frames / self.feat_stride

  def sec_to_grid(self, sec: np.ndarray | float) -> np.ndarray:
    return sec_to_grid(sec, fps=self.fps, feat_stride=self.feat_stride, num_frames=self.num_frames)

  def grid_to_sec(self, grid: np.ndarray | float) -> np.ndarray:
    return grid_to_sec(grid, fps=self.fps, feat_stride=self.feat_stride, num_frames=self.num_frames)


def sec_to_grid(sec, *, fps: float, feat_stride: float, num_frames: float) -> np.ndarray:
  """``grid = (sec * fps - 0.5 * num_frames) / feat_stride`` (small negative values are allowed)."""
  return (np.asarray(sec, dtype=np.float64) * fps - 0.5 * num_frames) / feat_stride


def grid_to_sec(grid, *, fps: float, feat_stride: float, num_frames: float) -> np.ndarray:
  """Inverse of :func:`sec_to_grid`: ``sec = (grid * feat_stride + 0.5 * num_frames) / fps``."""
  return (np.asarray(grid, dtype=np.float64) * feat_stride + 0.5 * num_frames) / fps


def clip_to_duration(sec: np.ndarray, duration: float) -> np.ndarray:
  """Clip seconds to ``[0, duration]`` as the reference post-processing does."""
  return np.clip(sec, 0.0, duration)
