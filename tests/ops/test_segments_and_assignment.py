"""Point grid, segment encode/decode, and label assignment vs the reference fixture and by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.ops import assignment
from asl_jax.ops import segments as seg_ops
from tests import fixture_utils


@pytest.fixture(scope='module')
def fx(fixture_path):
  return fixture_utils.load_fixture(fixture_path)


def test_points_match_reference(fx):
  cfg = fx['config']['model_kwargs']
  ours = seg_ops.make_points(cfg['max_seq_len'], [tuple(r) for r in cfg['regression_range']])
  np.testing.assert_array_equal(ours, fixture_utils.points(fx))


def test_level_lengths():
  assert seg_ops.level_lengths(256, 4) == [256, 128, 64, 32]


def test_encode_decode_round_trip():
  rng = np.random.default_rng(0)
  pts = seg_ops.make_points(64, [(0, 4), (4, 8), (8, 1e4)])
  segs = np.sort(rng.uniform(-5, 70, (len(pts), 2)).astype(np.float32), axis=1)
  back = seg_ops.decode_segments(pts, seg_ops.encode_segments(pts, segs))
  np.testing.assert_allclose(back, segs, atol=1e-5)


def test_diou_by_hand():
  # pred (1, 3) and target (2, 2) around one point: inter = 1 + 2 = 3, union = 4 + 4 - 3 = 5,
  # enclosing = 2 + 3 = 5, rho = 0.5 * ((3 - 1) - (2 - 2)) = 1, DIoU = 1 - 3/5 + (1/5)^2 = 0.44.
  loss = seg_ops.diou_loss_1d(jnp.array([1.0, 3.0]), jnp.array([2.0, 2.0]))
  np.testing.assert_allclose(loss, 0.44, rtol=1e-6)
  np.testing.assert_allclose(
    seg_ops.diou_loss_1d(jnp.array([2.0, 5.0]), jnp.array([2.0, 5.0])), 0.0, atol=1e-7
  )


def test_assignment_matches_reference(fx):
  cfg = fx['config']['model_kwargs']
  segs, labels, valid = fixture_utils.padded_ground_truth(fx)
  targets = jax.jit(
    lambda s, lab, v: assignment.assign_batch(
      fixture_utils.points(fx), s, lab, v, num_classes=cfg['num_classes'], center_sample_radius=1.5
    )
  )(segs, labels, valid)
  np.testing.assert_array_equal(np.asarray(targets['cls']), fx['target/gt_cls'])
  # Offsets are compared on every row: unassigned rows regress to GT 0 in both (first-index argmin).
  np.testing.assert_allclose(
    np.asarray(targets['offsets']), fx['target/gt_offsets'], rtol=0, atol=1e-6
  )
  point_valid = fixture_utils.concat_levels(fx, 'out/fpn_masks_')
  positive = np.asarray(targets['positive']) & point_valid
  np.testing.assert_array_equal(positive, fx['target/pos_mask'])
  assert positive.sum() == int(fx['loss/num_pos']) == 26


def _one_level_points(n, lo=0.0, hi=1e4, stride=1.0):
  t = np.arange(n, dtype=np.float32) * stride
  return np.stack([t, np.full(n, lo), np.full(n, hi), np.full(n, stride)], 1).astype(np.float32)


def test_shortest_segment_wins_and_ties_are_multi_hot():
  pts = _one_level_points(20)
  # Point 10: inside [4, 16] (len 12), [8, 12] (len 4) and [8.0005, 12.0005] (len 4, tied).
  segs = np.array([[4, 16], [8, 12], [8.0005, 12.0005], [0, 0]], np.float32)
  labels = np.array([0, 1, 2, 3], np.int32)
  valid = np.array([True, True, True, False])
  out = assignment.assign_targets(pts, segs, labels, valid, num_classes=4, center_sample_radius=-1)
  np.testing.assert_array_equal(out['cls'][10], [0, 1, 1, 0])  # Longer GT is a negative here.
  assert int(out['assigned'][10]) == 1  # First index among the tied shortest.
  np.testing.assert_allclose(out['offsets'][10], [2.0, 2.0])
  np.testing.assert_array_equal(out['cls'][5], [1, 0, 0, 0])  # Only the long GT covers point 5.


def test_padded_segments_never_match_and_range_bounds_inclusive():
  pts = _one_level_points(20, lo=2.0, hi=4.0)
  segs = np.array([[6, 14], [0, 19]], np.float32)
  out = assignment.assign_targets(
    pts,
    segs,
    np.array([0, 1], np.int32),
    np.array([True, False]),
    num_classes=2,
    center_sample_radius=-1,
  )
  assert out['cls'][:, 1].sum() == 0
  # max(t - 6, 14 - t) in [2, 4]: t = 10 (4), and only t in {10} since max >= 4 for t in (6, 14).
  np.testing.assert_array_equal(np.nonzero(np.asarray(out['positive']))[0], [10])


def test_center_sampling_radius():
  pts = _one_level_points(40)
  segs = np.array([[0, 30]], np.float32)  # centre 15, radius 1.5 -> t in (13.5, 16.5).
  out = assignment.assign_targets(
    pts, segs, np.array([0], np.int32), np.array([True]), num_classes=1
  )
  np.testing.assert_array_equal(np.nonzero(np.asarray(out['positive']))[0], [14, 15, 16])
