"""Importing PyTorch checkpoints: CLI round trip, and every way a state dict can fail to fit."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from asl_jax.model import torch_import
from asl_jax.model.build import build_model
from asl_jax.tools import import_torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The ActionFormer detector (ASL parts off): embed 16, arch (1, 1, 2), 8 classes, input 16.
CONFIG = 'configs/demo.py:tiny,baseline'


def _load_config(variant: str):
  from asl_jax.configs import demo as module

  return module.get_config(variant)


@pytest.fixture(scope='module')
def config():
  return _load_config('tiny,baseline')


@pytest.fixture(scope='module')
def random_params(config):
  """Our params with every leaf random, so a swapped or mis-transposed tensor cannot hide."""
  model = build_model(config)
  t = config.data.max_seq_len
  shapes = jax.eval_shape(
    model.init,
    jax.random.key(0),
    jnp.zeros((1, t, config.data.input_dim)),
    jnp.ones((1, t), bool),
  )['params']
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)


@pytest.fixture(scope='module')
def state_dict(random_params):
  return torch_import.flax_to_torch(random_params)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-m', 'asl_jax.cli.import_torch', f'--config={CONFIG}', *args]
  return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_state_dict_uses_actionformer_names_and_layouts(state_dict, random_params):
  assert state_dict['backbone.embd.0.conv.weight'].shape == (16, 16, 3)  # [out, in, k]
  assert state_dict['backbone.stem.0.attn.query_conv.conv.weight'].shape == (16, 1, 3)
  assert state_dict['backbone.stem.0.attn.query.weight'].shape == (16, 16, 1)
  assert state_dict['backbone.branch.1.mlp.0.weight'].shape == (64, 16, 1)
  assert state_dict['backbone.branch.1.mlp.3.weight'].shape == (16, 64, 1)
  assert state_dict['backbone.embd_norm.0.weight'].shape == (1, 16, 1)
  assert state_dict['backbone.stem.0.drop_path_mlp.scale'].shape == (1, 16, 1)
  assert state_dict['neck.fpn_norms.2.bias'].shape == (1, 16, 1)
  assert state_dict['cls_head.cls_head.conv.weight'].shape == (8, 16, 3)
  assert state_dict['reg_head.offset_head.conv.bias'].shape == (2,)
  assert state_dict['reg_head.scale.2.scale'].shape == ()
  # A dense kernel [in, out] is the transposed 1x1 conv weight [out, in, 1].
  dense = random_params['encoder']['stem_0']['mlp_fc1']['kernel']
  np.testing.assert_array_equal(state_dict['backbone.stem.0.mlp.0.weight'][:, :, 0], dense.T)


def test_round_trip_through_npz_and_cli(tmp_path, state_dict, random_params):
  checkpoint = tmp_path / 'weights.npz'
  np.savez(checkpoint, **state_dict)
  out = tmp_path / 'imported'
  result = _run_cli(f'--checkpoint={checkpoint}', f'--out={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout)
  assert report['mapped'] == len(state_dict) and not report['ignored'] and not report['filled']
  assert report['num_params'] == sum(v.size for v in state_dict.values())
  assert json.loads((out / 'import_report.json').read_text()) == report

  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), random_params)
  restored = ocp.StandardCheckpointer().restore(out / 'params', target)
  flat_restored = dict(jax.tree_util.tree_flatten_with_path(restored)[0])
  for path, value in jax.tree_util.tree_flatten_with_path(random_params)[0]:
    np.testing.assert_array_equal(np.asarray(flat_restored[path]), value, err_msg=str(path))

  again = _run_cli(f'--checkpoint={checkpoint}', f'--out={out}')
  assert again.returncode != 0 and '--force' in again.stderr  # Never overwrites silently.


def test_unknown_tensor_is_named(state_dict, random_params, tmp_path):
  extra = dict(state_dict, **{'backbone.stem.0.attn.rel_pe': np.zeros((1, 1, 2, 5), np.float32)})
  with pytest.raises(torch_import.TorchImportError, match=r'backbone\.stem\.0\.attn\.rel_pe'):
    torch_import.torch_to_flax(extra, random_params)
  checkpoint = tmp_path / 'extra.npz'
  np.savez(checkpoint, **extra)
  result = _run_cli(f'--checkpoint={checkpoint}', f'--out={tmp_path / "out"}')
  assert result.returncode != 0
  assert 'backbone.stem.0.attn.rel_pe [1, 1, 2, 5]' in result.stderr
  assert not (tmp_path / 'out' / 'params').exists()


def test_shape_mismatch_is_named_in_torch_layout(state_dict, random_params):
  bad = dict(state_dict)
  bad['cls_head.cls_head.conv.weight'] = np.zeros((20, 16, 3), np.float32)  # 20 classes, not 8.
  with pytest.raises(torch_import.TorchImportError) as e:
    torch_import.torch_to_flax(bad, random_params)
  assert (
    'cls_head.cls_head.conv.weight: checkpoint has [20, 16, 3], the model needs [8, 16, 3]'
    in (str(e.value))
  )


def test_missing_tensor_is_named(state_dict, random_params):
  partial = {k: v for k, v in state_dict.items() if k != 'neck.fpn_norms.1.weight'}
  with pytest.raises(torch_import.TorchImportError, match=r'lacks:\n  neck\.fpn_norms\.1\.weight'):
    torch_import.torch_to_flax(partial, random_params)


def test_known_unused_tensors_are_ignored_and_reported(state_dict, random_params):
  unused = {
    'backbone_m.embd.0.conv.weight': (16, 16, 3),
    'neck_m.fpn_norms.0.weight': (1, 16, 1),
    'seg_conv.cls_head.conv.weight': (8, 16, 3),
    'backbone.downsample_conv.conv.weight': (16, 1, 3),
    'backbone.stem.0.channel_attn.norm1.weight': (16,),
    'backbone.branch.0.channel_attn.attn.qkv.weight': (48, 16),
    'backbone.xlnet.word_embedding.weight': (10, 16),
    'backbone.xlnet.mask_emb': (1, 1, 16),
    'backbone.xlnet.layer.0.rel_attn.seg_embed': (2, 2, 8),
    'backbone.xlnet.layer.0.rel_attn.r_s_bias': (2, 8),
    'some_bn.num_batches_tracked': (),
  }
  full = dict(state_dict, **{k: np.zeros(s, np.float32) for k, s in unused.items()})
  params, report = torch_import.torch_to_flax(full, {'params': random_params})
  assert set(report.ignored) == set(unused)
  assert all(report.ignored.values())  # Each with its reason.
  assert set(params) == {'params'}  # The template's wrapping is kept.
  # Used ASL tensors our model cannot represent are errors, not silently dropped.
  used = dict(full, **{'backbone.stem.0.channel_attn.attn.proj.weight': np.zeros((16, 16))})
  with pytest.raises(torch_import.TorchImportError, match='channel_attn.attn.proj.weight'):
    torch_import.torch_to_flax(used, random_params)


def test_asl_parts_need_keep_unmapped(state_dict):
  """An ActionFormer checkpoint into the full ASL model: its extra parts are named, or kept."""
  config = _load_config('tiny')
  with pytest.raises(torch_import.TorchImportError, match=r'no PyTorch counterpart') as e:
    import_torch.import_checkpoint(state_dict, config)
  assert 'class_gaussians/cls_mu' in str(e.value) and '--keep_unmapped' in str(e.value)
  params, report = import_torch.import_checkpoint(state_dict, config, keep_unmapped=True)
  assert report.mapped and len(report.mapped) == len(state_dict)
  assert 'class_gaussians/cls_mu' in report.filled
  np.testing.assert_array_equal(params['class_gaussians']['start_mu'], -0.5)  # Its init value.
  np.testing.assert_array_equal(
    params['reg_head']['scale_1']['scale'], state_dict['reg_head.scale.1.scale']
  )


def test_checkpoint_without_drop_path_gets_identity_scales(state_dict, random_params):
  """ActionFormer builds AffineDropPath only when droppath > 0; without it the scale is 1."""
  no_dp = {k: v for k, v in state_dict.items() if '.drop_path_' not in k}
  params, report = torch_import.torch_to_flax(no_dp, random_params)
  assert 'encoder/stem_0/drop_path_attn/scale' in report.filled
  np.testing.assert_array_equal(params['encoder']['branch_1']['drop_path_mlp']['scale'], 1.0)


def test_select_state_dict_prefers_ema_and_strips_wrappers(state_dict):
  wrapped = {f'module.{k}': v for k, v in state_dict.items()}
  raw = {f'module.{k}': v + 1 for k, v in state_dict.items()}
  checkpoint = {'epoch': 3, 'state_dict': raw, 'state_dict_ema': wrapped, 'optimizer': {}}
  ema = torch_import.select_state_dict(checkpoint)
  assert set(ema) == set(state_dict)
  np.testing.assert_array_equal(ema['reg_head.scale.0.scale'], state_dict['reg_head.scale.0.scale'])
  plain = torch_import.select_state_dict(checkpoint, use_ema=False)
  np.testing.assert_array_equal(
    plain['backbone.embd.0.conv.weight'], raw['module.backbone.embd.0.conv.weight']
  )
  assert set(torch_import.select_state_dict({'model': state_dict})) == set(state_dict)
  assert set(torch_import.select_state_dict(state_dict)) == set(state_dict)
  with pytest.raises(torch_import.TorchImportError, match='no state dict found'):
    torch_import.select_state_dict({'optimizer': {}, 'epoch': 1})


def test_pth_without_torch_says_how_to_convert(tmp_path, monkeypatch):
  path = tmp_path / 'model.pth.tar'
  path.write_bytes(b'')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` raises ImportError.
  with pytest.raises(import_torch.CheckpointReadError) as e:
    import_torch.read_checkpoint(path)
  message = str(e.value)
  assert 'needs PyTorch: pip install torch' in message
  assert f"torch.load('{path}'" in message and 'np.savez' in message
  assert str(tmp_path / 'model.npz') in message


@pytest.mark.skipif(importlib.util.find_spec('torch') is not None, reason='torch is installed')
def test_cli_pth_without_torch_exits_with_the_message(tmp_path):
  path = tmp_path / 'model.pth'
  path.write_bytes(b'')
  result = _run_cli(f'--checkpoint={path}', f'--out={tmp_path / "out"}')
  assert result.returncode != 0
  assert 'needs PyTorch: pip install torch' in result.stderr and 'np.savez' in result.stderr


def test_fixture_npz_reads_only_param_entries(fixture_path):
  state = import_torch.read_npz(fixture_path)
  with np.load(fixture_path) as z:
    assert len(state) == sum(k.startswith('param/') for k in z.files)
  assert 'backbone.embd.0.conv.weight' in state
  assert not any(k.startswith(('out/', 'grad/', 'param/')) for k in state)
