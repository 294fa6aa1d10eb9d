"""`asl-evaluate --analysis`: the files it writes hold the hand-made case's known counts."""

import json
import pathlib
import subprocess
import sys

from tests.evaluation.test_analysis import GT, PREDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = ['jump', 'run']


def test_evaluate_writes_the_error_analysis(tmp_path):
  database = {}
  for vid, s, e, k in zip(GT.video_ids, GT.starts, GT.ends, GT.labels):
    entry = database.setdefault(
      vid, {'subset': 'test', 'duration': 200.0, 'fps': 30.0, 'annotations': []}
    )
    entry['annotations'].append({'segment': [s, e], 'label': NAMES[k], 'label_id': int(k)})
  results = {}
  for vid, s, e, k, score in zip(
    PREDS.video_ids, PREDS.starts, PREDS.ends, PREDS.labels, PREDS.scores
  ):
    results.setdefault(vid, []).append({'segment': [s, e], 'label': NAMES[k], 'score': score})
  (tmp_path / 'gt.json').write_text(json.dumps({'database': database}))
  (tmp_path / 'pred.json').write_text(json.dumps({'results': results}))
  out = tmp_path / 'analysis'
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.cli.evaluate',
      f'--gt={tmp_path / "gt.json"}',
      f'--pred={tmp_path / "pred.json"}',
      '--tiou=0.5',
      f'--analysis={out}',
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  assert 'top_1G: 5 detections, 2 true positives' in proc.stdout
  result = json.loads((out / 'error_analysis.json').read_text())
  assert result['false_positives']['top_10G']['background'] == 1
  assert result['false_negatives']['missed'] == 2
  assert (out / 'error_analysis.png').stat().st_size > 1000
