"""Decoding (candidate selection), NMS and seconds: the reference fixture and a GT round trip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.data import pipeline
from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.records import VideoRecord
from asl_jax.evaluation import postprocess
from asl_jax.model.build import build_model
from asl_jax.ops import assignment
from asl_jax.ops import nms as nms_ops
from asl_jax.ops import segments as seg_ops
from asl_jax.train import loop
from tests import fixture_utils
from tests.ops.nms_oracle import REFERENCE_NMS
from tests.train.helpers import tiny_config

# ActionFormer's settings as the fixture was made (voting on, as in its THUMOS14 config).
NMS_KWARGS = dict(REFERENCE_NMS, num_classes=5, voting_thresh=0.7)
DECODE = dict(pre_nms_thresh=0.001, pre_nms_topk=2000, duration_thresh=0.05)


def _decode(logits, offsets, mask, points, sizes, cfg=None):
  cfg = cfg or postprocess.DecodeConfig(**DECODE)
  return jax.device_get(postprocess.select_candidates(logits, offsets, mask, points, sizes, cfg))


def _stable_order(segments, scores, labels):
  """Rows by descending score, then label, start, end: a tie-proof canonical order."""
  return np.lexsort((segments[:, 1], segments[:, 0], labels, -scores))


# ----------------------------------------------------------------------------------------------
# The reference fixture: ActionFormer's decoding and Soft-NMS of video 0 (fixture README §8).


@pytest.fixture(scope='module')
def fixture(fixture_path):
  fx = fixture_utils.load_fixture(fixture_path)
  cand = _decode(
    fixture_utils.concat_levels(fx, 'out/cls_logits_'),
    fixture_utils.concat_levels(fx, 'out/reg_offsets_'),
    fixture_utils.concat_levels(fx, 'out/fpn_masks_'),
    fixture_utils.points(fx),
    fx['config']['levels']['lengths'],
  )
  return fx, cand


def test_fixture_candidates(fixture):
  fx, cand = fixture
  # Fixed shape: every level contributes min(topk, T_l * K) rows whatever the scores.
  assert cand['scores'].shape == (2, sum(min(2000, t * 5) for t in (256, 128, 64, 32)))
  valid = cand['valid'][0]
  assert valid.sum() == 2278 == len(fx['pred/pre_nms_scores'])
  got = (cand['segments'][0][valid], cand['scores'][0][valid], cand['labels'][0][valid])
  want = (fx['pred/pre_nms_segments'], fx['pred/pre_nms_scores'], fx['pred/pre_nms_labels'])
  g, w = _stable_order(*got), _stable_order(*want)
  np.testing.assert_array_equal(got[2][g], want[2][w])
  np.testing.assert_allclose(got[0][g], want[0][w], rtol=0, atol=1e-5)
  np.testing.assert_allclose(got[1][g], want[1][w], rtol=0, atol=1e-6)
  # The order itself is the reference's (level-major, score descending; no ties here).
  np.testing.assert_array_equal(got[2], want[2])
  np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)


def test_fixture_invalid_rows_are_below_threshold_or_too_short(fixture):
  _, cand = fixture
  segs, scores, valid = cand['segments'][0], cand['scores'][0], cand['valid'][0]
  low, short = scores <= 0.001, (segs[:, 1] - segs[:, 0]) <= 0.05
  np.testing.assert_array_equal(valid, ~low & ~short)
  # README §8: 112 of the 2400 entries at or below the threshold, 10 more too short.
  assert low.sum() == 112 and (short & ~low).sum() == 10


def test_fixture_nms_and_seconds(fixture):
  fx, cand = fixture
  segs, scores, labels, valid = jax.device_get(
    nms_ops.batched_soft_nms(
      cand['segments'][:1], cand['scores'][:1], cand['labels'][:1], cand['valid'][:1], **NMS_KWARGS
    )
  )
  keep = valid[0]
  assert keep.sum() == 200
  geometry = FeatureGeometry(feat_stride=4, num_frames=16, fps=30)
  seconds = postprocess.to_seconds(segs[0][keep], geometry, 34.4)
  np.testing.assert_array_equal(labels[0][keep], fx['pred/labels'])
  np.testing.assert_allclose(scores[0][keep], fx['pred/scores'], rtol=0, atol=1e-6)
  np.testing.assert_allclose(seconds, fx['pred/segments_sec'], rtol=0, atol=1e-5)
  assert (seconds >= 0).all() and (seconds <= 34.4).all()


# ----------------------------------------------------------------------------------------------
# Round trip: targets of known GT fed back as model outputs decode to the GT.

GEOMETRY = FeatureGeometry(feat_stride=4, num_frames=16, fps=30)
RANGES = ((0, 4), (4, 8), (8, 16), (16, 10000))
LENGTH = 128
NUM_CLASSES = 4
# Seconds; lengths from 1.1 to 63 grid units so that every level gets positives. The two class-1
# segments do not overlap; the class-0 and class-2 ones overlap the others.
GT_SEC = np.array([[1.0, 2.0], [3.0, 6.3], [7.5, 9.1], [10.0, 15.5], [2.2, 10.7]])
GT_LABELS = np.array([0, 1, 2, 1, 3])
GT_LOGITS = np.array([5.0, 4.0, 3.0, 2.0, 1.0], np.float32)  # Distinct scores per GT.


def _round_trip_outputs():
  points = seg_ops.make_points(LENGTH, RANGES)
  sizes = seg_ops.level_lengths(LENGTH, len(RANGES))
  gt_grid = GEOMETRY.sec_to_grid(GT_SEC).astype(np.float32)
  targets = jax.device_get(
    assignment.assign_targets(
      jnp.asarray(points),
      jnp.asarray(gt_grid),
      jnp.asarray(GT_LABELS),
      jnp.ones(len(GT_SEC), bool),
      num_classes=NUM_CLASSES,
    )
  )
  positive = targets['positive']
  assigned = targets['assigned']
  logits = np.full((len(points), NUM_CLASSES), -30.0, np.float32)
  rows = np.flatnonzero(positive)
  logits[rows, GT_LABELS[assigned[rows]]] = GT_LOGITS[assigned[rows]]
  offsets = np.where(positive[:, None], targets['offsets'], 0.5).astype(np.float32)
  return points, sizes, gt_grid, positive, assigned, logits, offsets


def test_round_trip_decodes_the_ground_truth():
  points, sizes, gt_grid, positive, assigned, logits, offsets = _round_trip_outputs()
  # Every GT has positives (so the round trip covers it) and several levels are used.
  assert set(assigned[positive]) == set(range(len(GT_SEC)))
  level_of = np.repeat(np.arange(len(sizes)), sizes)
  assert len(set(level_of[positive])) >= 3

  cand = _decode(logits[None], offsets[None], np.ones((1, len(points)), bool), points, sizes)
  segs, scores, labels, valid = (cand[k][0] for k in ('segments', 'scores', 'labels', 'valid'))
  # Exactly one valid candidate per positive point (the others are at sigmoid(-30) ~ 1e-13).
  assert valid.sum() == positive.sum()
  decoded = seg_ops.decode_segments(points, offsets)
  np.testing.assert_allclose(
    np.asarray(decoded)[positive], gt_grid[assigned[positive]], rtol=0, atol=1e-4
  )
  # Each valid candidate is its GT, with its label and score.
  gt_index = np.array([np.argmin(np.abs(gt_grid - s).sum(1)) for s in segs[valid]], np.int64)
  np.testing.assert_allclose(segs[valid], gt_grid[gt_index], rtol=0, atol=1e-4)
  np.testing.assert_array_equal(labels[valid], GT_LABELS[gt_index])
  np.testing.assert_allclose(scores[valid], jax.nn.sigmoid(GT_LOGITS[gt_index]), rtol=1e-6)

  # After Soft-NMS the best detection of each GT's class that overlaps it is the GT itself.
  out = jax.device_get(
    nms_ops.batched_soft_nms(
      cand['segments'],
      cand['scores'],
      cand['labels'],
      cand['valid'],
      **{**NMS_KWARGS, 'num_classes': NUM_CLASSES, 'voting_thresh': 0.0},
    )
  )
  keep = out[3][0]
  det_segs, det_scores, det_labels = out[0][0][keep], out[1][0][keep], out[2][0][keep]
  for n, (gt, label) in enumerate(zip(gt_grid, GT_LABELS)):
    mine = (det_labels == label) & (det_segs[:, 1] > gt[0]) & (det_segs[:, 0] < gt[1])
    best = np.flatnonzero(mine)[np.argmax(det_scores[mine])]
    np.testing.assert_allclose(det_segs[best], gt, rtol=0, atol=1e-4)
    np.testing.assert_allclose(det_scores[best], jax.nn.sigmoid(GT_LOGITS[n]), rtol=1e-6)

  # Back to seconds: the annotation, within float32 rounding of the grid units.
  duration = 20.0
  seconds = postprocess.to_seconds(det_segs, GEOMETRY, duration)
  for gt_sec, label in zip(GT_SEC, GT_LABELS):
    close = np.abs(seconds - gt_sec).max(1) < 1e-4
    assert (close & (det_labels == label)).any(), gt_sec
  np.testing.assert_allclose(
    postprocess.to_seconds(gt_grid, GEOMETRY, duration), GT_SEC, rtol=0, atol=1e-5
  )


def test_to_seconds_clips_to_the_video():
  grid = np.array([[-3.0, 1.0], [10.0, 500.0]])
  # sec = (g * 4 + 8) / 30: -4/30 -> 0, 12/30 = .4, 48/30 = 1.6, 2008/30 -> 20.
  np.testing.assert_allclose(postprocess.to_seconds(grid, GEOMETRY, 20.0), [[0, 0.4], [1.6, 20]])


# ----------------------------------------------------------------------------------------------
# Fixed shapes, one compile per length, invalid rows.


def test_invalid_rows_masked_low_and_short():
  sizes = [8, 4]
  points = seg_ops.make_points(8, ((0, 4), (4, 10000)))
  num_points, k = len(points), 2
  logits = np.full((1, num_points, k), -30.0, np.float32)
  offsets = np.ones((1, num_points, 2), np.float32)
  mask = np.ones((1, num_points), bool)
  logits[0, 1, 0] = 3.0  # valid
  logits[0, 2, 1] = 3.0  # masked out below
  mask[0, 2] = False
  logits[0, 3, 0] = float(np.log(0.001 / 0.999))  # probability 0.001: not above the threshold
  logits[0, 4, 1] = 3.0  # too short: length 2 * 0.02 = 0.04 <= 0.05
  offsets[0, 4] = 0.02
  logits[0, 5, 0] = 3.0  # just long enough: 0.03 + 0.03 = 0.06
  offsets[0, 5] = 0.03
  logits[0, 9, 1] = 2.0  # level 1 (stride 2), valid
  cand = _decode(logits, offsets, mask, points, sizes)
  n = min(2000, 8 * k) + min(2000, 4 * k)
  assert {key: v.shape for key, v in cand.items()} == {
    'segments': (1, n, 2),
    'scores': (1, n),
    'labels': (1, n),
    'valid': (1, n),
  }
  valid = cand['valid'][0]
  assert valid.sum() == 3
  got = sorted(
    (round(float(s[0]), 4), round(float(s[1]), 4), int(lab))
    for s, lab in zip(cand['segments'][0][valid], cand['labels'][0][valid])
  )
  # Point 1 (t = 1): [0, 2]; point 5 (t = 5): [4.97, 5.03]; point 9 = level 1 t = 2: [0, 4].
  assert got == [(0.0, 2.0, 0), (0.0, 4.0, 1), (4.97, 5.03, 0)]
  # A small top-k keeps the shape min(topk, T_l * K) per level.
  small = _decode(
    logits, offsets, mask, points, sizes, postprocess.DecodeConfig(**{**DECODE, 'pre_nms_topk': 3})
  )
  assert small['scores'].shape == (1, 6) and small['valid'][0].sum() == 3


def test_select_candidates_compiles_once_per_length():
  traces = []
  cfg = postprocess.DecodeConfig(**{**DECODE, 'pre_nms_topk': 50})

  def run(length):
    points = seg_ops.make_points(length, RANGES)
    sizes = seg_ops.level_lengths(length, len(RANGES))

    @jax.jit
    def fn(logits, offsets, mask):
      traces.append(length)
      return postprocess.select_candidates(logits, offsets, mask, points, sizes, cfg)

    return fn

  fns = {length: run(length) for length in (64, 128)}
  rng = np.random.default_rng(0)
  shapes = {}
  for length in (64, 128, 64, 128, 64):
    p = sum(seg_ops.level_lengths(length, len(RANGES)))
    logits = rng.normal(-3, 2, (2, p, 3)).astype(np.float32)
    offsets = rng.uniform(0, 3, (2, p, 2)).astype(np.float32)
    mask = rng.uniform(size=(2, p)) < 0.8
    out = fns[length](logits, offsets, mask)
    shapes.setdefault(length, set()).add(out['scores'].shape)
  assert sorted(traces) == [64, 128]
  assert shapes == {64: {(2, 50 + 50 + 48 + 24)}, 128: {(2, 50 + 50 + 50 + 48)}}


def _video(video_id, length, dim, rng):
  record = VideoRecord(
    video_id=video_id,
    subset='test',
    duration=((length - 1) * 4 + 16) / 30,
    fps=30.0,
    segments_sec=np.zeros((0, 2)),
    labels=np.zeros(0, np.int32),
  )
  feats = rng.normal(size=(length, dim)).astype(np.float32)
  return pipeline.Video(record, feats, GEOMETRY, np.zeros((0, 2), np.float32), record.labels)


def test_detector_compiles_once_per_padded_length(monkeypatch, tmp_path):
  config = tiny_config(tmp_path)  # the data paths are not read
  config.test.batch_size = 2
  config.test.pre_nms_thresh = 0.0  # an untrained model: keep every candidate
  model = build_model(config)
  max_len, dim = config.data.max_seq_len, config.data.input_dim
  params = model.init(
    jax.random.PRNGKey(0), jnp.zeros((1, max_len, dim)), jnp.ones((1, max_len), bool)
  )['params']
  traces = []
  select = postprocess.select_candidates
  monkeypatch.setattr(
    postprocess, 'select_candidates', lambda *a: traces.append(a[0].shape) or select(*a)
  )
  detector = loop.build_detector(config, model)
  rng = np.random.default_rng(0)
  # Padded lengths 128, 128, 256, 128, 128: two shapes; the 128 group fills 2 batches of 2.
  lengths = {'a': 50, 'b': 128, 'c': 200, 'd': 7, 'e': 100}
  videos = [_video(v, t, dim, rng) for v, t in lengths.items()]
  first = detector.detect(params, videos)
  again = detector.detect(params, videos[::-1])
  assert detector.num_compiled == 2
  num_points = lambda t: sum(seg_ops.level_lengths(t, len(config.model.regression_ranges)))
  assert sorted(t[1] for t in traces) == [num_points(128), num_points(256)]
  assert set(first) == set(lengths)
  for vid, det in first.items():
    n = len(det['scores'])
    assert 0 < n <= config.test.max_seg_num
    assert det['segments'].shape == (n, 2) and det['labels'].shape == (n,)
    assert (det['scores'] >= config.test.min_score).all()
    assert (np.diff(det['scores']) <= 0).all()
    duration = videos[list(lengths).index(vid)].record.duration
    assert (det['segments'] >= 0).all() and (det['segments'] <= duration).all()
    assert ((det['labels'] >= 0) & (det['labels'] < config.data.num_classes)).all()
    # Batch composition does not change a video's detections.
    np.testing.assert_allclose(again[vid]['scores'], det['scores'], rtol=0, atol=1e-6)
