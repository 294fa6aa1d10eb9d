"""Tests for PyTorch-compatible linear resampling (hand-derived values) and feature-set concat."""

import numpy as np
import pytest

from asl_jax.data.resample import concat_feature_sets, interpolate_linear

# Two channels per step so the weights are checked on more than one column.
X = np.array([[1.0, -2.0], [5.0, 4.0], [-3.0, 10.0], [7.0, 0.5], [2.0, 8.0]], np.float32)


def _blend(rows):
  """sum_k w_k * X[i_k] for [(w, i), ...]."""
  return sum(w * X[i].astype(np.float64) for w, i in rows)


def test_upsample_2_to_4():
  # scale 0.5: src = 0.5 i - 0.25 -> (-0.25 -> 0), 0.25, 0.75, 1.25 (i1 clamped to 1).
  expected = [X[0], _blend([(0.75, 0), (0.25, 1)]), _blend([(0.25, 0), (0.75, 1)]), X[1]]
  np.testing.assert_allclose(interpolate_linear(X[:2], 4), np.stack(expected), rtol=0, atol=1e-6)


def test_upsample_3_to_5():
  # scale 0.6: src = 0.6 i - 0.2 -> 0 (clamped), 0.4, 1.0, 1.6, 2.2 (i0 = i1 = 2).
  expected = [
    X[0],
    _blend([(0.6, 0), (0.4, 1)]),
    X[1],
    _blend([(0.4, 1), (0.6, 2)]),
    X[2],
  ]
  np.testing.assert_allclose(interpolate_linear(X[:3], 5), np.stack(expected), rtol=0, atol=1e-5)


def test_downsample_4_to_2_averages_pairs():
  # scale 2: src = 2 i + 0.5 -> 0.5, 2.5: no antialiasing, just the two nearest steps.
  expected = [_blend([(0.5, 0), (0.5, 1)]), _blend([(0.5, 2), (0.5, 3)])]
  np.testing.assert_allclose(interpolate_linear(X[:4], 2), np.stack(expected), rtol=0, atol=1e-6)


def test_downsample_5_to_3_non_integer_scale():
  # scale 5/3: src = 0.3333, 2.0, 3.6667.
  expected = [_blend([(2 / 3, 0), (1 / 3, 1)]), X[2], _blend([(1 / 3, 3), (2 / 3, 4)])]
  np.testing.assert_allclose(interpolate_linear(X, 3), np.stack(expected), rtol=0, atol=1e-5)


def test_single_step_is_repeated():
  np.testing.assert_array_equal(interpolate_linear(X[:1], 3), np.repeat(X[:1], 3, axis=0))


def test_same_length_is_an_equal_float32_copy():
  src = X.astype(np.float64)
  out = interpolate_linear(src, len(X))
  assert out.dtype == np.float32 and out is not src
  np.testing.assert_array_equal(out, X)


def test_linear_ramp_is_reproduced_between_the_clamped_ends():
  t, new_len = 7, 19
  ramp = np.arange(t, dtype=np.float32)[:, None] * 3.0 + 1.0
  src = (np.arange(new_len) + 0.5) * t / new_len - 0.5
  inner = (src >= 0) & (src <= t - 1)
  out = interpolate_linear(ramp, new_len)[:, 0]
  np.testing.assert_allclose(out[inner], 3.0 * src[inner] + 1.0, rtol=1e-6)


@pytest.mark.parametrize('bad', [0, -1, 2.5])
def test_bad_length_raises(bad):
  with pytest.raises(ValueError, match='new_len'):
    interpolate_linear(X, bad)


def test_bad_shape_raises():
  with pytest.raises(ValueError, match=r'\[T, C\]'):
    interpolate_linear(np.zeros(4), 2)


def test_concat_resamples_to_the_longest():
  a, b = X[:4], np.array([[1.0], [3.0]], np.float32)
  out = concat_feature_sets([a, b], names=['rgb', 'flow'], video_id='v1')
  assert out.shape == (4, 3)
  np.testing.assert_array_equal(out[:, :2], a)
  np.testing.assert_allclose(out[:, 2], [1.0, 1.5, 2.5, 3.0])


def test_concat_equal_lengths_is_plain_concatenation():
  out = concat_feature_sets([X, X[:, :1]], policy='error')
  np.testing.assert_array_equal(out, np.concatenate([X, X[:, :1]], axis=1))


def test_concat_error_policy_names_the_lengths():
  with pytest.raises(ValueError, match=r"video 'v1'.*rgb: T=5, flow: T=2.*policy='resample'"):
    concat_feature_sets([X, X[:2]], policy='error', names=['rgb', 'flow'], video_id='v1')


def test_concat_rejects_bad_arguments():
  with pytest.raises(ValueError, match='policy'):
    concat_feature_sets([X], policy='nearest')
  with pytest.raises(ValueError, match='no feature sets'):
    concat_feature_sets([])
  with pytest.raises(ValueError, match='set 1 has shape'):
    concat_feature_sets([X, np.zeros(3)])
