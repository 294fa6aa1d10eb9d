"""``asl-export``: bundle round trip, serialized StableHLO without our model code."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from asl_jax import configuration, export
from asl_jax import workdir as workdir_lib
from asl_jax.data import pipeline
from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.records import VideoRecord
from asl_jax.model.build import params_template
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import loop
from tests.train.helpers import tiny_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_RUNS: dict[str, tuple] = {}


def trained_workdir(tmp_path_factory) -> tuple:
  """(config, workdir) of a 2-step tiny training run, made once per test session."""
  if 'tiny' not in _RUNS:
    tmp = tmp_path_factory.mktemp('tiny_run')
    config = tiny_config(tmp)
    loop.train_and_evaluate(config, str(tmp / 'workdir'))
    _RUNS['tiny'] = (config, tmp / 'workdir')
  return _RUNS['tiny']


def subprocess_env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO_ROOT / '.jax_cache'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  return env


@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
  config, workdir = trained_workdir(tmp_path_factory)
  out = tmp_path_factory.mktemp('bundle') / 'tiny'
  cmd = [sys.executable, '-m', 'asl_jax.cli.export', f'--workdir={workdir}', f'--out={out}']
  proc = subprocess.run(
    cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, f'export failed:\n{proc.stdout}\n{proc.stderr[-4000:]}'
  assert 'bundle of step 2' in proc.stdout
  return config, workdir, out


def _videos(config):
  videos, _ = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.eval_subset)
  )
  train, _ = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.train_subset)
  )
  # A video longer than max_seq_len: padded to 2 * max_seq_len, the second exported length.
  long_feats = np.concatenate([v.feats for v in train[:2]])
  assert config.data.max_seq_len < len(long_feats) <= 2 * config.data.max_seq_len
  record = VideoRecord(
    video_id='long',
    subset='predict',
    duration=((len(long_feats) - 1) * config.data.feat_stride + config.data.num_frames) / 30.0,
    fps=30.0,
    segments_sec=np.zeros((0, 2)),
    labels=np.zeros((0,), np.int32),
  )
  geometry = FeatureGeometry(config.data.feat_stride, config.data.num_frames, 30.0)
  long_video = pipeline.Video(record, long_feats, geometry, np.zeros((0, 2)), record.labels)
  return [*videos, long_video]


def test_bundle_layout_and_loading(bundle):
  config, workdir, out = bundle
  manifest = export.read_manifest(out)
  assert manifest['exported'] == {
    '128': 'detector_L128.jaxexport',
    '256': 'detector_L256.jaxexport',
  }
  assert manifest['source']['step'] == 2 and manifest['source']['weights'] == 'ema_params'
  assert set(manifest['platforms']) == {'cpu', 'cuda', 'tpu'}
  model, params, loaded_config, class_names = export.load_bundle(out)
  assert loaded_config.to_json_best_effort() == config.to_json_best_effort()
  assert class_names == workdir_lib.read_class_names(workdir, config)
  expected, _, _ = checkpoint_lib.restore_params(workdir, params_template(model, config))
  jax.tree.map(np.testing.assert_array_equal, params, expected)


def test_exported_detections_match_the_detector(bundle):
  config, workdir, out = bundle
  model, params, loaded_config, _ = export.load_bundle(out)
  videos = _videos(config)
  reference = loop.build_detector(loaded_config, model).detect(params, videos)
  manifest, exported = export.read_manifest(out), export.load_exported(out)
  for video in videos:
    got = export.detect_exported(
      exported,
      video.feats,
      manifest=manifest,
      fps=video.geometry.fps,
      duration=video.record.duration,
    )
    want = reference[video.video_id]
    assert len(got['scores']) == len(want['scores']) > 0, video.video_id
    np.testing.assert_array_equal(got['labels'], want['labels'])
    np.testing.assert_allclose(got['scores'], want['scores'], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got['segments'], want['segments'], atol=1e-4)
  with pytest.raises(ValueError, match='not among the exported lengths'):
    export.detect_exported(
      exported, np.zeros((300, config.data.input_dim)), manifest=manifest, fps=30.0
    )


_STANDALONE = """
import json, pathlib, sys
import jax, numpy as np
from jax import export
bundle = pathlib.Path(sys.argv[1])
manifest = json.loads((bundle / 'manifest.json').read_text())
exp = export.deserialize(bytearray((bundle / manifest['exported']['128']).read_bytes()))
data = np.load(sys.argv[2])
segments, scores, labels, valid = exp.call(data['feats'], data['mask'])
np.savez(sys.argv[3], segments=segments, scores=scores, labels=labels, valid=valid)
assert not any(m.startswith('asl_jax') for m in sys.modules), 'model code was imported'
"""


def test_serialized_detector_runs_without_model_code(bundle, tmp_path):
  config, _, out = bundle
  video = _videos(config)[0]
  t, length = len(video.feats), config.data.max_seq_len
  feats = np.zeros((1, length, config.data.input_dim), np.float32)
  feats[0, :t] = video.feats
  mask = np.arange(length)[None] < t
  np.savez(tmp_path / 'in.npz', feats=feats, mask=mask)
  proc = subprocess.run(
    [sys.executable, '-c', _STANDALONE, str(out), str(tmp_path / 'in.npz'), str(tmp_path / 'o')],
    cwd=tmp_path,  # Not the repository: asl_jax is not importable from there.
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  got = np.load(tmp_path / 'o.npz')
  want = jax.device_get(export.load_exported(out)[length].call(feats, mask))
  for name, value in zip(('segments', 'scores', 'labels', 'valid'), want):
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  assert got['valid'].any()


def test_config_json_round_trip_and_errors(bundle, tmp_path):
  config, workdir, out = bundle
  loaded = workdir_lib.load_config_json(workdir / 'config.json')
  assert loaded.to_json_best_effort() == config.to_json_best_effort()
  assert isinstance(loaded.model.regression_ranges, tuple)
  # A config.json written before a field existed still loads: the field keeps its default.
  values = json.loads((workdir / 'config.json').read_text())
  del values['train']['keep_checkpoints']
  (tmp_path / 'old.json').write_text(json.dumps(values))
  assert workdir_lib.load_config_json(tmp_path / 'old.json').train.keep_checkpoints == 3
  with pytest.raises(FileExistsError, match='not empty'):
    export.export_bundle(workdir, out)
  with pytest.raises(ValueError, match='multiple of data.max_seq_len'):
    export.export_bundle(workdir, tmp_path / 'b', lengths=[100])
  with pytest.raises(FileNotFoundError, match='not an export bundle'):
    export.load_bundle(workdir)
