"""``asl-predict`` end to end: a 2-step checkpoint, two unseen feature files."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from asl_jax import predict
from asl_jax import workdir as workdir_lib
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import loop
from tests.train.helpers import tiny_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('predict')
  config = tiny_config(tmp)
  loop.train_and_evaluate(config, str(tmp / 'workdir'))
  return config, tmp


def _run_cli(config, tmp, *args):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  # The persistent compilation cache the test session uses (conftest.py), when there is one.
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO_ROOT / '.jax_cache'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  cmd = [
    sys.executable,
    '-m',
    'asl_jax.cli.predict',
    *args,
  ]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, f'predict failed:\n{proc.stdout}\n{proc.stderr[-4000:]}'
  return proc


def test_predict_cli_on_unseen_feature_files(trained):
  config, tmp = trained
  data = json.loads(pathlib.Path(config.data.annotation_file).read_text())['database']
  feature_dir = pathlib.Path(config.data.feature_dir)
  inputs = tmp / 'unseen'
  inputs.mkdir()
  # An evaluation video as .npy (its detections must equal the training run's) and a new video
  # longer than max_seq_len as .npz (a second padded length).
  eval_id = sorted(v for v, a in data.items() if a['subset'] == config.data.eval_subset)[0]
  shutil.copy(feature_dir / f'{eval_id}.npy', inputs / f'{eval_id}.npy')
  train_ids = sorted(v for v, a in data.items() if a['subset'] == config.data.train_subset)
  long_feats = np.concatenate([np.load(feature_dir / f'{v}.npy') for v in train_ids[:2]])
  assert len(long_feats) > config.data.max_seq_len
  np.savez(inputs / 'unseen_long.npz', feats=long_feats)
  lengths = {eval_id: len(np.load(inputs / f'{eval_id}.npy')), 'unseen_long': len(long_feats)}

  out, out_csv = tmp / 'pred.json', tmp / 'pred.csv'
  proc = _run_cli(
    config,
    tmp,
    f'--checkpoint={tmp / "workdir"}',
    f'--features={inputs / f"{eval_id}.npy"}',
    f'--features={inputs / "unseen_long.npz"}',
    f'--out={out}',
    f'--csv={out_csv}',
    '--fps=30',
  )
  assert 'detections for 2 videos' in proc.stdout

  results = json.loads(out.read_text())['results']
  assert set(results) == set(lengths)
  class_names = {a['label'] for v in data.values() for a in v['annotations']}
  for vid, dets in results.items():
    duration = ((lengths[vid] - 1) * config.data.feat_stride + config.data.num_frames) / 30
    assert 0 < len(dets) <= config.test.max_seg_num
    for d in dets:
      s, e = d['segment']
      assert 0.0 <= s <= e <= duration + 1e-4
      assert d['label'] in class_names
    scores = [d['score'] for d in dets]
    assert scores == sorted(scores, reverse=True)

  # Same EMA weights and post-processing as the training run's final evaluation.
  reference = json.loads((tmp / 'workdir' / 'detections.json').read_text())['results'][eval_id]
  assert len(results[eval_id]) == len(reference)
  np.testing.assert_allclose(
    [d['score'] for d in results[eval_id]], [d['score'] for d in reference], rtol=1e-5
  )
  np.testing.assert_allclose(
    [d['segment'] for d in results[eval_id]], [d['segment'] for d in reference], atol=2e-4
  )
  assert [d['label'] for d in results[eval_id]] == [d['label'] for d in reference]

  with open(out_csv, newline='') as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['video_id', 'start', 'end', 'label', 'score']
  assert len(rows) == sum(len(d) for d in results.values())
  for vid, dets in results.items():
    mine = [r for r in rows if r['video_id'] == vid]
    assert [r['label'] for r in mine] == [d['label'] for d in dets]
    np.testing.assert_allclose(
      [(float(r['start']), float(r['end'])) for r in mine], [d['segment'] for d in dets], atol=1e-4
    )
    np.testing.assert_allclose([float(r['score']) for r in mine], [d['score'] for d in dets])


def test_predict_needs_only_the_workdir_and_the_features(trained, tmp_path):
  """Another machine: the workdir copied, the training annotations and features not there."""
  config, tmp = trained
  moved = tmp_path / 'copied_workdir'
  shutil.copytree(tmp / 'workdir', moved)
  saved = json.loads((moved / 'config.json').read_text())
  saved['data']['annotation_file'] = str(tmp_path / 'not_here' / 'annotations.json')
  saved['data']['feature_dir'] = str(tmp_path / 'not_here' / 'features')
  (moved / 'config.json').write_text(json.dumps(saved))
  data = json.loads(pathlib.Path(config.data.annotation_file).read_text())['database']
  eval_id = sorted(v for v, a in data.items() if a['subset'] == config.data.eval_subset)[0]
  inputs = tmp_path / 'new'
  inputs.mkdir()
  shutil.copy(pathlib.Path(config.data.feature_dir) / f'{eval_id}.npy', inputs)
  out = tmp_path / 'pred.json'
  _run_cli(config, tmp, f'--workdir={moved}', f'--features={inputs}', f'--out={out}')
  results = json.loads(out.read_text())['results']
  reference = json.loads((tmp / 'workdir' / 'detections.json').read_text())['results'][eval_id]
  # Class names from the workdir's class_names.json, the same labels as the training run's.
  assert [d['label'] for d in results[eval_id]] == [d['label'] for d in reference]
  names = json.loads((moved / 'class_names.json').read_text())
  assert sorted(names) == sorted({a['label'] for v in data.values() for a in v['annotations']})


def test_checkpoint_paths_and_fallback_names(trained, tmp_path):
  config, tmp = trained
  workdir = tmp / 'workdir'
  resolve = checkpoint_lib.resolve_checkpoint
  assert resolve(workdir) == (workdir / 'checkpoints', None)  # None: the newest readable step.
  assert resolve(workdir / 'checkpoints') == (workdir / 'checkpoints', None)
  assert resolve(workdir / 'checkpoints' / '1') == (workdir / 'checkpoints', 1)
  assert checkpoint_lib.step_dirs(workdir / 'checkpoints') == [1, 2]
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    resolve(tmp_path)

  config = config.copy_and_resolve_references()
  config.data.annotation_file = str(tmp_path / 'missing.json')
  assert workdir_lib.read_class_names(None, config) == [
    f'class_{i}' for i in range(config.data.num_classes)
  ]


def test_restore_rejects_a_config_of_another_model(trained):
  import jax
  import jax.numpy as jnp

  from asl_jax.model.build import build_model

  config, tmp = trained
  config = config.copy_and_resolve_references()
  config.model.head_dim = 24
  model = build_model(config)
  length, dim = config.data.max_seq_len, config.data.input_dim
  template = jax.eval_shape(
    lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, length, dim)), jnp.ones((1, length), bool)
    )['params']
  )
  with pytest.raises(ValueError, match='does not match the model'):
    checkpoint_lib.restore_params(tmp / 'workdir', template)


def test_feature_inputs(tmp_path):
  (tmp_path / 'd').mkdir()
  np.save(tmp_path / 'd' / 'pre_a.npy', np.zeros((5, 3), np.float32))
  np.savez(tmp_path / 'd' / 'b.npz', feats=np.ones((9, 3), np.float32))
  (tmp_path / 'd' / 'notes.txt').write_text('ignored')
  files = predict.find_feature_files([tmp_path / 'd'])
  assert [f.name for f in files] == ['b.npz', 'pre_a.npy']
  videos = predict.load_videos(
    files, input_dim=3, feat_stride=4, num_frames=16, fps=25.0, prefix='pre_'
  )
  assert [v.video_id for v in videos] == ['b', 'a']
  assert [v.record.duration for v in videos] == [(8 * 4 + 16) / 25, (4 * 4 + 16) / 25]
  with pytest.raises(ValueError, match="'b' comes from both"):
    predict.load_videos(files + files[:1], input_dim=3, feat_stride=4, num_frames=16, fps=25.0)
  with pytest.raises(FileNotFoundError):
    predict.find_feature_files([tmp_path / 'nothing'])


def test_predict_cli_with_external_score_fusion(trained):
  config, tmp = trained
  data = json.loads(pathlib.Path(config.data.annotation_file).read_text())['database']
  eval_id = sorted(v for v, a in data.items() if a['subset'] == config.data.eval_subset)[0]
  feature = pathlib.Path(config.data.feature_dir) / f'{eval_id}.npy'
  names = tmp / 'names.csv'
  names.write_text('action\nalpha\nbeta\ngamma\n')
  scores = tmp / 'cls.json'
  scores.write_text(json.dumps({'results': {eval_id: [0.1, 0.64, 0.25]}}))
  plain, fused = tmp / 'plain.json', tmp / 'fused.json'
  _run_cli(
    config, tmp, f'--checkpoint={tmp / "workdir"}', f'--features={feature}', f'--out={plain}'
  )
  _run_cli(
    config,
    tmp,
    f'--checkpoint={tmp / "workdir"}',
    f'--features={feature}',
    f'--out={fused}',
    f'--external_scores={scores}',
    f'--external_class_names={names}',
    '--external_num_pred=5',
  )
  base = json.loads(plain.read_text())['results'][eval_id][:5]
  out = json.loads(fused.read_text())['results'][eval_id]
  # Top-2 external classes are beta (0.64) then gamma (0.25); every kept detection appears once
  # for each, with score sqrt(class score * detection score).
  assert [d['label'] for d in out] == ['beta'] * len(base) + ['gamma'] * len(base)
  expected = [np.sqrt(0.64 * d['score']) for d in base] + [np.sqrt(0.25 * d['score']) for d in base]
  np.testing.assert_allclose([d['score'] for d in out], expected, rtol=1e-6)
