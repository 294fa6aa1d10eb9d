"""Tests for `asl-evaluate` on the real ActivityNet and THUMOS14 annotation files."""

import csv
import json
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.evaluation import scoring as evaluate
from asl_jax.evaluation.metrics import TIOU_PRESETS, GroundTruth, Predictions, compute_map

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The ActivityNet sample's average mAP against BSN's validation GT, as ActivityNet's evaluator
# computes it (GT as written, ties broken by file order).
ANET_SAMPLE_AVERAGE_MAP = 0.9773877105331772


def _run(argv, capsys=None) -> tuple[int, str, str]:
  """The command as a user runs it (its own process: absl flags are process-global)."""
  proc = subprocess.run(
    [sys.executable, '-m', 'asl_jax.cli.evaluate', *map(str, argv)],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  return proc.returncode, proc.stdout, proc.stderr


def _anet_independent(annotations_dir: pathlib.Path):
  """compute_map on the sample, parsed with plain json/csv: GT as written, names sorted."""
  with open(annotations_dir / 'anet_bsn_anno_action.json') as f:
    gt_json = json.load(f)
  with open(annotations_dir / 'anet_bsn_video_info.csv', newline='') as f:
    validation = [r['video'] for r in csv.DictReader(f) if r['subset'] == 'validation']
  with open(annotations_dir / 'anet_sample_detection_prediction.json') as f:
    results = json.load(f)['results']
  names = sorted({a['label'] for v in gt_json.values() for a in v['annotations']})
  index = {name: k for k, name in enumerate(names)}
  gt = GroundTruth.from_rows(
    (vid, *a['segment'], index[a['label']])
    for vid in validation
    for a in gt_json[vid]['annotations']
  )
  # BSN writes 'v_<id>', the results file '<id>'; every sample video has the prefix in the GT file
  # or is in no subset at all (then it is a false positive either way).
  preds = Predictions.from_rows(
    ('v_' + vid, *d['segment'], index[d['label']], d['score'])
    for vid, dets in results.items()
    for d in dets
  )
  result = compute_map(gt, preds, TIOU_PRESETS['activitynet'], class_names=names)
  return result, len(gt), len(preds)


def test_activitynet_sample_matches_independent_computation(annotations_dir, tmp_path, capsys):
  out_path = tmp_path / 'metrics.json'
  code, out, err = _run(
    [
      '--gt', annotations_dir / 'anet_bsn_anno_action.json',
      '--gt-video-info', annotations_dir / 'anet_bsn_video_info.csv',
      '--pred', annotations_dir / 'anet_sample_detection_prediction.json',
      '--subset', 'Validation',
      '--tiou-preset', 'activitynet',
      '--out', out_path,
    ],
    capsys,
  )  # fmt: skip
  assert code == 0, err
  report = json.loads(out_path.read_text())
  expected, num_gt, num_preds = _anet_independent(annotations_dir)
  assert abs(report['average_mAP'] - expected.average_map) <= 1e-12
  assert abs(report['average_mAP'] - ANET_SAMPLE_AVERAGE_MAP) <= 1e-9
  np.testing.assert_allclose(report['mAP'], expected.map, rtol=0, atol=1e-12)
  np.testing.assert_array_equal(report['tious'], TIOU_PRESETS['activitynet'])
  assert report['per_class_ap'].keys() == set(expected.class_names)
  for name, ap in zip(expected.class_names, expected.per_class_ap):
    np.testing.assert_allclose(report['per_class_ap'][name], ap, rtol=0, atol=1e-12)
  for k, recall in expected.recall.items():
    np.testing.assert_allclose(report['recall'][f'R@{k}x'], recall, rtol=0, atol=1e-12)
  counts = report['counts']
  assert (counts['gt_segments'], counts['gt_videos'], counts['gt_classes']) == (num_gt, 4728, 200)
  assert counts['predictions_total'] == counts['predictions_used'] == num_preds == 7654
  assert counts['predictions_unknown_label'] == 0 and counts['gt_skipped'] == {}
  # 198 sample videos are in no subset of BSN's file: their detections are false positives.
  assert counts['predictions_video_not_in_gt'] == 361
  assert 'mAP (%)' in out and f'average mAP: {report["average_mAP"]!r}' in out
  assert f'{num_gt} segments of 200 classes in 4728 videos' in out
  assert f'{num_preds} of {num_preds} used' in out

  # The names file orders the classes differently; only the mean's summation order can change.
  code, _, err = _run(
    [
      '--gt', annotations_dir / 'anet_bsn_anno_action.json',
      '--gt-video-info', annotations_dir / 'anet_bsn_video_info.csv',
      '--gt-action-names', annotations_dir / 'anet_bsn_action_name.csv',
      '--pred', annotations_dir / 'anet_sample_detection_prediction.json',
      '--subset', 'validation', '--tiou', '0.5:0.95:10', '--out', out_path,
    ],
    capsys,
  )  # fmt: skip
  assert code == 0, err
  assert abs(json.loads(out_path.read_text())['average_mAP'] - expected.average_map) <= 1e-12


def _thumos_test_predictions(annotations_dir: pathlib.Path, shift=None) -> dict:
  """One detection per THUMOS14 test annotation, ids alternately with a 'v_' prefix."""
  with open(annotations_dir / 'thumos14.json') as f:
    database = json.load(f)['database']
  rng = np.random.default_rng(0)
  results = {}
  for i, (vid, video) in enumerate(database.items()):
    if video['subset'] != 'Test':
      continue
    detections = []
    for ann in video['annotations']:
      start, end = ann['segment']
      if shift is not None:
        offset = shift(rng) * (end - start)
        start, end = start + offset, end + offset
      detections.append({'segment': [start, end], 'label': ann['label'], 'score': rng.random()})
    results[('v_' + vid) if i % 2 else vid] = detections
  return results


def _write_results(path: pathlib.Path, results: dict) -> pathlib.Path:
  path.write_text(json.dumps({'version': 'test', 'results': results, 'external_data': {}}))
  return path


def _thumos_args(annotations_dir, pred, out) -> list:
  return [
    '--gt', annotations_dir / 'thumos14.json', '--pred', pred, '--subset', 'test',
    '--tiou-preset', 'thumos14', '--out', out,
  ]  # fmt: skip


def test_thumos14_perfect_predictions_score_one(annotations_dir, tmp_path, capsys):
  results = _thumos_test_predictions(annotations_dir)
  num_correct = sum(len(d) for d in results.values())
  # Detections of a label THUMOS does not have are ignored, counted and named.
  first = next(iter(results))
  results[first] = results[first] + [{'segment': [1.0, 2.0], 'label': 'Juggling', 'score': 1.0}]
  pred = _write_results(tmp_path / 'pred.json', results)
  out = tmp_path / 'm.json'
  code, stdout, err = _run(_thumos_args(annotations_dir, pred, out), capsys)
  assert code == 0, err
  report = json.loads(out.read_text())
  assert report['mAP'] == [1.0] * 5 and report['average_mAP'] == 1.0
  assert all(ap == [1.0] * 5 for ap in report['per_class_ap'].values())
  assert len(report['per_class_ap']) == 20
  counts = report['counts']
  assert counts['gt_videos'] == 212 and counts['gt_segments'] == num_correct
  assert counts['predictions_used'] == num_correct
  assert counts['predictions_unknown_label'] == 1 and report['unknown_labels'] == {'Juggling': 1}
  assert counts['predictions_video_not_in_gt'] == counts['predictions_other_subset'] == 0
  assert "1 predictions with labels that are not GT classes (1 names: 'Juggling')" in stdout


def test_thumos14_shifted_predictions_lose_map_with_tiou(annotations_dir, tmp_path, capsys):
  # Shifting by f of the length gives tIoU (1 - f) / (1 + f): from 1 down to 1/3 for f in [0, .5).
  results = _thumos_test_predictions(annotations_dir, shift=lambda rng: rng.uniform(0.0, 0.5))
  pred = _write_results(tmp_path / 'pred.json', results)
  out = tmp_path / 'm.json'
  code, _, err = _run(_thumos_args(annotations_dir, pred, out), capsys)
  assert code == 0, err
  mean_ap = np.array(json.loads(out.read_text())['mAP'])
  assert np.all(np.diff(mean_ap) < 0), mean_ap
  assert mean_ap[0] <= 1.0 and mean_ap[-1] < 0.9


def test_bad_prediction_file_exits_2_naming_the_video(annotations_dir, tmp_path):
  results = _thumos_test_predictions(annotations_dir)
  vid = sorted(results)[3]
  results[vid][0]['segment'] = [math.nan, 5.0]
  pred = _write_results(tmp_path / 'nan.json', results)  # json writes NaN as a bare token.
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.cli.evaluate',
      *map(str, _thumos_args(annotations_dir, pred, tmp_path / 'm.json')),
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2, proc.stderr
  assert 'Traceback' not in proc.stderr
  assert f'nan.json: video \'{vid}\' detection 0: field "segment" is not finite' in proc.stderr
  assert not (tmp_path / 'm.json').exists()


@pytest.mark.parametrize(
  'content, message',
  [
    (
      {'results': {'vid_a': [{'segment': [5.0, 4.0], 'label': 'x', 'score': 1.0}]}},
      r"video 'vid_a' detection 0: field \"segment\" is inverted",
    ),
    (
      {'results': {'vid_b': [{'segment': [1.0, 2.0], 'label': 'x'}]}},
      r"video 'vid_b' detection 0: expected an object",
    ),
    (
      {'results': {'vid_c': [{'segment': [1.0, 2.0], 'label': 'x', 'score': math.nan}]}},
      r"video 'vid_c' detection 0: field \"score\" is NaN",
    ),
    (
      {'results': {'vid_d': [{'segment': [1.0, 2.0], 'label': 3, 'score': 1.0}]}},
      r"video 'vid_d' detection 0: field \"label\" must be a class name",
    ),
    ({'results': {'vid_e': {}}}, r"video 'vid_e': expected a list"),
    ({'detections': {}}, r'expected a top-level object with a "results"'),
    ('{"results": ', r'not a valid JSON file'),
  ],
)
def test_bad_predictions_exit_2(annotations_dir, tmp_path, capsys, content, message):
  pred = tmp_path / 'bad.json'
  pred.write_text(content if isinstance(content, str) else json.dumps(content))
  # --strict: an inverted segment is an error too (without it, a counted false positive).
  code, _, err = _run([*_thumos_args(annotations_dir, pred, tmp_path / 'm.json'), '--strict'])
  assert code == 2
  assert err.startswith('error: ') and 'bad.json' in err
  assert re.search(message, err), err


def test_input_errors_exit_2(annotations_dir, tmp_path, capsys):
  pred = _write_results(tmp_path / 'pred.json', {})
  thumos = annotations_dir / 'thumos14.json'
  bsn = annotations_dir / 'anet_bsn_anno_action.json'
  missing = tmp_path / 'nope.json'
  cases = [
    (['--gt', missing, '--pred', pred, '--subset', 'test'], 'nope.json does not exist'),
    (['--gt', thumos, '--pred', missing, '--subset', 'test'], 'nope.json does not exist'),
    (['--gt', thumos, '--pred', pred], "subsets ['Test', 'Validation']: choose with --subset"),
    (['--gt', thumos, '--pred', pred, '--subset', 'x'], "subset(s) ['x'] match no video"),
    (['--gt', thumos, '--pred', pred, '--subset', 'test', '--gt-video-info', 'x.csv'], 'not apply'),
    (['--gt', bsn, '--pred', pred, '--subset', 'testing'], 'need video_info_csv'),
  ]
  for argv, message in cases:
    code, _, err = _run([*argv, '--tiou-preset', 'thumos14'], capsys)
    assert code == 2 and message in err, (argv, err)
  code, _, err = _run(
    [
      '--gt', annotations_dir / 'anet_bsn_anno_action.json',
      '--gt-video-info', annotations_dir / 'anet_bsn_video_info.csv',
      '--pred', pred, '--subset', 'testing', '--tiou-preset', 'activitynet',
    ],
    capsys,
  )  # fmt: skip
  assert code == 2 and "subset 'testing' has no ground-truth segments" in err
  code, _, err = _run(['--gt', thumos, '--pred', pred])  # Flag errors also exit with 2.
  assert code == 2 and 'tiou' in err
  code, _, err = _run(
    ['--gt', thumos, '--pred', pred, '--subset', 'test', '--tiou', '0.3:0.7'], capsys
  )
  assert code == 2 and 'expected A:B:N' in err


def test_parse_tious():
  np.testing.assert_array_equal(evaluate.parse_tious('0.3:0.7:5'), np.linspace(0.3, 0.7, 5))
  np.testing.assert_array_equal(evaluate.parse_tious('0.5:0.95:10'), TIOU_PRESETS['activitynet'])
  np.testing.assert_array_equal(evaluate.parse_tious('0.5,0.75'), [0.5, 0.75])
  for bad in ('0.3:0.7:2.5', '0:1:0', 'a,b', '0.5,1.5'):
    with pytest.raises(ValueError, match='--tiou'):
      evaluate.parse_tious(bad)
