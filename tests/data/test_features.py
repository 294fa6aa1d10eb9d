"""Tests for the per-video feature loader: each format and each way a file can be wrong."""

import os
import re

import numpy as np
import pytest

from asl_jax.data.features import FeatureError, feature_path, load_features


def test_feature_path():
  assert feature_path('/f', 'v1') == os.path.join('/f', 'v1.npy')
  assert feature_path('/f', 'v1', prefix='v_', ext='npz') == os.path.join('/f', 'v_v1.npz')


def test_npy_is_read_as_float32(tmp_path):
  feats = np.arange(12, dtype=np.float64).reshape(4, 3)
  np.save(tmp_path / 'v1.npy', feats)
  out = load_features(tmp_path / 'v1.npy', expected_dim=3)
  assert out.dtype == np.float32 and out.shape == (4, 3)
  np.testing.assert_array_equal(out, feats)


def test_npz_prefers_feats_key(tmp_path):
  feats = np.ones((5, 2), np.float32)
  np.savez(tmp_path / 'v1.npz', other=np.zeros((3, 3)), feats=feats)
  np.testing.assert_array_equal(load_features(str(tmp_path / 'v1.npz')), feats)


def test_npz_with_one_array_uses_it(tmp_path):
  feats = np.full((5, 2), 2.0, np.float16)
  np.savez(tmp_path / 'v1.npz', x=feats)
  out = load_features(tmp_path / 'v1.npz', expected_dim=2)
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out, feats)


def test_npz_with_several_arrays_and_no_feats_raises(tmp_path):
  np.savez(tmp_path / 'v1.npz', a=np.zeros((2, 2)), b=np.zeros((2, 2)))
  with pytest.raises(FeatureError, match=r"video 'v1'.*v1\.npz.*keys: \['a', 'b'\]"):
    load_features(tmp_path / 'v1.npz')


def test_missing_file_raises(tmp_path):
  with pytest.raises(FeatureError, match=r"video 'clip7'.*missing\.npy.*does not exist"):
    load_features(tmp_path / 'missing.npy', video_id='clip7')


def test_feature_error_is_a_value_error():
  assert issubclass(FeatureError, ValueError)


def test_unsupported_extension_raises(tmp_path):
  (tmp_path / 'v1.pt').write_bytes(b'x')
  with pytest.raises(FeatureError, match=r"v1\.pt.*unsupported extension '\.pt'"):
    load_features(tmp_path / 'v1.pt')


def test_corrupt_file_raises(tmp_path):
  (tmp_path / 'v1.npy').write_bytes(b'not an npy file')
  with pytest.raises(FeatureError, match=r"video 'v1'.*not a NumPy \.npy file"):
    load_features(tmp_path / 'v1.npy')


def test_pickled_objects_are_refused(tmp_path):
  np.save(tmp_path / 'v1.npy', np.array([{'a': 1}], dtype=object), allow_pickle=True)
  with pytest.raises(FeatureError, match='cannot read'):
    load_features(tmp_path / 'v1.npy')


@pytest.mark.parametrize('shape', [(6,), (2, 3, 4)])
def test_not_2d_raises(tmp_path, shape):
  np.save(tmp_path / 'v1.npy', np.zeros(shape, np.float32))
  with pytest.raises(FeatureError, match=rf"video 'v1'.*2-D.*{re.escape(str(shape))}"):
    load_features(tmp_path / 'v1.npy')


def test_empty_time_axis_raises(tmp_path):
  np.save(tmp_path / 'v1.npy', np.zeros((0, 8), np.float32))
  with pytest.raises(FeatureError, match=r"video 'v1'.*no time steps"):
    load_features(tmp_path / 'v1.npy', expected_dim=8)


def test_wrong_channel_dim_raises(tmp_path):
  np.save(tmp_path / 'v1.npy', np.zeros((10, 6), np.float32))
  with pytest.raises(FeatureError, match=r"video 'v1'.*channel dimension is 6, expected 8") as e:
    load_features(tmp_path / 'v1.npy', expected_dim=8)
  assert 'looks like' not in str(e.value)


def test_transposed_array_is_called_out(tmp_path):
  np.save(tmp_path / 'v1.npy', np.zeros((8, 30), np.float32))
  with pytest.raises(FeatureError, match=r'looks like \[C, T\]; expected \[T, C\]'):
    load_features(tmp_path / 'v1.npy', expected_dim=8)


def test_non_finite_values_are_counted(tmp_path):
  feats = np.zeros((4, 3), np.float32)
  feats[0, 0] = feats[1, 2] = np.nan
  feats[3, 1] = np.inf
  np.save(tmp_path / 'v1.npy', feats)
  with pytest.raises(FeatureError, match=r"video 'v1'.*3 non-finite values \(2 NaN, 1 Inf\) of 12"):
    load_features(tmp_path / 'v1.npy')


def test_non_numeric_dtype_raises(tmp_path):
  np.save(tmp_path / 'v1.npy', np.array([['a', 'b']]))
  with pytest.raises(FeatureError, match='not numeric'):
    load_features(tmp_path / 'v1.npy')
