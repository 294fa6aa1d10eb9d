"""Soft-NMS: NumPy and jitted versions against the reference fixture and an independent oracle."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from asl_jax.ops import nms
from tests.ops import nms_oracle
from tests.ops.nms_oracle import REFERENCE_NMS

f32 = np.float32
N_PAD = 128  # candidates per video in the batched tests: one compile per configuration
METHOD_CODE = {'hard': 0, 'linear': 1, 'gaussian': 2}


def soft_nms(*args, **settings):
  return nms.soft_nms(*args, **{**REFERENCE_NMS, **settings})


def batched_soft_nms(*args, **settings):
  return nms.batched_soft_nms(*args, **{**REFERENCE_NMS, **settings})


def oracle(segs, scores, labels, **settings):
  """The oracle at REFERENCE_NMS, with ``settings`` (same names as the ops') changed."""
  unknown = settings.keys() - REFERENCE_NMS.keys()
  if unknown:
    raise TypeError(f'oracle: unknown settings {sorted(unknown)}')
  cfg = {**REFERENCE_NMS, **settings}
  return nms_oracle.batched_nms(
    segs,
    scores,
    labels,
    iou_threshold=cfg['iou_threshold'],
    min_score=cfg['min_score'],
    max_seg_num=cfg['max_seg_num'],
    use_soft_nms=cfg['method'] != 'hard',
    multiclass=cfg['multiclass'],
    sigma=cfg['sigma'],
    voting_thresh=cfg['voting_thresh'],
    method=METHOD_CODE[cfg['method']],
  )


def batched(videos, n=N_PAD, *, num_classes, **cfg):
  """Runs batched_soft_nms on videos padded to n rows with garbage (NaN segments, bad labels)."""
  b = len(videos)
  rng = np.random.default_rng(123)
  segs = np.full((b, n, 2), np.nan, f32)
  scores = rng.uniform(size=(b, n)).astype(f32)
  labels = rng.integers(-3, num_classes + 3, (b, n)).astype(np.int32)
  valid = np.zeros((b, n), bool)
  for i, (s, p, lab) in enumerate(videos):
    m = len(p)
    if m:
      segs[i, :m], scores[i, :m], labels[i, :m], valid[i, :m] = s, p, lab, True
  out = jax.device_get(
    batched_soft_nms(segs, scores, labels, valid, num_classes=num_classes, **cfg)
  )
  return [tuple(o[i][out[3][i]] for o in out[:3]) for i in range(b)], out


def random_video(rng, n, k, *, grid=False):
  """Continuous: no ties. Grid: integer segments (duplicates, touching ends) and tied scores."""
  if grid:
    start = rng.integers(0, 40, n)
    segs = np.stack([start, start + rng.integers(1, 9, n)], 1).astype(f32)
    scores = rng.choice(np.array([0.9, 0.6, 0.6, 0.3, 0.05, 0.004, 0.0015], f32), n)
  else:
    center, length = rng.uniform(0, 120, n), rng.uniform(0.2, 25, n)
    segs = np.stack([center - length / 2, center + length / 2], 1).astype(f32)
    scores = (0.001 + 0.999 * rng.uniform(size=n) ** 3).astype(f32)
  return segs, scores, rng.integers(0, k, n).astype(np.int64)


def assert_same(got, want, *, score_tol=1e-6, seg_rtol=0.0, name=''):
  """Same rows in the same order; scores within score_tol; segments exact unless seg_rtol."""
  try:
    _assert_same(got, want, score_tol, seg_rtol)
  except AssertionError as e:
    raise AssertionError(f'{name}: {e}') from None


def _assert_same(got, want, score_tol, seg_rtol):
  g_segs, g_scores, g_labels = got
  w_segs, w_scores, w_labels = want
  assert g_scores.shape == w_scores.shape, (g_scores.shape, w_scores.shape)
  np.testing.assert_array_equal(g_labels, w_labels)
  np.testing.assert_allclose(g_scores, w_scores, rtol=0, atol=score_tol)
  if seg_rtol:
    np.testing.assert_allclose(g_segs, w_segs, rtol=seg_rtol, atol=seg_rtol, equal_nan=True)
  else:
    np.testing.assert_array_equal(g_segs, w_segs)


# ----------------------------------------------------------------------------------------------
# The reference fixture (ActionFormer's C++ soft-NMS on 2278 candidates, 5 classes).


@pytest.fixture(scope='module')
def fixture_nms(fixture_path):
  data = np.load(fixture_path)
  cfg = json.loads(str(data['config_json']))['model_kwargs']['test_cfg']
  kwargs = dict(
    sigma=cfg['nms_sigma'],
    min_score=cfg['min_score'],
    max_seg_num=cfg['max_seg_num'],
    multiclass=cfg['multiclass_nms'],
    voting_thresh=cfg['voting_thresh'],
    iou_threshold=cfg['iou_threshold'],
  )
  inputs = tuple(data[f'pred/pre_nms_{k}'] for k in ('segments', 'scores', 'labels'))
  want = tuple(data[k] for k in ('pred/nms_segments_grid', 'pred/scores', 'pred/labels'))
  return inputs, want, kwargs


def test_soft_nms_reproduces_fixture(fixture_nms):
  inputs, want, kwargs = fixture_nms
  assert kwargs['multiclass'] and kwargs['voting_thresh'] > 0  # voting must be ignored
  got = soft_nms(*inputs, **kwargs)
  assert len(got[1]) == 200
  assert got[0].dtype == np.float32 and got[1].dtype == np.float32 and got[2].dtype == np.int32
  assert_same(got, want)  # the fixture has no tied scores: same order


def test_batched_reproduces_fixture(fixture_nms):
  (segs, scores, labels), want, kwargs = fixture_nms
  n = len(scores)
  (got,), _ = batched([(segs, scores, labels)], n, num_classes=5, **kwargs)
  assert_same(got, want)


def test_oracle_reproduces_fixture_bit_for_bit(fixture_nms):
  """Checks the oracle itself: with glibc's expf it matches the C++ exactly."""
  inputs, want, kwargs = fixture_nms
  got = oracle(*inputs, **kwargs)
  assert_same(got, want, score_tol=0.0 if nms_oracle.HAVE_GLIBC_EXPF else 1e-6)


# ----------------------------------------------------------------------------------------------
# Random inputs against the oracle.

CONFIGS = {
  'gaussian': dict(method='gaussian'),
  'gaussian_agnostic_vote': dict(method='gaussian', multiclass=False, voting_thresh=0.7),
  'linear': dict(method='linear', iou_threshold=0.3, min_score=0.01),
  'hard': dict(method='hard', iou_threshold=0.4, min_score=0.01),
  'hard_agnostic_vote': dict(method='hard', multiclass=False, voting_thresh=0.5),
}


@pytest.mark.parametrize('name', list(CONFIGS))
def test_soft_nms_and_batched_match_oracle_on_random_inputs(name):
  """Continuous inputs (no ties) and grid inputs (many exact ties, duplicates), 4 classes."""
  cfg = dict(CONFIGS[name], max_seg_num=50)
  rng = np.random.default_rng(list(CONFIGS).index(name))
  videos = [random_video(rng, int(n), 4) for n in (N_PAD, 100, 77, 40, 3)]
  videos += [random_video(rng, int(rng.integers(1, N_PAD)), 4, grid=True) for _ in range(6)]
  got_batched, _ = batched(videos, num_classes=4, **cfg)
  seg_rtol = 1e-5 if cfg.get('voting_thresh') else 0.0
  for i, (video, got) in enumerate(zip(videos, got_batched)):
    want = oracle(*video, **cfg)
    assert_same(soft_nms(*video, **cfg), want, seg_rtol=seg_rtol, name=f'numpy video {i}')
    assert_same(got, want, seg_rtol=seg_rtol, name=f'batched video {i}')


# ----------------------------------------------------------------------------------------------
# Adversarial inputs.


def tie_groups(exact: bool):
  """Groups of 3 near-duplicates, far apart, all with score 0.5 or 0.25, two classes.

  Every group starts tied with every other, so which one is selected next depends on the array
  positions after the swap-with-max and swap-with-last moves. With ``exact`` the groups are
  translates by whole numbers with dyadic offsets, so decayed scores tie across groups too.
  """
  segs, scores, labels = [], [], []
  for g in range(12):
    base = f32(100 * g)
    for j, off in enumerate((0.0, 0.25, 0.5) if exact else (0.0, 0.013, 0.031)):
      segs.append((base + f32(off), base + f32(10 + off * (j % 2))))
      scores.append(0.25 if g % 5 == 3 else 0.5)
      labels.append(g % 2)
  order = np.random.default_rng(0).permutation(len(scores))
  return (
    np.asarray(segs, f32)[order],
    np.asarray(scores, f32)[order],
    np.asarray(labels, np.int64)[order],
  )


def adversarial_videos():
  below = (
    np.array([[0, 5], [10, 15], [20, 25], [0, 5], [30, 31]], f32),
    np.array([0.0005, 0.0007, 0.0003, 0.0009, 0.0004], f32),
    np.array([1, 1, 1, 2, 2]),
  )
  zero_length = (
    np.array([[3, 3], [3, 3], [0, 6], [3, 3.5], [5, 5], [2.5, 3]], f32),
    np.array([0.8, 0.8, 0.7, 0.6, 0.5, 0.6], f32),
    np.array([0, 0, 0, 0, 0, 1]),
  )
  identical = (np.tile(np.array([[1, 4]], f32), (9, 1)), np.full(9, 0.3, f32), np.zeros(9, int))
  single = (np.array([[2, 9]], f32), np.array([0.4], f32), np.array([3]))
  return {
    'tie_groups': tie_groups(exact=False),
    'tie_groups_exact': tie_groups(exact=True),
    'below_min_score': below,
    'zero_length': zero_length,
    'identical': identical,
    'single': single,
  }


@pytest.mark.parametrize('min_score', [0.001, 0.1])
def test_adversarial_inputs_match_oracle(min_score):
  videos = adversarial_videos()
  got_batched, _ = batched(list(videos.values()), num_classes=4, min_score=min_score)
  for (name, video), got in zip(videos.items(), got_batched):
    want = oracle(*video, min_score=min_score)
    assert_same(soft_nms(*video, min_score=min_score), want, name=f'numpy {name}')
    assert_same(got, want, name=f'batched {name}')


def test_first_selection_is_never_tested_against_min_score():
  segs, scores, labels = adversarial_videos()['below_min_score']
  got = soft_nms(segs, scores, labels, min_score=0.001)
  # One row per class, each the class's best, although every score is below min_score.
  np.testing.assert_array_equal(got[1], f32([0.0009, 0.0007]))
  np.testing.assert_array_equal(got[2], [2, 1])


def test_ties_follow_the_swapped_positions():
  """Hand-checked: equal scores come out in the C++'s array order, not by input index."""
  segs = np.array([[0, 1], [0, 1], [10, 11], [20, 21], [30, 31]], f32)
  got = soft_nms(segs, np.full(5, 0.5, f32), np.zeros(5, int), min_score=0.2)
  # i=0 takes row 0 and drops its duplicate (row 1), moving the last row (4) into position 1.
  np.testing.assert_array_equal(got[0][:, 0], [0, 30, 10, 20])

  segs = np.array([[0, 1], [10, 11], [20, 21]], f32)
  got = soft_nms(segs, f32([0.3, 0.3, 0.5]), np.zeros(3, int))
  # i=0 takes row 2 and swaps row 0 into position 2, behind row 1.
  np.testing.assert_array_equal(got[0][:, 0], [20, 10, 0])
  for video in [(segs, f32([0.3, 0.3, 0.5]), np.zeros(3, int))]:
    (batched_got,), _ = batched([video], num_classes=4)
    assert_same(batched_got, got)


def test_voting_zero_length_is_rejected_by_numpy_and_nan_in_batched():
  segs = np.array([[3, 3], [0, 6], [10, 12]], f32)
  scores = np.array([0.9, 0.5, 0.4], f32)
  labels = np.zeros(3, int)
  cfg = dict(multiclass=False, voting_thresh=0.5)
  with pytest.raises(ValueError, match='positive length'):
    soft_nms(segs, scores, labels, **cfg)
  (got,), _ = batched([(segs, scores, labels)], num_classes=4, **CONFIGS['gaussian_agnostic_vote'])
  want = oracle(segs, scores, labels, **CONFIGS['gaussian_agnostic_vote'])
  assert np.isnan(want[0][0]).all()  # the reference's 0/0
  assert_same(got, want, seg_rtol=1e-5)


def test_empty_inputs():
  segs, scores, labels = soft_nms(np.zeros((0, 2)), np.zeros(0), np.zeros(0, int))
  assert segs.shape == (0, 2) and scores.shape == (0,) and labels.shape == (0,)
  assert labels.dtype == np.int32
  (got, _), out = batched([adversarial_videos()['single'], ((), (), ())], num_classes=4)
  out_segs, out_scores, out_labels, out_valid = out
  assert out_valid.shape == (2, 200) and out_valid[0].sum() == 1 and not out_valid[1].any()
  assert (out_labels[1] == -1).all() and (out_scores[1] == 0).all() and (out_segs[1] == 0).all()


def test_many_holes_in_one_sweep_use_the_large_capacity_path():
  """One selection drops 100 rows interleaved with kept ones: more pairs than 16 * B."""
  n = 201
  segs = np.zeros((n, 2), f32)
  scores = np.zeros(n, f32)
  segs[0], scores[0] = (0, 10), 0.9
  for i in range(1, n):
    if i % 2:
      segs[i], scores[i] = (0, 10), 0.0015  # decayed by exp(-2) below min_score
    else:
      segs[i], scores[i] = (20 * i, 20 * i + 5), 0.1 + 0.8 * ((i * 37) % 101) / 101
  video = (segs, scores, np.zeros(n, int))
  (got,), _ = batched([video], 256, num_classes=1, max_seg_num=300)
  want = oracle(*video, max_seg_num=300)
  assert len(want[1]) == 101
  assert_same(got, want)
  assert_same(soft_nms(*video, max_seg_num=300), want)


# ----------------------------------------------------------------------------------------------
# Batched: fixed shapes and batching.


def test_batched_compiles_once_per_shape():
  cfg = dict(num_classes=3, sigma=0.37)  # a configuration no other test uses
  rng = np.random.default_rng(0)

  def call(b, n):
    segs = np.sort(rng.uniform(0, 50, (b, n, 2)), axis=-1).astype(f32)
    labels = rng.integers(0, 3, (b, n)).astype(np.int32)
    valid = rng.uniform(size=(b, n)) < 0.8
    batched_soft_nms(segs, rng.uniform(size=(b, n)).astype(f32), labels, valid, **cfg)

  before = nms.batched_soft_nms._cache_size()
  for _ in range(3):
    call(2, 64)
  assert nms.batched_soft_nms._cache_size() == before + 1
  call(3, 64)
  assert nms.batched_soft_nms._cache_size() == before + 2


def test_batch_equals_per_video_runs():
  rng = np.random.default_rng(5)
  videos = [random_video(rng, int(n), 4) for n in (N_PAD, 60, 1, 99, 128, 20)]
  _, together = batched(videos, num_classes=4)
  for i, video in enumerate(videos):
    _, alone = batched([video], num_classes=4)
    for a, t in zip(alone, together):
      np.testing.assert_array_equal(a[0], t[i])


def test_batched_under_outer_jit_with_max_seg_num_above_n():
  videos = [random_video(np.random.default_rng(1), 30, 2)]
  (got,), out = batched(videos, 32, num_classes=2, max_seg_num=40)
  assert out[0].shape == (1, 40, 2)
  assert_same(got, soft_nms(*videos[0], max_seg_num=40))
  fn = jax.jit(lambda *a: batched_soft_nms(*a, num_classes=2, max_seg_num=40))
  segs, scores, labels = videos[0]
  again = fn(segs[None], scores[None], labels[None].astype(np.int32), np.ones((1, 30), bool))
  for a, b in zip(jax.device_get(again), out):
    np.testing.assert_array_equal(a[:, :40], b)


def test_argument_errors():
  segs, scores, labels = np.zeros((2, 2), f32), np.ones(2, f32), np.zeros(2, int)
  with pytest.raises(ValueError, match='method'):
    soft_nms(segs, scores, labels, method='cubic')
  with pytest.raises(ValueError, match='max_seg_num'):
    soft_nms(segs, scores, labels, max_seg_num=0)
  with pytest.raises(ValueError, match='disagree'):
    soft_nms(segs, scores[:1], labels)
  with pytest.raises(ValueError, match='finite'):
    soft_nms(segs, np.array([1, np.nan], f32), labels)
  with pytest.raises(ValueError, match='end >= start'):
    soft_nms(np.array([[1, 0], [0, 1]], f32), scores, labels)
  with pytest.raises(ValueError, match='num_classes'):
    batched_soft_nms(segs[None], scores[None], labels[None], scores[None] > 0, num_classes=0)
