"""Numerical parity with ActionFormer's PyTorch model: all stages, both modes, gradients, CLI."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.model import torch_import
from asl_jax.model.detector import ActionDetector
from asl_jax.tools import parity

TOL = 1e-4  # max|Δ| <= TOL * max|ref| per tensor (shared/fixtures/README.md, "Tolerances").
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def fx(fixture_path):
  return parity.load_fixture(fixture_path)


@pytest.mark.parametrize('training', [False, True], ids=['eval', 'train_no_dropout'])
def test_every_stage_matches_reference(fx, training):
  results = parity.compare_forward(fx, training=training, tol=TOL)
  assert set(results) == {k for k in fx if k.startswith('out/')}
  assert {'out/embd', 'out/stem_block_0', 'out/fpn_feats_3', 'out/cls_logits_0'} <= set(results)
  failed = {k: r for k, r in results.items() if not r['ok']}
  assert not failed, json.dumps(failed, indent=1)


def test_gradients_and_losses_match_reference(fx):
  grads, losses = parity.loss_gradients(fx)
  params = {k[len('param/') :] for k in fx if k.startswith('param/')}
  assert set(grads) == params  # Every weight has a gradient, under its torch name.
  failures = []
  for name, ours in grads.items():
    ref = fx[f'grad/{name}']
    assert ours.shape == ref.shape, name
    bound = TOL * np.abs(ref).max() + parity.GRAD_ABS_FLOOR
    if np.abs(ours - ref).max() > bound:
      failures.append(f'{name}: max|Δ| {np.abs(ours - ref).max():.3g} > {bound:.3g}')
  assert not failures, '\n'.join(failures)
  assert losses['num_pos'] == int(fx['loss/num_pos'])
  np.testing.assert_allclose(losses['loss_norm'], fx['loss/loss_normalizer'], rtol=1e-7)
  np.testing.assert_allclose(losses['cls_loss'], fx['loss/cls_loss'], rtol=1e-5)
  np.testing.assert_allclose(losses['reg_loss'], fx['loss/reg_loss'], rtol=1e-5)
  np.testing.assert_allclose(losses['loss'], fx['loss/final_loss'], rtol=1e-5)


def test_fixture_weights_round_trip_through_our_layout(fx):
  """torch -> flax -> torch is the identity on the fixture's state dict (layouts invert)."""
  state = {k[len('param/') :]: v for k, v in fx.items() if k.startswith('param/')}
  model = ActionDetector(**parity.detector_kwargs(fx['config']['model_kwargs']))
  back = torch_import.flax_to_torch(parity.fixture_params(fx, model))
  assert set(back) == set(state)
  for name, value in state.items():
    np.testing.assert_array_equal(back[name], value, err_msg=name)


def _run_cli(path: pathlib.Path) -> subprocess.CompletedProcess:
  env = dict(
    os.environ,
    JAX_PLATFORMS='cpu',
    JAX_COMPILATION_CACHE_DIR=str(REPO_ROOT / '.jax_cache'),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
  )
  # --nograds: the gradients are checked in-process above; the exit code depends on the forward.
  cmd = [sys.executable, '-m', 'asl_jax.cli.parity', f'--fixture={path}', '--nograds']
  return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_cli_passes_on_fixture_and_fails_on_a_perturbed_weight(fixture_path, tmp_path):
  ok = _run_cli(fixture_path)
  assert ok.returncode == 0, ok.stderr[-2000:]
  report = json.loads(ok.stdout)
  assert report['ok'] and report['tolerance'] == TOL
  assert report['eval']['out/cls_logits_0']['max_rel'] < TOL

  with np.load(fixture_path) as z:
    arrays = {k: z[k] for k in z.files}
  name = 'param/backbone.stem.1.attn.value.weight'
  arrays[name] = arrays[name] * np.float32(1.01)
  perturbed = tmp_path / 'perturbed.npz'
  np.savez(perturbed, **arrays)
  bad = _run_cli(perturbed)
  assert bad.returncode != 0
  assert 'out/stem_block_1' in bad.stderr  # The first stage the weight influences is named.
  report = json.loads(bad.stdout)
  assert not report['ok'] and report['eval']['out/stem_block_0']['ok']


