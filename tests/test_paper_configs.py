"""Paper configs load, validate, build and train one step at their geometry; ablations bite."""

import jax
import numpy as np
import pytest

from asl_jax import configuration, parallel
from asl_jax.evaluation.metrics import TIOU_PRESETS
from asl_jax.model.build import build_model
from asl_jax.ops import segments as seg_ops
from asl_jax.train import optim
from asl_jax.train.build import build_loss_config
from asl_jax.train.state import create_train_state
from asl_jax.train.step import jit_train_step, make_train_step
from tests.test_configs import load

# config -> (TIoU preset, classes, input channels, pyramid levels, predictions kept per video).
PAPER = {
  'thumos14_i3d.py': ('thumos14', 20, 2048, 6, 200),
  'activitynet13_i3d.py': ('activitynet', 1, 2048, 6, 100),
  'multithumos_i3d.py': ('multithumos', 65, 2048, 6, 200),
  'charades_i3d.py': ('charades', 157, 1024, 6, 200),
  'ego4d_egovlp.py': ('ego4d', 110, 256, 10, 2000),
  'ego4d_egovlp_sf_ov.py': ('ego4d', 110, 4096, 10, 2000),
  'epic100_verb_slowfast.py': ('epic', 97, 2304, 6, 2000),
  'epic100_noun_slowfast.py': ('epic', 300, 2304, 6, 2000),
}


@pytest.mark.parametrize('name', sorted(PAPER))
def test_paper_settings(name):
  config = load(name)
  configuration.validate_config(config)
  preset, num_classes, input_dim, levels, kept = PAPER[name]
  np.testing.assert_allclose(config.test.tiou_thresholds, TIOU_PRESETS[preset])
  assert (config.data.num_classes, config.data.input_dim) == (num_classes, input_dim)
  assert len(config.model.regression_ranges) == levels == config.model.arch[2] + 1
  assert config.test.max_seg_num == kept
  assert config.train.contrastive_weight == 0.3 and config.train.contrastive_delta == 0.2
  assert config.model.channel_theta == 0.2
  assert config.model.ase.instance_evaluator and config.model.ase.cls_gaussian == 'learnable'


def test_ego4d_streams_match_the_feature_sets():
  config = load('ego4d_egovlp_sf_ov.py')
  assert config.data.feature_dir.split(',') == [
    'data/ego4d/egovlp',
    'data/ego4d/slowfast',
    'data/ego4d/omnivore',
  ]
  assert tuple(config.model.input_streams) == tuple(config.data.feature_dims) == (256, 2304, 1536)


def test_multithumos_rgb_variant_uses_superevents_at_the_feature_rate():
  config = load('multithumos_i3d.py:rgb_h5')
  configuration.validate_config(config)
  assert config.data.annotation_format == 'superevents' and config.data.label_offset == -1
  assert (config.data.input_dim, config.data.feat_stride) == (1024, 1.0)


@pytest.mark.parametrize('name', sorted(PAPER))
def test_every_config_rejects_unknown_variants(name):
  with pytest.raises(ValueError, match='unknown variant'):
    load(f'{name}:no_such_row')


def _flat_keys(tree, prefix=''):
  for k, v in tree.items():
    if hasattr(v, 'items'):
      yield from _flat_keys(v, f'{prefix}{k}.')
    else:
      yield prefix + k


def _get(config, key):
  for part in key.split('.'):
    config = config[part]
  return config


ABLATIONS = {
  'no_class_level': {'model.ase.cls_gaussian': 'none', 'model.ase.loc_gaussian': 'none'},
  'no_instance_level': {
    'model.ase.instance_evaluator': False,
    'train.sensitivity_loss_weight': 0.0,
  },
  'no_ascl': {'train.contrastive_weight': 0.0},
  'cls_gaussian_fixed': {'model.ase.cls_gaussian': 'fixed', 'model.ase.loc_gaussian': 'learnable'},
  'loc_gaussian_none': {'model.ase.loc_gaussian': 'none', 'model.ase.cls_gaussian': 'learnable'},
  'loc_gaussians_1': {'model.ase.num_loc_gaussians': 1},
  'shared_gaussian': {'model.ase.shared_gaussian': True},
  'no_ascl,no_instance_level': {
    'train.contrastive_weight': 0.0,
    'model.ase.instance_evaluator': False,
  },
}


@pytest.mark.parametrize('variant', sorted(ABLATIONS))
def test_ablation_variant_changes_only_its_fields(variant):
  default, ablated = load('charades_i3d.py'), load(f'charades_i3d.py:{variant}')
  for key, value in ABLATIONS[variant].items():
    assert _get(ablated, key) == value, key
  changed = {k for k in _flat_keys(default) if _get(default, k) != _get(ablated, k)}
  assert changed <= set(ABLATIONS[variant]) | {'train.sensitivity_loss_weight'}
  configuration.validate_config(ablated)


