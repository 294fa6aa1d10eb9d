"""DETAD-style error analysis on a hand-made case where every category's count is known."""

import json

import numpy as np
import pytest

from asl_jax.evaluation import analysis, metrics
from asl_jax.visualization import error_analysis

# v1: A (class 0) [10, 20], B (class 1) [30, 40], C (class 0) [50, 60]; v2: D (0) [0, 5],
# E (0) [100, 150]. Class 0 has G = 4, class 1 has G = 1.
GT = metrics.GroundTruth.from_rows(
  [
    ('v1', 10, 20, 0),
    ('v1', 30, 40, 1),
    ('v1', 50, 60, 0),
    ('v2', 0, 5, 0),
    ('v2', 100, 150, 0),
  ]
)
PREDS = metrics.Predictions.from_rows(
  [
    ('v1', 10, 20, 0, 0.99),  # true positive (A)
    ('v1', 10.5, 20, 0, 0.98),  # double detection (A, tIoU 0.95, already taken)
    ('v1', 30, 40, 0, 0.97),  # wrong label (B is class 1)
    ('v1', 50, 53, 0, 0.96),  # localization (C, tIoU 0.3)
    ('v1', 28, 33, 0, 0.95),  # confusion (B, tIoU 3 / 12 = 0.25; no class-0 overlap)
    ('v1', 70, 80, 0, 0.94),  # background
    ('v2', 0, 5, 0, 0.50),  # true positive (D)
    ('v1', 30, 40, 1, 0.90),  # class 1: true positive (B)
    ('v2', 100, 150, 1, 0.80),  # class 1: wrong label (E is class 0)
  ]
)
ZERO = dict.fromkeys(analysis.FP_KINDS, 0)


def test_categories_of_each_detection():
  kind, rank_g, taken = analysis.classify_detections(GT, PREDS)
  assert kind.tolist() == [
    'true_positive',
    'double_detection',
    'wrong_label',
    'localization',
    'confusion',
    'background',
    'true_positive',
    'true_positive',
    'wrong_label',
  ]
  assert rank_g.tolist() == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 0, 1]
  assert taken.tolist() == [True, True, False, True, False]


def test_profile_and_false_negatives():
  result = analysis.analyze(GT, PREDS, class_names=['jump', 'run'])
  fp = result['false_positives']
  # Top-1G: class 0's four best and class 1's best.
  assert fp['top_1G'] == {
    **ZERO,
    'detections': 5,
    'true_positive': 2,
    'double_detection': 1,
    'wrong_label': 1,
    'localization': 1,
  }
  every = {
    'detections': 9,
    'true_positive': 3,
    'double_detection': 1,
    'wrong_label': 2,
    'localization': 1,
    'confusion': 1,
    'background': 1,
  }
  assert fp['top_2G'] == fp['top_10G'] == every
  fn = result['false_negatives']
  assert fn['missed'] == 2  # C (only a localization error) and E (only a wrong label).
  # Lengths: A, B, C 10 s (M), D 5 s (S), E 50 s (XL).
  assert {k: (v['gt'], v['missed']) for k, v in fn['by_length_sec'].items()} == {
    'XS': (0, 0),
    'S': (1, 0),
    'M': (3, 1),
    'L': (0, 0),
    'XL': (1, 1),
  }
  # Instances of the class in the video: v1 class 0 (A, C): 2; v1 class 1 (B): 1; v2 class 0: 2.
  assert {k: (v['gt'], v['missed']) for k, v in fn['by_instances_per_video'].items()} == {
    'XS': (1, 0),
    'S': (4, 2),
    'M': (0, 0),
    'L': (0, 0),
    'XL': (0, 0),
  }
  assert result['per_class_top_1G']['run'] == {**ZERO, 'true_positive': 1}
  text = analysis.format_summary(result)
  assert 'top_1G: 5 detections, 2 true positives' in text and 'M 1/3' in text


def test_true_positives_agree_with_the_map_matching():
  """Over every detection, the true positives are those of the mAP's greedy matching."""
  rng = np.random.default_rng(0)
  gt_rows, pred_rows = [], []
  for v in range(6):
    for _ in range(5):
      s = rng.uniform(0, 90)
      gt_rows.append((f'v{v}', s, s + rng.uniform(1, 10), int(rng.integers(0, 3))))
    for _ in range(30):
      s = rng.uniform(0, 90)
      pred_rows.append((f'v{v}', s, s + rng.uniform(1, 10), int(rng.integers(0, 3)), rng.random()))
  gt, preds = metrics.GroundTruth.from_rows(gt_rows), metrics.Predictions.from_rows(pred_rows)
  kind, _, _ = analysis.classify_detections(gt, preds, tiou=0.3, top_k=1000)
  matching = metrics.match_detections(gt, preds, [0.3], recall_topk=())
  for c, label in enumerate(matching.class_ids):
    idx = np.flatnonzero(preds.labels == label)
    idx = idx[np.argsort(-preds.scores[idx], kind='stable')]
    reference = matching.class_tp(c)[0]
    assert (kind[idx] == 'true_positive').tolist() == reference.tolist()
  assert 5 < (kind == 'true_positive').sum() < len(preds)  # Both outcomes occur.


def test_figure_and_json(tmp_path):
  result = analysis.analyze(GT, PREDS)
  paths = error_analysis.write_error_analysis(result, tmp_path)
  assert [p.name for p in paths] == ['error_analysis.json', 'error_analysis.png']
  assert json.loads(paths[0].read_text())['false_negatives']['missed'] == 2
  assert paths[1].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize(
  ('seconds', 'bucket'), [(0, 'XS'), (3, 'XS'), (3.1, 'S'), (36, 'L'), (37, 'XL')]
)
def test_length_buckets(seconds, bucket):
  assert analysis.length_bucket(seconds) == bucket
