"""ASCL's sensitive ranges and background frames, computed by hand (paper eq. 11-13).

Features are one-hot frames (``feats = I``), so each pooled vector is the pooling weights over
frames: its support is the set of frames pooled. Gaussians are the initial ones (centre for
classification; start -0.5 and end +0.5 for localisation; sigma 1), delta = 0.2.
"""

import math

import jax
import numpy as np

from asl_jax.ops import sensitivity as sens

T = 40
# Per video: segments in grid units, and by hand: (T_cls, T_loc, f_bg) frames.
CASES = [
  (
    40,
    [
      # Length 1 between frames: the one frame 5; radius 0.2 < 1, no background frame.
      ((4.5, 5.5), {5}, {5}, set()),
      # Length 3 (frames 10-12): d = -1/3, 0, 1/3; start peak 10, end peak 12, centre 11;
      # radius 0.6. Background [8.9, 9.5) U (12.5, 13.1] = {9, 13}, none of them pooled.
      ((9.5, 12.5), {11}, {10, 12}, {9, 13}),
      # Length 10 (frames 20-29): d = (t - 24.5) / 10; start 20, end 29, centre tie 24/25 -> 24
      # (first index); radius 2: T_cls 22-26, T_loc 20-22 U 27-29; bg [17.5, 19.5) U (29.5, 31.5].
      ((19.5, 29.5), {22, 23, 24, 25, 26}, {20, 21, 22, 27, 28, 29}, {18, 19, 30, 31}),
    ],
  ),
  (
    40,
    [
      # Fractional boundaries: frames 4-7 (ceil 3.3 .. floor 7.8); centre 5.55, d = -0.344,
      # -0.122, 0.1, 0.322: centre peak 6, start 4, end 7; radius 0.9; bg [2.4, 3.3) U (7.8, 8.7].
      ((3.3, 7.8), {6}, {4, 7}, {3, 8}),
      # Video start: frames 0-2 (no frame -1); centre 1.1; bg only after the end: (2.6, 3.2].
      ((-0.4, 2.6), {1}, {0, 2}, {3}),
      # Shorter than a grid step with no frame inside: the frame nearest the centre (12.45 -> 12).
      ((33.2, 33.7), {33}, {33}, set()),
    ],
  ),
  (
    30,  # 30 valid frames, padded to 40.
    [
      # Other actions' frames are no background: bg [8.5, 10.5) U (20.5, 22.5] = {9, 10, 21, 22}
      # minus frame 22 of the next action.
      ((10.5, 20.5), {13, 14, 15, 16, 17}, {11, 12, 13, 18, 19, 20}, {9, 10, 21}),
      # Frames 22-25; bg [20.7, 21.5) U (25.5, 26.3] = {21, 26}.
      ((21.5, 25.5), {23}, {22, 25}, {21, 26}),
      # Video end: frames 27-29 (30 is padding); centre tie 28/29 -> 28; radius 0.8; bg {26}.
      ((26.5, 30.5), {28}, {27, 29}, {26}),
    ],
  ),
]


def _initial_gaussians(k):
  return {
    'cls': (np.zeros(k, np.float32), np.ones(k, np.float32)),
    'loc': [(np.full(k, m, np.float32), np.ones(k, np.float32)) for m in (-0.5, 0.5)],
  }


def _batch():
  b, m = len(CASES), 3
  feats = np.broadcast_to(np.eye(T, dtype=np.float32), (b, T, T)).copy()
  mask = np.arange(T)[None] < np.array([[n] for n, _ in CASES])
  segs = np.array([[c[0] for c in cases] for _, cases in CASES], np.float32)
  labels = np.zeros((b, m), np.int32)
  valid = np.ones((b, m), bool)
  return feats, mask, segs, labels, valid


def test_sensitive_ranges_by_hand():
  feats, mask, segs, labels, valid = _batch()
  got = jax.jit(lambda *a: sens.sensitive_features(*a, delta=0.2))(
    feats, mask, segs, labels, valid, _initial_gaussians(1)
  )
  support = lambda v: set(np.flatnonzero(np.asarray(v) > 0).tolist())
  for i, (_, cases) in enumerate(CASES):
    for j, (seg, t_cls, t_loc, bg) in enumerate(cases):
      assert support(got['cls'][i, j]) == t_cls, (seg, 'cls')
      assert support(got['loc'][i, j]) == t_loc, (seg, 'loc')
      assert support(got['bg'][i, j]) == bg, (seg, 'bg')
      assert bool(got['bg_valid'][i, j]) == bool(bg)


def test_sensitive_weights_by_hand():
  """The 3-frame action: f_loc = (p_sot + p_eot) at frames 10 and 12, / 2; f_bg = mean of 9, 13."""
  feats, mask, segs, labels, valid = _batch()
  got = sens.sensitive_features(feats, mask, segs, labels, valid, _initial_gaussians(1))
  g = lambda d, mu: math.exp(-((d - mu) ** 2) / 2)
  d10, d12 = -1 / 3, 1 / 3
  want_loc = np.zeros(T)
  want_loc[10] = (g(d10, -0.5) + g(d10, 0.5)) / 2
  want_loc[12] = (g(d12, -0.5) + g(d12, 0.5)) / 2
  np.testing.assert_allclose(got['loc'][0, 1], want_loc, rtol=1e-6, atol=1e-7)
  want_cls = np.zeros(T)
  want_cls[11] = 1.0  # d = 0 at the centre frame, one frame.
  np.testing.assert_allclose(got['cls'][0, 1], want_cls, rtol=1e-6, atol=1e-7)
  want_bg = np.zeros(T)
  want_bg[[9, 13]] = 0.5
  np.testing.assert_allclose(got['bg'][0, 1], want_bg, rtol=1e-6, atol=1e-7)


def test_ranges_never_leave_the_action_nor_meet_background():
  """Random actions, learnt-looking Gaussians: pooled frames lie in [s, e], disjoint from f_bg."""
  rng = np.random.default_rng(0)
  b, m = 4, 6
  feats = np.broadcast_to(np.eye(T, dtype=np.float32), (b, T, T)).copy()
  mask = np.arange(T)[None] < rng.integers(20, T + 1, size=(b, 1))
  start = rng.uniform(-1, 35, size=(b, m))
  segs = np.stack([start, start + rng.uniform(0.3, 12, size=(b, m))], -1).astype(np.float32)
  labels = rng.integers(0, 3, size=(b, m)).astype(np.int32)
  valid = rng.random((b, m)) < 0.8
  gaussians = {
    'cls': (np.array([0.3, -0.2, 0.0], np.float32), np.array([0.2, 0.5, 5.0], np.float32)),
    'loc': [
      (np.array([-0.73, -0.6, -0.9], np.float32), np.array([0.1, 0.74, 0.3], np.float32)),
      (np.array([0.73, 0.6, 0.9], np.float32), np.array([0.1, 0.74, 0.3], np.float32)),
    ],
  }
  got = sens.sensitive_features(feats, mask, segs, labels, valid, gaussians)
  for i, j in zip(*np.nonzero(valid)):
    s, e = segs[i, j]
    n_valid = int(mask[i].sum())
    frames = {t for t in range(n_valid) if s - 1e-3 <= t <= e + 1e-3}
    pooled = set(np.flatnonzero(got['cls'][i, j])) | set(np.flatnonzero(got['loc'][i, j]))
    assert pooled, (i, j)
    if frames:
      assert pooled <= frames, (i, j, s, e)
    else:
      assert len(pooled) == 1
    bg = set(np.flatnonzero(got['bg'][i, j]))
    assert not pooled & bg
    assert all(t < n_valid for t in pooled | bg)