# A second fixture, made by bench/make_parity_fixture.py with ActionFormer's own code at a config
# unlike the shipped one: two input streams, absolute position embedding, arch (1, 1, 4), global
# and local (9, 5) windows per level, 3 heads, heads narrower than the embedding, kernel 5,
# 7 classes, label smoothing, centre radius 2, regression weight 0.5, multi-hot targets.
SECOND_FIXTURE = REPO_ROOT / 'tests' / 'data_fixtures' / 'actionformer_tiny_b.npz'


@pytest.fixture(scope='module')
def fx_b():
  return parity.load_fixture(SECOND_FIXTURE)


def test_second_fixture_differs_from_the_shipped_config(fx_b):
  kwargs = fx_b['config']['model_kwargs']
  assert kwargs['use_abs_pe'] and isinstance(kwargs['input_dim'], list)
  assert -1 in kwargs['n_mha_win_size'] and kwargs['head_dim'] != kwargs['fpn_dim']
  assert fx_b['config']['assignment_stats']['multi_hot_points'] > 0
  det = parity.detector_kwargs(kwargs)
  assert det['input_streams'] == (12, 20) and det['stream_embed_dims'] == (8, 16)
  assert det['embed_dim'] == 24 and det['window_sizes'] == (-1, 9, -1, 5, -1)
  assert det['use_abs_pe'] and det['max_seq_len'] == 128
  cfg = parity.loss_config(kwargs)
  assert (cfg.num_classes, cfg.center_sample_radius) == (7, 2.0)
  assert (cfg.reg_loss_weight, cfg.label_smoothing) == (0.5, 0.1)


def test_parity_on_second_fixture(fx_b):
  """Every stage in both modes, every gradient, the losses, num_pos and the normaliser."""
  report = parity.run_parity(SECOND_FIXTURE, tol=TOL)
  failed = {
    f'{mode}: {key}': r
    for mode, section in report.items()
    if isinstance(section, dict)
    for key, r in section.items()
    if not r['ok']
  }
  assert not failed, json.dumps(failed, indent=1)
  assert report['ok']
  assert set(report['eval']) == {k for k in fx_b if k.startswith('out/')}
  assert {'out/embd', 'out/stem_block_0', 'out/fpn_feats_4'} <= set(report['eval'])
  assert set(report['gradients']) >= {f'grad/{k[len("param/") :]}' for k in fx_b if 'param/' in k}
  assert report['gradients']['loss/num_pos']['max_abs'] == 0
  assert {'loss/final_loss', 'loss/loss_normalizer'} <= set(report['gradients'])


def test_second_fixture_weights_round_trip(fx_b):
  state = {k[len('param/') :]: v for k, v in fx_b.items() if k.startswith('param/')}
  model = ActionDetector(**parity.detector_kwargs(fx_b['config']['model_kwargs']))
  back = torch_import.flax_to_torch(parity.fixture_params(fx_b, model))
  assert set(back) == set(state)  # Including backbone.proj.<i>.conv.* of the two streams.
  assert {'backbone.proj.0.conv.weight', 'backbone.proj.1.conv.bias'} <= set(back)
  for name, value in state.items():
    np.testing.assert_array_equal(back[name], value, err_msg=name)


@pytest.mark.parametrize(
  'change, message',
  [
    ({'fpn_type': 'fpn'}, 'fpn_type'),
    ({'use_rel_pe': True}, 'use_rel_pe'),
    ({'embd_dim': 24}, 'both lists or neither'),
  ],
)
def test_unsupported_model_options_are_named(fx_b, change, message):
  kwargs = dict(fx_b['config']['model_kwargs'], **change)
  with pytest.raises(ValueError, match=message):
    parity.detector_kwargs(kwargs)


def test_loss_settings_come_from_train_cfg(fx_b):
  kwargs = fx_b['config']['model_kwargs']
  none = dict(kwargs, train_cfg=dict(kwargs['train_cfg'], center_sample='none'))
  assert parity.loss_config(none).center_sample_radius == 0.0  # Anywhere inside the segment.
  auto = dict(kwargs, train_cfg=dict(kwargs['train_cfg'], loss_weight=-1))
  with pytest.raises(ValueError, match='automatic balancing'):
    parity.loss_config(auto)
