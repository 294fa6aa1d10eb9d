"""Tests for the detection mAP: hand-computed cases, corner cases and an independent oracle."""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
import pytest

from asl_jax.evaluation import metrics
from asl_jax.evaluation.metrics import GroundTruth, Predictions, compute_map
from tests.evaluation import map_oracle

THREE = (0.3, 0.5, 0.7)


def _map(gt_rows, pred_rows, tious=THREE, **kwargs) -> metrics.MAPResult:
  return compute_map(
    GroundTruth.from_rows(gt_rows), Predictions.from_rows(pred_rows), tious, **kwargs
  )


def _assert_matches_oracle(gt_rows, pred_rows, tious, atol=1e-9):
  result = _map(gt_rows, pred_rows, tious)
  expected = map_oracle.evaluate(gt_rows, pred_rows, tious)
  np.testing.assert_array_equal(result.class_ids, expected['class_ids'])
  np.testing.assert_allclose(result.per_class_ap, expected['ap'].T, rtol=0, atol=atol)
  np.testing.assert_allclose(result.map, expected['map'], rtol=0, atol=atol)
  assert result.average_map == pytest.approx(expected['average_map'], abs=atol)
  np.testing.assert_allclose(result.recall[1], expected['recall'][:, 0], rtol=0, atol=atol)
  np.testing.assert_allclose(result.recall[5], expected['recall'][:, 1], rtol=0, atol=atol)
  return result


def _random_rows(seed: int, zero_length: bool = False):
  """A tie-free case with several videos and classes, extra labels and videos without GT."""
  rng = np.random.default_rng(seed)
  num_videos, num_classes = int(rng.integers(2, 8)), int(rng.integers(1, 6))
  gt = []
  for _ in range(int(rng.integers(5, 40))):
    start = rng.uniform(0, 60)
    length = 0.0 if zero_length and rng.random() < 0.2 else rng.uniform(0.5, 20)
    gt.append(
      (f'v{rng.integers(num_videos)}', start, start + length, int(rng.integers(num_classes)))
    )
  preds = []
  for _ in range(int(rng.integers(0, 200))):
    if rng.random() < 0.6:  # Near a GT, usually with its label.
      video, gs, ge, label = gt[rng.integers(len(gt))]
      if zero_length and gs == ge and rng.random() < 0.5:
        start, end = gs, ge
      else:
        start, end = sorted((gs + rng.normal(0, 2), ge + rng.normal(0, 2)))
      if rng.random() < 0.2:
        label = int(rng.integers(num_classes + 2))
    else:  # Anywhere, including videos and labels without GT.
      video, label = f'v{rng.integers(num_videos + 2)}', int(rng.integers(num_classes + 2))
      start = rng.uniform(0, 60)
      end = start + rng.uniform(0.1, 20)
    preds.append((video, start, end, label, float(rng.random())))
  return gt, preds


# --- Hand-computed cases ---------------------------------------------------------------------


def test_false_positive_ranked_first():
  # 2 GT, 3 predictions by score: FP, TP, TP. tp_cum = [0, 1, 2], fp_cum = [1, 1, 1]:
  # recall [0, .5, 1], precision [0, .5, 2/3]; interpolated precision is 2/3 at both recall steps,
  # so AP = .5 * 2/3 + .5 * 2/3 = 2/3.
  gt = [('a', 0, 10, 0), ('a', 20, 30, 0)]
  preds = [('a', 40, 50, 0, 0.9), ('a', 0, 10, 0, 0.8), ('a', 20, 30, 0, 0.7)]
  np.testing.assert_allclose(_map(gt, preds).map, [2 / 3] * 3, rtol=0, atol=1e-15)


def test_false_positive_ranked_second():
  # TP, FP, TP: precision [1, .5, 2/3], recall [.5, .5, 1] -> AP = .5 * 1 + .5 * 2/3 = 5/6.
  gt = [('a', 0, 10, 0), ('a', 20, 30, 0)]
  preds = [('a', 0, 10, 0, 0.9), ('a', 40, 50, 0, 0.8), ('a', 20, 30, 0, 0.7)]
  np.testing.assert_allclose(_map(gt, preds).map, [5 / 6] * 3, rtol=0, atol=1e-15)


