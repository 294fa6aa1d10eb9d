"""External classification score fusion (ActivityNet protocol) with hand-computed numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asl_jax.evaluation import score_fusion

DETS = {
  'segments': np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]),
  'scores': np.array([0.25, 0.64, 0.01]),
  'labels': np.array([7, 7, 1]),  # The detector's labels are discarded.
}


def test_hand_numbers():
  # Keep the 2 best detections: 0.64 ([2, 3]) then 0.25 ([0, 1]). Best classes: 2 (1.0), 3 (0.25).
  # Scores: sqrt(1 * .64) = .8, sqrt(1 * .25) = .5, sqrt(.25 * .64) = .4, sqrt(.25 * .25) = .25.
  out = score_fusion.fuse_video_scores(DETS, [0.1, 0.04, 1.0, 0.25], num_pred=2)
  np.testing.assert_allclose(out['scores'], [0.8, 0.5, 0.4, 0.25], rtol=0, atol=1e-15)
  np.testing.assert_array_equal(out['labels'], [2, 2, 3, 3])
  np.testing.assert_array_equal(out['segments'], [[2, 3], [0, 1], [2, 3], [0, 1]])
  assert out['labels'].dtype == np.int64


def test_all_detections_kept_below_num_pred_and_top_k_classes():
  out = score_fusion.fuse_video_scores(DETS, [0.81, 0.0, 0.09], top_k_classes=3)
  # Class order 0 (.81), 2 (.09), 1 (0); detections .64, .25, .01.
  want = np.sqrt(np.array([0.81, 0.09, 0.0])[:, None] * np.array([0.64, 0.25, 0.01])).reshape(-1)
  np.testing.assert_allclose(out['scores'], want, rtol=0, atol=1e-15)
  np.testing.assert_array_equal(out['labels'], [0, 0, 0, 2, 2, 2, 1, 1, 1])
  np.testing.assert_allclose(out['scores'][:3], [0.72, 0.45, 0.09], atol=1e-15)


def test_ties_keep_the_lower_index_and_input_order():
  dets = {'segments': [[0, 1], [1, 2], [2, 3]], 'scores': [0.5, 0.5, 0.9], 'labels': [0, 0, 0]}
  out = score_fusion.fuse_video_scores(dets, [0.3, 0.7, 0.7, 0.1], num_pred=3)
  np.testing.assert_array_equal(out['labels'], [1, 1, 1, 2, 2, 2])
  np.testing.assert_array_equal(out['segments'][:3], [[2, 3], [0, 1], [1, 2]])


def test_fewer_classes_than_top_k_and_empty_detections():
  out = score_fusion.fuse_video_scores(DETS, [0.49], top_k_classes=2)
  np.testing.assert_allclose(out['scores'], [0.56, 0.35, 0.07], atol=1e-15)
  empty = {'segments': np.zeros((0, 2)), 'scores': np.zeros(0), 'labels': np.zeros(0)}
  out = score_fusion.fuse_video_scores(empty, [0.1, 0.2])
  assert out['segments'].shape == (0, 2) and out['scores'].shape == (0,)


@pytest.mark.parametrize(
  'cls, kwargs',
  [([], {}), ([0.1, -0.2], {}), ([0.1, float('nan')], {}), ([0.5], {'num_pred': 0})],
)
def test_bad_arguments_raise(cls, kwargs):
  with pytest.raises(ValueError):
    score_fusion.fuse_video_scores(DETS, cls, **kwargs)


def test_loader_and_v_prefix_lookup(tmp_path):
  path = tmp_path / 'cls.json'
  path.write_text(
    json.dumps({'version': 'x', 'results': {'v_abc': [0.2, 0.8], 'def': [1, 0]}, 'external': {}})
  )
  scores = score_fusion.load_external_scores(path, num_classes=2)
  np.testing.assert_array_equal(scores['v_abc'], [0.2, 0.8])
  np.testing.assert_array_equal(score_fusion.video_scores(scores, 'abc'), [0.2, 0.8])
  np.testing.assert_array_equal(score_fusion.video_scores(scores, 'v_def'), [1.0, 0.0])
  with pytest.raises(KeyError, match='ghi'):
    score_fusion.video_scores(scores, 'ghi')

  fused = score_fusion.fuse_scores({'abc': DETS, 'v_def': DETS}, scores, num_pred=1)
  np.testing.assert_allclose(fused['abc']['scores'], [np.sqrt(0.8 * 0.64), np.sqrt(0.2 * 0.64)])
  np.testing.assert_array_equal(fused['abc']['labels'], [1, 0])
  np.testing.assert_array_equal(fused['v_def']['labels'], [0, 1])

  bare = tmp_path / 'bare.json'
  bare.write_text(json.dumps({'abc': [0.5, 0.5, 0.0]}))
  assert score_fusion.load_external_scores(bare)['abc'].shape == (3,)


@pytest.mark.parametrize(
  'payload, match',
  [
    ({'results': {'a': [0.1, 0.2], 'b': [0.1]}}, 'expected 2'),
    ({'results': {'a': [0.1, -1.0]}}, '>= 0'),
    ({'results': {'a': 'oops'}}, 'list of numbers'),
    ({'results': {}}, 'expected'),
  ],
)
def test_loader_errors_name_the_video(tmp_path, payload, match):
  path = tmp_path / 'cls.json'
  path.write_text(json.dumps(payload))
  with pytest.raises(ValueError, match=match):
    score_fusion.load_external_scores(path)


def test_loader_checks_num_classes(tmp_path):
  path = tmp_path / 'cls.json'
  path.write_text(json.dumps({'results': {'a': [0.1, 0.2]}}))
  with pytest.raises(ValueError, match="'a'.*expected 3"):
    score_fusion.load_external_scores(path, num_classes=3)
