"""Detections with end < start are scored as ActivityNet's evaluator scores them, and counted."""

import json

import numpy as np
import pytest

from asl_jax.evaluation.metrics import GroundTruth, Predictions, compute_map
from tests.evaluation import map_oracle
from tests.evaluation.test_evaluate_cli import (
  _run,
  _thumos_args,
  _thumos_test_predictions,
  _write_results,
)


def test_hand_computed_ap_with_inverted_detections():
  # GT a: [0, 10], b: [20, 25], c: [0, 1], one class. In score order:
  #   a [5, 3]   inverted: intersection 0, union 10 - 2 = 8 -> IoU 0: FP
  #   a [0, 10]  exact: TP
  #   c [10, 2]  inverted: union 1 - 8 = -7 -> IoU -0.0: FP
  #   b [10, 5]  inverted by exactly the GT's length: union 5 - 5 = 0 -> 0/0 = NaN, which the
  #              official evaluator never rejects (NaN < t is false): TP, as there.
  # precision 0, 1/2, 1/3, 2/4; recall 0, 1/3, 1/3, 2/3 -> AP = 1/3 * 1/2 + 1/3 * 1/2 = 1/3.
  gt = GroundTruth.from_rows([('a', 0.0, 10.0, 0), ('b', 20.0, 25.0, 0), ('c', 0.0, 1.0, 0)])
  rows = [
    ('a', 5.0, 3.0, 0, 0.9),
    ('a', 0.0, 10.0, 0, 0.8),
    ('c', 10.0, 2.0, 0, 0.7),
    ('b', 10.0, 5.0, 0, 0.6),
  ]
  result = compute_map(gt, Predictions.from_rows(rows), [0.5])
  assert result.per_class_ap[0, 0] == pytest.approx(1 / 3, abs=1e-15)
  oracle = map_oracle.evaluate(list(gt_rows(gt)), rows, [0.5])
  assert oracle['ap'][0, 0] == pytest.approx(1 / 3, abs=1e-15)


def gt_rows(gt: GroundTruth):
  return zip(gt.video_ids, gt.starts, gt.ends, gt.labels, strict=True)


def test_files_with_inverted_detections_agree_with_the_official_semantics():
  rng = np.random.default_rng(7)
  gt, preds = [], []
  for v in range(30):
    for _ in range(rng.integers(1, 5)):
      s = rng.uniform(0, 100)
      gt.append((f'v{v}', s, s + rng.uniform(0.5, 20), int(rng.integers(0, 4))))
  for video, s, e, label in gt:
    for _ in range(3):
      js, je = s + rng.normal(0, 2), e + rng.normal(0, 2)
      preds.append([video, js, je, label, float(rng.random())])
  inverted = rng.random(len(preds)) < 0.15
  for row, flip in zip(preds, inverted, strict=True):
    if flip:
      row[1], row[2] = row[2] + 1.0, row[1]
  # Exact 0/0 cases: inverted by the length of a GT of the same video and class.
  for video, s, e, label in gt[:5]:
    preds.append([video, s + 50.0, s + 50.0 - (e - s), label, float(rng.random())])
  preds = [tuple(p) for p in preds]
  assert sum(p[2] < p[1] for p in preds) > 40
  tious = np.linspace(0.1, 0.9, 9)
  ours = compute_map(GroundTruth.from_rows(gt), Predictions.from_rows(preds), tious)
  oracle = map_oracle.evaluate(gt, preds, tious)
  np.testing.assert_array_equal(ours.class_ids, oracle['class_ids'])
  np.testing.assert_allclose(ours.per_class_ap, oracle['ap'].T, rtol=0, atol=1e-6)
  np.testing.assert_allclose(ours.map, oracle['map'], rtol=0, atol=1e-6)
  assert abs(ours.average_map - oracle['average_map']) <= 1e-6
  # The inverted rows do count: dropping them changes the APs.
  kept = [p for p in preds if p[2] >= p[1]]
  assert not np.allclose(map_oracle.evaluate(gt, kept, tious)['ap'], oracle['ap'])


def test_evaluate_scores_and_counts_inverted_detections_and_strict_rejects_them(
  annotations_dir, tmp_path
):
  results = _thumos_test_predictions(annotations_dir)
  videos = list(results)
  for vid in videos[:3]:  # One inverted copy of a correct detection in each of three videos.
    det = dict(results[vid][0])
    det['segment'] = det['segment'][::-1]
    results[vid] = results[vid] + [det]
  pred = _write_results(tmp_path / 'pred.json', results)
  out = tmp_path / 'm.json'
  code, stdout, err = _run(_thumos_args(annotations_dir, pred, out))
  assert code == 0, err
  assert (
    'scored: 3 predictions with end < start, as the official ActivityNet evaluator scores them '
    '(false positives); --strict rejects them'
  ) in stdout
  report = json.loads(out.read_text())
  assert report['counts']['predictions_inverted'] == 3
  assert report['average_mAP'] < 1.0  # Three false positives among perfect detections.

  out.unlink()
  code, _, err = _run([*_thumos_args(annotations_dir, pred, out), '--strict'])
  assert code == 2
  assert err.startswith('error: ') and 'field "segment" is inverted (end < start)' in err
  assert len(err.strip().splitlines()) == 1 and not out.exists()