def test_threshold_dependence():
  # One GT [0, 10], one prediction [0, 6]: IoU 0.6 -> TP at 0.3 and 0.5 (AP 1), FP at 0.7 (AP 0).
  result = _map([('a', 0, 10, 0)], [('a', 0, 6, 0, 0.5)])
  np.testing.assert_array_equal(result.map, [1.0, 1.0, 0.0])
  assert result.average_map == pytest.approx(2 / 3)


def test_fall_through_to_next_best_gt():
  # GT A [0, 10], B [0, 8]. P1 [0, 10] takes A (IoU 1). P2 [0, 10]: its best GT A is locked, so it
  # walks on to B (IoU .8): TP at t = .5 (AP 1), FP at t = .9 (tp [1, 0]: AP = .5 * 1 = .5).
  gt = [('a', 0, 10, 0), ('a', 0, 8, 0)]
  preds = [('a', 0, 10, 0, 0.9), ('a', 0, 10, 0, 0.8)]
  np.testing.assert_array_equal(_map(gt, preds, (0.5, 0.9)).map, [1.0, 0.5])


def test_stop_at_first_candidate_below_threshold():
  # GT A [0, 10], B [0, 4]. P1 [0, 10] takes A. P2 [0, 10]: A locked, B has IoU .4 < .5 -> FP.
  gt = [('a', 0, 10, 0), ('a', 0, 4, 0)]
  preds = [('a', 0, 10, 0, 0.9), ('a', 0, 10, 0, 0.8)]
  np.testing.assert_array_equal(_map(gt, preds, (0.3, 0.5)).map, [1.0, 0.5])


def test_recall_at_kx():
  # Class 0. Video a: 1 GT, top-1 prediction misses it, the 2nd hits -> 0 hits @1x, 1 hit @5x.
  # Video b: 2 GT; top 2 predictions both hit GT [0, 10], the 3rd hits [20, 30] -> 1 @1x, 2 @5x.
  # Class 0 has 3 GT: R@1x = 1/3, R@5x = 1. Class 1 has GT but no predictions: 0 and 0.
  # Averaged over classes: R@1x = 1/6, R@5x = 1/2.
  gt = [('a', 0, 10, 0), ('b', 0, 10, 0), ('b', 20, 30, 0), ('b', 40, 50, 1)]
  preds = [
    ('a', 20, 30, 0, 0.9),
    ('a', 0, 10, 0, 0.8),
    ('b', 0, 10, 0, 0.9),
    ('b', 0, 10, 0, 0.8),
    ('b', 20, 30, 0, 0.7),
  ]
  result = _assert_matches_oracle(gt, preds, (0.5,))
  np.testing.assert_allclose(result.recall[1], [1 / 6])
  np.testing.assert_allclose(result.recall[5], [1 / 2])


# --- Against the oracle ---------------------------------------------------------------------


@pytest.mark.parametrize('seed', range(8))
def test_matches_oracle_on_random_cases(seed):
  gt, preds = _random_rows(seed)
  _assert_matches_oracle(gt, preds, np.linspace(0.1, 0.9, 9))


@pytest.mark.parametrize('seed', range(3))
def test_matches_oracle_with_zero_length_segments(seed):
  gt, preds = _random_rows(100 + seed, zero_length=True)
  _assert_matches_oracle(gt, preds, metrics.TIOU_PRESETS['activitynet'])


def test_threshold_order_is_kept():
  gt, preds = _random_rows(7)
  tious = np.array([0.7, 0.3, 0.5])
  shuffled, ordered = _map(gt, preds, tious), _map(gt, preds, np.sort(tious))
  np.testing.assert_array_equal(shuffled.map, ordered.map[[2, 0, 1]])
  np.testing.assert_array_equal(shuffled.tious, tious)


# --- Corner cases ---------------------------------------------------------------------------


