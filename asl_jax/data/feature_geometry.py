"""Per-video feature geometry: downsampling, fixed-length resizing and the grid it implies.

The reference loaders handle three cases (asl-reference.md sec. 1.3), reproduced here:
  1. ``feat_stride > 0``, no resizing: ``feats[::r]`` and ``feat_stride * r`` for a
     ``downsample_rate`` r.
  2. ``feat_stride > 0`` with ``force_upsampling`` (ActivityNet, Ego4D): features are resized to
     exactly ``max_seq_len`` steps with PyTorch's linear interpolation, and the stride becomes
     ``((T - 1) * feat_stride + num_frames) / max_seq_len`` with ``num_frames = feat_stride``.
  3. ``feat_stride <= 0``: the features cover the whole video at a fixed count; the stride is
     ``duration * fps / seq_len`` (``seq_len = max_seq_len`` when resizing, else ``T``) and
     ``num_frames`` equals it.
An unknown fps (<= 0: flat/super-events files) is the features' own rate,
``T * feat_stride / duration`` (``T / duration`` for stride-less features).
"""

from __future__ import annotations

import numpy as np

from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.resample import interpolate_linear


def adapt_features(
  feats: np.ndarray,
  *,
  duration: float,
  fps: float,
  feat_stride: float,
  num_frames: float,
  downsample_rate: int = 1,
  force_upsampling: bool = False,
  max_seq_len: int | None = None,
  video_id: str = '?',
) -> tuple[np.ndarray, FeatureGeometry]:
  """Returns the features the model sees and the geometry that maps them to seconds."""
  t = len(feats)
  if fps <= 0:
    if duration <= 0:
      raise ValueError(f'video {video_id!r}: fps is unknown and duration {duration} is not > 0')
    fps = t * (feat_stride if feat_stride > 0 else 1.0) / duration
  if force_upsampling and not max_seq_len:
    raise ValueError('force_upsampling needs max_seq_len')
  if feat_stride > 0 and not force_upsampling:
    if downsample_rate < 1:
      raise ValueError(f'downsample_rate must be >= 1, got {downsample_rate}')
    if downsample_rate > 1:
      feats = feats[::downsample_rate]
    stride = feat_stride * downsample_rate
    return feats, FeatureGeometry(stride, num_frames, fps)
  if feat_stride > 0:
    stride = ((t - 1) * feat_stride + num_frames) / max_seq_len
    return interpolate_linear(feats, max_seq_len), FeatureGeometry(stride, stride, fps)
  seq_len = max_seq_len if force_upsampling else t
  stride = duration * fps / seq_len
  if force_upsampling:
    feats = interpolate_linear(feats, max_seq_len)
  return feats, FeatureGeometry(stride, stride, fps)
