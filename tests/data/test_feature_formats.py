"""Tests for the .pt / HDF5 readers and multi-folder feature loading."""

import importlib.util

import numpy as np
import pytest

from asl_jax.data import feature_formats
from asl_jax.data.feature_formats import (
  FeatureIssue,
  FeatureReader,
  FeatureSource,
  HDF5Features,
  feature_issues,
  load_multi_folder,
  load_pt_features,
  parse_sources,
)
from asl_jax.data.features import FeatureError
from asl_jax.data.resample import interpolate_linear

HAS_H5PY = importlib.util.find_spec('h5py') is not None
HAS_TORCH = importlib.util.find_spec('torch') is not None
needs_h5py = pytest.mark.skipif(not HAS_H5PY, reason='h5py is not installed')


def test_feature_issues_lists_every_problem():
  feats = np.ones((3, 4), np.float32)
  assert feature_issues(feats, expected_dim=4) == []
  assert [k for k, _ in feature_issues(feats, expected_dim=5)] == ['wrong_dim']
  feats[0, 0], feats[1, 1] = np.nan, np.inf
  issues = dict(feature_issues(feats.T.copy(), expected_dim=4))
  assert 'transposed' in issues and 'looks like [C, T]' in issues['transposed']
  assert '2 non-finite values (1 NaN, 1 Inf)' in issues['non_finite']
  assert [k for k, _ in feature_issues(np.zeros((2, 2, 2)))] == ['not_2d']
  assert [k for k, _ in feature_issues(np.zeros((0, 2)))] == ['empty']
  assert [k for k, _ in feature_issues(np.array([['a']]))] == ['dtype']


@pytest.mark.skipif(HAS_TORCH, reason='checks the message shown when torch is absent')
def test_pt_without_torch_says_how_to_fix(tmp_path):
  (tmp_path / 'v1.pt').write_bytes(b'not read')
  with pytest.raises(FeatureError, match=r"video 'v1'.*v1\.pt.*needs PyTorch.*np\.save"):
    load_pt_features(tmp_path / 'v1.pt')


@pytest.mark.skipif(not HAS_TORCH, reason='torch is not installed')
def test_pt_with_torch_round_trips(tmp_path):
  import torch

  feats = np.arange(12, dtype=np.float32).reshape(4, 3)
  torch.save(torch.from_numpy(feats), tmp_path / 'v1.pt')
  np.testing.assert_array_equal(load_pt_features(tmp_path / 'v1.pt', expected_dim=3), feats)


@needs_h5py
def test_hdf5_reads_by_key_and_checks(tmp_path):
  import h5py

  path = tmp_path / 'rgb_val.hdf5'
  good = np.arange(10, dtype=np.float32).reshape(5, 2)
  bad = good.copy()
  bad[2, 1] = np.nan
  with h5py.File(path, 'w') as f:
    f['v1'] = good
    f['v2'] = good.T
    f['v3'] = bad
  with HDF5Features(path) as h5:
    assert sorted(h5.keys()) == ['v1', 'v2', 'v3']
    np.testing.assert_array_equal(h5.load('v1', expected_dim=2), good)
    with pytest.raises(FeatureIssue, match=r"video 'v2'.*rgb_val\.hdf5.*looks like \[C, T\]"):
      h5.load('v2', expected_dim=2)
    with pytest.raises(FeatureIssue, match=r"video 'v3'.*1 non-finite"):
      h5.load('v3')
    with pytest.raises(FeatureIssue, match=r"video 'v9'.*no dataset 'v9' in HDF5 file") as e:
      h5.load('v9')
    assert e.value.kind == 'missing'


def test_hdf5_without_h5py_says_so(tmp_path, monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(
    feature_formats.importlib.util, 'find_spec', lambda n: None if n == 'h5py' else real(n)
  )
  with pytest.raises(FeatureError, match=r'feats\.h5: reading HDF5 features needs h5py'):
    HDF5Features(tmp_path / 'feats.h5').load('v1')


def _write(folder, video_id, feats):
  folder.mkdir(exist_ok=True)
  np.save(folder / f'{video_id}.npy', feats)


def test_multi_folder_concatenates_in_order_and_resamples(tmp_path):
  rgb = np.arange(8, dtype=np.float32).reshape(4, 2)
  flow = np.array([[10.0, 20.0, 30.0], [14.0, 24.0, 34.0]], np.float32)
  _write(tmp_path / 'rgb', 'v1', rgb)
  _write(tmp_path / 'flow', 'v1', flow)
  dirs = [str(tmp_path / 'rgb'), str(tmp_path / 'flow')]
  out = load_multi_folder(dirs, 'v1', dims=(2, 3), input_dim=5)
  assert out.shape == (4, 5) and out.dtype == np.float32
  np.testing.assert_array_equal(out[:, :2], rgb)
  np.testing.assert_array_equal(out[:, 2:], interpolate_linear(flow, 4))
  with pytest.raises(ValueError, match=r"video 'v1'.*rgb: T=4, .*flow: T=2"):
    load_multi_folder(dirs, 'v1', policy='error')
  with pytest.raises(FeatureIssue, match=r'2 \+ 3 = 5 channels, expected input_dim=6'):
    load_multi_folder(dirs, 'v1', input_dim=6)
  with pytest.raises(FeatureError, match=r"video 'v2'.*v2\.npy.*does not exist"):
    load_multi_folder(dirs, 'v2')


@needs_h5py
def test_reader_mixes_folders_and_hdf5(tmp_path):
  import h5py

  rgb = np.ones((3, 2), np.float32)
  _write(tmp_path / 'rgb', 'v_1', rgb)
  with h5py.File(tmp_path / 'audio.h5', 'w') as f:
    f['v_1'] = np.full((3, 1), 2.0, np.float32)
  sources = parse_sources(f'{tmp_path / "rgb"},{tmp_path / "audio.h5"}', prefix='v_')
  assert [s.is_hdf5 for s in sources] == [False, True]
  with FeatureReader(sources, input_dim=3) as reader:
    np.testing.assert_array_equal(reader.load('1'), [[1, 1, 2]] * 3)


def test_reader_from_config_uses_data_fields(tmp_path):
  import ml_collections

  _write(tmp_path / 'a', 'x_v1', np.zeros((2, 3), np.float32))
  data = ml_collections.ConfigDict(
    dict(feature_dir=str(tmp_path / 'a'), feature_prefix='x_', feature_ext='npy', input_dim=3)
  )
  reader = FeatureReader.from_config(data)
  assert reader.sources == [FeatureSource(str(tmp_path / 'a'), 'x_', '.npy', 3)]
  assert reader.load('v1').shape == (2, 3)
  with pytest.raises(FeatureError, match=r'channel dimension is 3, expected 4'):
    data.input_dim = 4
    FeatureReader.from_config(data).load('v1')


def test_parse_sources_rejects_bad_settings():
  with pytest.raises(ValueError, match='no feature folder'):
    parse_sources(' , ')
  with pytest.raises(ValueError, match=r'2 feature dims \(1, 2\) given for 1 folders'):
    parse_sources('a', dims=(1, 2))
  with pytest.raises(ValueError, match=r"'\.mp4' is not one of"):
    parse_sources('a', ext='mp4')