def test_labels_without_gt_are_ignored():
  gt = [('a', 0, 10, 0), ('a', 20, 30, 2)]
  preds = [('a', 0, 10, 0, 0.5), ('a', 20, 30, 2, 0.4)]
  extra = [('a', 0, 10, 1, 0.9), ('a', 20, 30, 7, 0.95), ('a', 20, 30, -1, 0.99)]
  base, with_extra = _map(gt, preds), _map(gt, preds + extra)
  np.testing.assert_array_equal(with_extra.class_ids, [0, 2])
  np.testing.assert_array_equal(with_extra.per_class_ap, base.per_class_ap)
  np.testing.assert_array_equal(with_extra.map, [1.0] * 3)


def test_videos_without_gt_are_false_positives():
  # The higher-scored prediction is in a video without GT: precision .5 at recall 1 -> AP .5.
  result = _map([('a', 0, 10, 0)], [('z', 0, 10, 0, 0.9), ('a', 0, 10, 0, 0.8)])
  np.testing.assert_array_equal(result.map, [0.5] * 3)


def test_zero_length_gt_is_kept():
  # A zero-length prediction on a zero-length GT has IoU 0/0 = NaN, which the reference lets pass
  # every threshold (TP); a normal prediction over it has IoU 0 (FP). npos counts the GT.
  gt = [('a', 5, 5, 0), ('a', 20, 30, 0)]
  np.testing.assert_array_equal(_map(gt, [('a', 5, 5, 0, 0.9)]).map, [0.5] * 3)
  np.testing.assert_array_equal(_map(gt, [('a', 4, 6, 0, 0.9)]).map, [0.0] * 3)


def test_duplicate_gt_counts_twice():
  gt = [('a', 0, 10, 0), ('a', 0, 10, 0)]
  one = [('a', 0, 10, 0, 0.9)]
  np.testing.assert_array_equal(_map(gt, one).map, [0.5] * 3)
  np.testing.assert_array_equal(_map(gt, one + [('a', 0, 10, 0, 0.8)]).map, [1.0] * 3)


def test_tied_scores_keep_input_order():
  # Equal scores: the earlier row ranks first. FP then TP -> AP .5; TP then FP -> AP 1.
  gt = [('a', 0, 10, 0)]
  miss, hit = ('a', 40, 50, 0, 1.0), ('a', 0, 10, 0, 1.0)
  np.testing.assert_array_equal(_map(gt, [miss, hit]).map, [0.5] * 3)
  np.testing.assert_array_equal(_map(gt, [hit, miss]).map, [1.0] * 3)


def test_tied_ious_prefer_earlier_gt():
  # GT A [0, 10], B [5, 15]; P1 [5, 10] has IoU .5 with both and takes the one listed first.
  # P2 [0, 10] has IoU 1 with A and 1/3 with B. If P1 took A, P2 falls through to B: TP at .3,
  # FP at .5 (AP 1, .5). If P1 took B (B listed first), P2 takes A: TP at both (AP 1, 1).
  a, b = ('a', 0, 10, 0), ('a', 5, 15, 0)
  preds = [('a', 5, 10, 0, 0.9), ('a', 0, 10, 0, 0.8)]
  np.testing.assert_array_equal(_assert_matches_oracle([a, b], preds, (0.3, 0.5)).map, [1.0, 0.5])
  np.testing.assert_array_equal(_assert_matches_oracle([b, a], preds, (0.3, 0.5)).map, [1.0, 1.0])


def test_class_without_predictions_has_zero_ap():
  gt = [('a', 0, 10, 0), ('a', 20, 30, 1)]
  result = _map(gt, [('a', 0, 10, 0, 0.9)])
  np.testing.assert_array_equal(result.per_class_ap, [[1.0] * 3, [0.0] * 3])
  np.testing.assert_array_equal(result.map, [0.5] * 3)


def test_empty_predictions():
  result = _map([('a', 0, 10, 0), ('b', 0, 10, 1)], [])
  np.testing.assert_array_equal(result.per_class_ap, np.zeros((2, 3)))
  assert result.average_map == 0.0
  np.testing.assert_array_equal(result.recall[1], np.zeros(3))


def test_empty_ground_truth_raises():
  with pytest.raises(ValueError, match='empty'):
    _map([], [('a', 0, 1, 0, 0.5)])


