"""Seconds <-> grid both ways, and the three feature-geometry cases of the reference loaders."""

import numpy as np
import pytest

from asl_jax.data import geometry
from asl_jax.data.feature_geometry import adapt_features


def test_sec_grid_round_trip_and_known_values():
  g = geometry.FeatureGeometry(feat_stride=4, num_frames=16, fps=30)
  # 1 s at 30 fps = frame 30; minus half a window (8) = 22; / 4 = 5.5 grid steps.
  assert g.sec_to_grid(1.0) == pytest.approx(5.5)
  assert g.grid_to_sec(5.5) == pytest.approx(1.0)
  assert g.feat_offset == pytest.approx(2.0)
  secs = np.linspace(0, 100, 37)
  np.testing.assert_allclose(g.grid_to_sec(g.sec_to_grid(secs)), secs, atol=1e-12)


def test_plain_features_and_downsampling():
  feats = np.arange(20, dtype=np.float32)[:, None]
  out, geo = adapt_features(feats, duration=3.0, fps=30, feat_stride=4, num_frames=16)
  assert out is feats and geo == geometry.FeatureGeometry(4, 16, 30)
  out, geo = adapt_features(
    feats, duration=3.0, fps=30, feat_stride=4, num_frames=16, downsample_rate=2
  )
  np.testing.assert_array_equal(out[:, 0], np.arange(0, 20, 2))
  assert geo.feat_stride == 8 and geo.num_frames == 16


def test_force_upsampling_resizes_and_rescales_stride():
  # Ego4D-like: stride 1, one frame per feature, 2048 raw steps resized to 1024.
  feats = np.random.default_rng(0).normal(size=(2048, 3)).astype(np.float32)
  out, geo = adapt_features(
    feats,
    duration=100.0,
    fps=20.48,
    feat_stride=1,
    num_frames=1,
    force_upsampling=True,
    max_seq_len=1024,
  )
  assert out.shape == (1024, 3)
  assert geo.feat_stride == pytest.approx(2048 / 1024) and geo.num_frames == geo.feat_stride
  # Halving by linear interpolation (align_corners=False) averages neighbouring pairs.
  np.testing.assert_allclose(out[5], 0.5 * (feats[10] + feats[11]), rtol=1e-5)


def test_fixed_length_features_and_unknown_fps():
  feats = np.ones((50, 2), np.float32)
  out, geo = adapt_features(feats, duration=10.0, fps=30, feat_stride=-1, num_frames=0)
  # 10 s * 30 fps over 50 steps: every step covers 6 frames.
  assert geo.feat_stride == pytest.approx(6.0) and geo.num_frames == pytest.approx(6.0)
  _, geo = adapt_features(feats, duration=10.0, fps=-1, feat_stride=1, num_frames=1)
  assert geo.fps == pytest.approx(5.0)  # The features' own rate: 50 steps in 10 s.
  with pytest.raises(ValueError, match='fps is unknown'):
    adapt_features(feats, duration=0.0, fps=-1, feat_stride=1, num_frames=1, video_id='v9')
