"""Input embedding: per-stream projection, the sinusoid position table and its interpolation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax import configuration
from asl_jax.configs import base
from asl_jax.data import resample
from asl_jax.model import build, embedding, torch_import
from asl_jax.model.detector import ActionDetector
from asl_jax.model.encoder import ConvTransformerEncoder
from asl_jax.model.layers import MaskedConv1D
from tests.model.test_model import TINY


def test_sinusoid_table_hand_values():
  # dim 4: frequencies 1 and 1/10000^(2/4) = 1/100.
  table = embedding.sinusoid_table(3, 4)
  for p in range(3):
    expected = [math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)]
    np.testing.assert_allclose(table[p], expected, rtol=1e-7, atol=1e-7)
  # dim 6: the middle pair uses 10000^(2/6), the last 10000^(4/6).
  table = embedding.sinusoid_table(3, 6)
  a, b = 10000 ** (1 / 3), 10000 ** (2 / 3)
  expected = [math.sin(2), math.cos(2), math.sin(2 / a), math.cos(2 / a), math.sin(2 / b)]
  np.testing.assert_allclose(table[2, :5], expected, rtol=1e-6)
  np.testing.assert_allclose(table[2, 5], math.cos(2 / b), rtol=1e-6)
  assert table.dtype == np.float32 and table.shape == (3, 6)
  np.testing.assert_array_equal(table[0], [0, 1, 0, 1, 0, 1])  # sin 0, cos 0.


def test_position_table_is_scaled_and_cut_or_stretched():
  pe = embedding.absolute_position_embedding(5, 4, max_len=8)
  np.testing.assert_allclose(pe, embedding.sinusoid_table(8, 4)[:5] / 2.0, rtol=1e-7)
  long = embedding.absolute_position_embedding(12, 4, max_len=8)
  assert long.shape == (12, 4)
  np.testing.assert_allclose(
    long, resample.interpolate_linear(embedding.sinusoid_table(8, 4) / 2.0, 12), rtol=1e-7
  )
  # Exactly max_len: the table itself (the reference's interpolation to T == max_len is identity).
  np.testing.assert_array_equal(
    embedding.absolute_position_embedding(8, 4, max_len=8),
    embedding.sinusoid_table(8, 4) / np.float32(2.0),
  )
  with pytest.raises(ValueError, match='max_len >= 1'):
    embedding.absolute_position_embedding(8, 4, max_len=0)


def test_resize_linear_hand_values_and_matches_the_data_resampler():
  table = np.arange(4, dtype=np.float32)[:, None]
  # src = (i + 0.5) * 4 / 6 - 0.5 = -1/6 (clamped to 0), 1/2, 7/6, 11/6, 5/2, 19/6 (-> row 3).
  np.testing.assert_allclose(
    embedding.resize_linear(table, 6)[:, 0], [0, 0.5, 7 / 6, 11 / 6, 2.5, 3.0], rtol=1e-6
  )
  rng = np.random.default_rng(0)
  for t, new in ((7, 19), (64, 100), (2304, 4608 + 32), (5, 3)):
    x = rng.normal(size=(t, 3)).astype(np.float32)
    np.testing.assert_array_equal(
      embedding.resize_linear(x, new), resample.interpolate_linear(x, new)
    )


def test_stream_projection_equals_separate_convs_on_channel_slices():
  streams, dims = (3, 5, 2), (4, 6, 2)
  proj = embedding.StreamProjection(streams, dims)
  x = jax.random.normal(jax.random.key(0), (2, 9, 10))
  mask = jnp.arange(9)[None] < jnp.array([[9], [6]])
  params = proj.init(jax.random.key(1), x, mask)
  # Biases are zero-initialised; make them non-zero so the check covers them too.
  params = jax.tree.map(lambda a: a + 0.1 * jnp.ones_like(a), params)
  out = proj.apply(params, x, mask)
  assert out.shape == (2, 9, sum(dims))
  start, col = 0, 0
  for i, (c_in, c_out) in enumerate(zip(streams, dims)):
    conv = params['params'][f'stream_{i}']['conv']
    assert conv['kernel'].shape == (1, c_in, c_out)
    piece = x[..., start : start + c_in]
    ref, _ = MaskedConv1D(c_out, 1).apply({'params': {'conv': conv}}, piece, mask)
    manual = (piece @ conv['kernel'][0] + conv['bias']) * mask[..., None]
    np.testing.assert_allclose(out[..., col : col + c_out], ref, atol=1e-6)
    np.testing.assert_allclose(out[..., col : col + c_out], manual, atol=1e-5)
    start, col = start + c_in, col + c_out
  assert not np.asarray(out[1, 6:]).any()  # Masked, bias included.


def test_stream_projection_rejects_inconsistent_widths():
  x, mask = jnp.zeros((1, 4, 7)), jnp.ones((1, 4), bool)
  with pytest.raises(ValueError, match='sum to 6 channels but the input has 7'):
    embedding.StreamProjection((3, 3), (4, 4)).init(jax.random.key(0), x, mask)
  with pytest.raises(ValueError, match='2 input streams'):
    embedding.StreamProjection((3, 4), (4,)).init(jax.random.key(0), x, mask)


def test_encoder_adds_the_table_at_valid_positions_only():
  kwargs = dict(embed_dim=8, num_heads=2, num_stem=0, num_branch=0, window_sizes=(5,))
  plain = ConvTransformerEncoder(**kwargs)
  with_pe = ConvTransformerEncoder(**kwargs, use_abs_pe=True, max_seq_len=16)
  x = jax.random.normal(jax.random.key(0), (2, 12, 5))
  mask = jnp.arange(12)[None] < jnp.array([[12], [7]])
  params = plain.init(jax.random.key(1), x, mask, deterministic=True)
  a = plain.apply(params, x, mask, deterministic=True)[0][0]
  b = with_pe.apply(params, x, mask, deterministic=True)[0][0]  # The table has no parameters.
  pe = embedding.sinusoid_table(16, 8)[:12] / np.sqrt(8)
  np.testing.assert_allclose(b - a, pe[None] * np.asarray(mask)[..., None], atol=1e-6)


def _init(model, t, c):
  return model.init({'params': jax.random.key(0)}, jnp.zeros((1, t, c)), jnp.ones((1, t), bool))


def test_detector_with_streams_and_abs_pe_shapes():
  model = ActionDetector(
    **TINY, input_streams=(3, 4), stream_embed_dims=(8, 6), use_abs_pe=True, max_seq_len=32
  )
  params = _init(model, 32, 7)
  enc = params['params']['encoder']
  assert enc['input_proj']['stream_0']['conv']['kernel'].shape == (1, 3, 8)
  assert enc['input_proj']['stream_1']['conv']['kernel'].shape == (1, 4, 6)
  assert enc['embed_conv_0']['conv']['kernel'].shape == (3, 14, 16)  # sum of stream widths in.
  for t in (32, 64):  # 64 > max_seq_len: the table is stretched.
    out = model.apply(params, jnp.ones((2, t, 7)), jnp.ones((2, t), bool))
    p = t + t // 2 + t // 4
    assert out['cls_logits'].shape == (2, p, 3) and out['offsets'].shape == (2, p, 2)
    assert np.isfinite(np.asarray(out['cls_logits'])).all()


def test_stretched_table_changes_long_inputs_only():
  kwargs = dict(embed_dim=8, num_heads=2, num_stem=0, num_branch=0, window_sizes=(5,))
  enc = ConvTransformerEncoder(**kwargs, use_abs_pe=True, max_seq_len=8)
  plain = ConvTransformerEncoder(**kwargs)
  x = jax.random.normal(jax.random.key(0), (1, 12, 5))
  mask = jnp.ones((1, 12), bool)
  params = plain.init(jax.random.key(1), x, mask, deterministic=True)
  diff = (
    enc.apply(params, x, mask, deterministic=True)[0][0]
    - plain.apply(params, x, mask, deterministic=True)[0][0]
  )
  expected = resample.interpolate_linear(embedding.sinusoid_table(8, 8) / np.sqrt(8), 12)
  np.testing.assert_allclose(diff[0], expected, atol=1e-6)


def test_stream_projection_imports_from_and_exports_to_torch_names():
  model = ActionDetector(**TINY, input_streams=(3, 4), stream_embed_dims=(8, 8))
  params = _init(model, 32, 7)['params']
  state = torch_import.flax_to_torch(params)
  assert state['backbone.proj.0.conv.weight'].shape == (8, 3, 1)
  assert state['backbone.proj.1.conv.weight'].shape == (8, 4, 1)
  assert state['backbone.proj.1.conv.bias'].shape == (8,)
  back, report = torch_import.torch_to_flax(state, params)
  assert 'backbone.proj.0.conv.weight' in report.mapped
  for path in (('stream_0', 'kernel'), ('stream_1', 'bias')):
    np.testing.assert_array_equal(
      back['encoder']['input_proj'][path[0]]['conv'][path[1]],
      params['encoder']['input_proj'][path[0]]['conv'][path[1]],
    )
  # A checkpoint trained with a single input has no projection: named as missing.
  del state['backbone.proj.0.conv.weight']
  with pytest.raises(torch_import.TorchImportError, match=r'backbone\.proj\.0\.conv\.weight'):
    torch_import.torch_to_flax(state, params)


def _config(**model):
  config = base.get_base_config()
  config.data.annotation_file, config.data.feature_dir = 'a.json', 'feats'
  config.model.update(model)
  return config


def test_config_streams_must_sum_to_input_dim():
  config = _config(input_streams=(256, 2304, 1536), stream_embed_dims=(256, 128, 128))
  config.data.input_dim = 4096
  configuration.validate_config(config)
  config.data.input_dim = 2048
  with pytest.raises(
    configuration.ConfigError, match=r'input_streams \(256, 2304, 1536\) sum to 4096 .* 2048'
  ):
    configuration.validate_config(config)
  config = _config(input_streams=(1024, 1024), stream_embed_dims=(256,))
  with pytest.raises(configuration.ConfigError, match='one entry per feature stream'):
    configuration.validate_config(config)


def test_build_passes_streams_abs_pe_and_window_length():
  config = _config(input_streams=(1024, 1024), stream_embed_dims=(256, 256), use_abs_pe=True)
  config.data.max_seq_len = 1024
  configuration.validate_config(config)
  model = build.build_model(config)
  assert model.input_streams == (1024, 1024) and model.stream_embed_dims == (256, 256)
  assert model.use_abs_pe and model.max_seq_len == 1024
  default = build.build_model(_config())
  assert not default.use_abs_pe and default.input_streams == ()
