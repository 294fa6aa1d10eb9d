"""The validate command's coverage report and --suggest output on a synthetic dataset."""

import json
import os
import pathlib
import subprocess
import sys

from asl_jax.data.synthetic import synthesize_dataset


def test_validator_prints_coverage_and_the_suggestion(tmp_path):
  """The validate command on a synthetic dataset (features every 4 of 16 frames at 30 fps)."""
  repo = pathlib.Path(__file__).resolve().parents[2]
  root = pathlib.Path(
    synthesize_dataset(
      tmp_path / 'ds', num_videos=12, num_classes=3, feature_dim=8, min_len=64, max_len=200
    )['path']
  )
  args = [
    sys.executable,
    '-m',
    'asl_jax.cli.validate',
    '--config=custom.py',
    f'--config.data.annotation_file={root / "annotations.json"}',
    f'--config.data.feature_dir={root / "features"}',
    '--config.data.num_classes=3',
    '--config.data.input_dim=8',
    '--config.data.train_subset=training',
    '--config.data.eval_subset=validation',
    '--suggest',
    f'--json={tmp_path / "report.json"}',
  ]
  env = dict(os.environ, PYTHONPATH=str(repo))
  run = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  assert 'Label-assignment coverage of the training split' in run.stdout
  assert '--config.data.feat_stride=4.0' in run.stdout
  assert '--config.data.num_frames=16.0' in run.stdout
  assert '--config.data.input_dim=8' in run.stdout
  assert 'With the suggested values: label-assignment coverage' in run.stdout
  report = json.loads((tmp_path / 'report.json').read_text())
  assert report['suggestion']['values']['data.num_classes'] == 3
  assert report['coverage']['actions'] == report['suggested_coverage']['actions'] > 0