@pytest.mark.parametrize('row', [('vid_nan', float('nan'), 1.0), ('vid_inf', 0.0, float('inf'))])
def test_bad_segments_raise_with_video_id(row):
  video, start, end = row
  with pytest.raises(ValueError, match=f'row 1 .*{video}'):
    Predictions.from_rows([('ok', 0, 1, 0, 0.5), (video, start, end, 0, 0.5)])
  with pytest.raises(ValueError, match=f'row 1 .*{video}'):
    GroundTruth.from_rows([('ok', 0, 1, 0), (video, start, end, 0)])


def test_nan_score_raises():
  with pytest.raises(ValueError, match="'v7'.*NaN"):
    Predictions.from_rows([('v7', 0, 1, 0, float('nan'))])


def test_from_rows_matches_columns():
  gt = GroundTruth.from_rows([('a', 0, 1.5, 3), ('b', 2, 4, 1)])
  assert gt.video_ids.tolist() == ['a', 'b']
  assert gt.starts.dtype == np.float64 and gt.labels.dtype == np.int64
  np.testing.assert_array_equal(gt.ends, [1.5, 4.0])


def test_reports():
  gt = [('a', 0, 10, 0), ('a', 20, 30, 3)]
  result = _map(gt, [('a', 0, 10, 0, 0.9)], class_names=['run', 'x', 'y', 'jump'])
  report = result.to_json_dict()
  assert report['per_class_ap'] == {'run': [1.0] * 3, 'jump': [0.0] * 3}
  assert report['mAP'] == [0.5] * 3 and report['average_mAP'] == 0.5
  assert report['recall'] == {'R@1x': [0.5] * 3, 'R@5x': [0.5] * 3}
  assert list(result.to_json_dict(['A', 'B', 'C', 'D'])['per_class_ap']) == ['A', 'D']
  json.dumps(report)
  table = result.format_table().splitlines()
  assert table[0].split() == ['tIoU', '0.30', '0.50', '0.70', 'Avg']
  assert table[1].split() == ['mAP', '(%)', '50.00', '50.00', '50.00', '50.00']


def test_compile_count_is_bounded():
  # Different inputs in the same buckets (<= 8 scan steps, <= 64 GT slots, 5 thresholds) reuse
  # one compilation of the matcher.
  tious = metrics.TIOU_PRESETS['thumos14']
  size = metrics._match_locks._cache_size()
  for seed in range(6):
    gt, preds = _random_rows(seed)
    _map(gt, preds[:8], tious)
  assert metrics._match_locks._cache_size() <= size + 1


# --- The real ActivityNet sample -------------------------------------------------------------


def _load_anet_sample(annotations_dir: pathlib.Path):
  """GT rows of the validation subset (BSN files) and the official sample results, as row tuples."""
  with open(annotations_dir / 'anet_bsn_action_name.csv') as f:
    names = [line.strip() for line in f][1:]
  label_id = {name: i for i, name in enumerate(names)}
  with open(annotations_dir / 'anet_bsn_video_info.csv') as f:
    subset = {row['video']: row['subset'] for row in csv.DictReader(f)}
  with open(annotations_dir / 'anet_bsn_anno_action.json') as f:
    anno = json.load(f)
  gt = [
    (vid, a['segment'][0], a['segment'][1], label_id[a['label']])
    for vid, info in anno.items()
    if subset.get(vid) == 'validation'
    for a in info['annotations']
  ]
  with open(annotations_dir / 'anet_sample_detection_prediction.json') as f:
    results = json.load(f)['results']
  preds = [  # Results-format ids lack the BSN `v_` prefix; file order decides the (all-tied) ranks.
    ('v_' + vid, d['segment'][0], d['segment'][1], label_id[d['label']], d['score'])
    for vid, dets in results.items()
    for d in dets
  ]
  return names, gt, preds


def test_activitynet_sample_matches_oracle(annotations_dir):
  if not (annotations_dir / 'anet_sample_detection_prediction.json').is_file():
    pytest.skip('ActivityNet sample files not found')
  names, gt, preds = _load_anet_sample(annotations_dir)
  assert len(gt) == 7293 and len(preds) == 7654
  result = _assert_matches_oracle(gt, preds, metrics.TIOU_PRESETS['activitynet'])
  assert len(result.class_ids) == 200
  assert result.average_map == pytest.approx(0.9773877105, abs=1e-9)