def _shrink(config):
  """Tiny widths, the config's pyramid and channels, a window of 2-4 x the pyramid stride."""
  model, data = config.model, config.data
  model.embed_dim = model.fpn_dim = model.head_dim = 16
  model.num_heads = 2
  model.arch = (1, 1, model.arch[2])
  if model.input_streams:
    model.stream_embed_dims = (8,) * len(model.input_streams)
  stride = configuration.pyramid_stride(config)
  data.max_seq_len = stride * (2 if stride >= 512 else 4)
  data.max_segments = 4
  config.train.batch_size = 2
  return config


def _batch(config, rng):
  """Random features; video 1 is shorter; three ground truths each (grid units)."""
  b, t, m = 2, config.data.max_seq_len, config.data.max_segments
  lengths = np.array([t, 3 * t // 4])
  starts = rng.uniform(0, t / 2, (b, m)).astype(np.float32)
  ends = starts + rng.uniform(2, t / 4, (b, m)).astype(np.float32)
  valid = np.arange(m)[None].repeat(b, 0) < 3
  return {
    'feats': rng.standard_normal((b, t, config.data.input_dim), dtype=np.float32),
    'mask': np.arange(t)[None] < lengths[:, None],
    'segments': np.where(valid[..., None], np.stack([starts, ends], -1), 0.0).astype(np.float32),
    'labels': np.where(valid, rng.integers(0, config.data.num_classes, (b, m)), 0).astype(np.int32),
    'segment_valid': valid,
  }


def _training(config):
  """(model, un-jitted step, initial state shapes, batch) at the config's (shrunk) geometry."""
  model = build_model(config)
  batch = _batch(config, np.random.default_rng(0))
  t = config.train
  schedule = optim.build_schedule(learning_rate=t.learning_rate, warmup_steps=1, total_steps=2)
  tx = optim.build_optimizer(
    schedule=schedule, weight_decay=t.weight_decay, clip_grad_norm=t.clip_grad_norm
  )
  points = seg_ops.make_points(config.data.max_seq_len, config.model.regression_ranges)
  step = make_train_step(
    model, points, tx, schedule, build_loss_config(config), ema_decay=t.ema_decay
  )

  def init_state(rng):
    params = model.init({'params': rng}, batch['feats'][:1], batch['mask'][:1])['params']
    return create_train_state(params, tx, init_loss_norm=t.init_loss_norm, rng=rng)

  return step, init_state, batch


TRAIN_STEP_CASES = sorted(PAPER) + ['multithumos_i3d.py:rgb_h5,no_class_level']


@pytest.mark.parametrize('name', TRAIN_STEP_CASES)
def test_training_step_traces_at_the_config_geometry(name):
  """Init and one full step (forward, assignment, losses, AdamW, EMA), traced without compiling.

  Tracing checks every shape and structure at the config's channels, classes and pyramid. XLA
  compiles one step of these models in 20-60 s of CPU, so one config (the next test) runs.
  """
  config = _shrink(load(name))
  configuration.validate_config(config)
  step, init_state, batch = _training(config)
  state = jax.eval_shape(init_state, jax.random.PRNGKey(0))
  new_state, metrics = jax.eval_shape(step, state, batch)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert metrics['loss'].shape == () and metrics['loss'].dtype == np.float32
  assert ('contrastive_loss' in metrics) == (config.train.contrastive_weight > 0)
  assert ('sensitivity_loss' in metrics) == config.model.ase.instance_evaluator
  assert ('input_proj' in new_state.params['encoder']) == bool(config.model.input_streams)


# Compile for speed, not for fast code: the step runs once (the numbers barely change).
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}


def test_one_training_step_runs_on_activitynet():
  """One real step: one class, resized inputs (T = 128 here), windows of 7, absolute positions."""
  config = _shrink(load('activitynet13_i3d.py'))
  step, init_state, batch = _training(config)
  mesh = parallel.create_mesh(jax.devices()[:1])
  rng = jax.random.PRNGKey(0)
  init = jax.jit(init_state).lower(rng).compile(compiler_options=FAST_COMPILE)
  state = jax.device_put(init(rng), parallel.replicated(mesh))
  train_step = jit_train_step(step, mesh).lower(state, batch).compile(compiler_options=FAST_COMPILE)
  state, metrics = train_step(state, batch)
  assert int(state.step) == 1
  assert np.isfinite(float(metrics['loss'])), metrics
  assert float(metrics['num_pos']) > 0
  assert float(metrics['contrastive_loss']) > 0 and float(metrics['sensitivity_loss']) > 0
