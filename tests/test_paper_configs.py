"""Paper configs load, validate, build and train one step at their geometry; ablations bite.

Every paper config reads a few synthetic videos written in its dataset's real layout (annotation
schema, feature files, extractor rate: tests/paper_data.py) through the training input pipeline
and runs one compiled training step on them, shrunk to tiny widths; its ``:baseline`` variant is
traced. XLA compiles each step in 10-40 s of CPU (much less from the persistent cache).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from asl_jax import configuration, parallel
from asl_jax.data import pipeline
from asl_jax.evaluation.metrics import TIOU_PRESETS
from asl_jax.model.build import build_model
from asl_jax.ops import segments as seg_ops
from asl_jax.train import optim
from asl_jax.train.build import build_loss_config
from asl_jax.train.state import create_train_state
from asl_jax.train.step import jit_train_step, make_train_step
from tests import paper_data
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


# Pyramids deeper than this (Ego4D's 10 levels) are cut to it in the step tests: compile time
# grows with the level count, and the levels past it add nothing the others do not test.
MAX_TEST_BRANCHES = 5


def _shrink(config):
  """Tiny widths, the config's channels, its pyramid up to 6 levels (the last range then reaches
  the old upper bound), a window of 2-4 x the pyramid stride."""
  model, data = config.model, config.data
  model.embed_dim = model.fpn_dim = model.head_dim = 16
  model.num_heads = 2
  branches = min(model.arch[2], MAX_TEST_BRANCHES)
  if branches < model.arch[2]:
    ranges = [tuple(r) for r in model.regression_ranges[: branches + 1]]
    ranges[-1] = (ranges[-1][0], model.regression_ranges[-1][1])
    model.regression_ranges = tuple(ranges)
  model.arch = (1, 1, branches)
  if model.input_streams:
    model.stream_embed_dims = (8,) * len(model.input_streams)
  stride = configuration.pyramid_stride(config)
  data.max_seq_len = stride * (2 if stride >= 512 else 4)
  config.train.batch_size = 2
  return config


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
  """``name -> shrunk config`` reading a few synthetic videos in its dataset's real layout."""
  written = {}

  def make(name):
    if name not in written:
      config = _shrink(load(name))
      root = tmp_path_factory.mktemp('data')
      paper_data.write_dataset(config, root, paper_data.layout_of(name))
      written[name] = config
    return ml_collections.ConfigDict(written[name].to_dict())

  return make


def _load(config, subset):
  videos, _ = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data[subset])
  )
  return videos


TRAIN_STEP_CASES = sorted(PAPER) + ['multithumos_i3d.py:rgb_h5,no_class_level']


@pytest.mark.parametrize('name', TRAIN_STEP_CASES)
def test_features_span_each_video_at_the_config_geometry(synthetic, name):
  """Both subsets load; the last feature window ends where the video does (stride + window)."""
  config = synthetic(name)
  data = config.data
  for subset in ('train_subset', 'eval_subset'):
    videos = _load(config, subset)
    assert len(videos) == (3 if subset == 'train_subset' else 2)
    for video in videos:
      t, g = len(video.feats), video.geometry
      assert video.feats.shape[1] == data.input_dim
      if data.force_upsampling:
        assert t == data.max_seq_len
      end = ((t - 1) * g.feat_stride + g.num_frames) / g.fps
      np.testing.assert_allclose(end, video.record.duration, rtol=0.05, err_msg=video.video_id)
      assert (video.segments >= -1).all() and (video.segments <= t + 1).all(), video.video_id
      assert len(video.labels) and (0 <= video.labels).all()
      assert (video.labels < data.num_classes).all()


def _training(config):
  """(un-jitted step, state initialiser) at the config's (shrunk) geometry.

  The optimizer is the config's AdamW (decay groups, clipping) at a constant learning rate: the
  real schedule starts its warmup at 0, so a first step would leave the parameters as they are.
  """
  model = build_model(config)
  t = config.train
  schedule = optax.constant_schedule(t.learning_rate)
  tx = optim.build_optimizer(
    schedule=schedule, weight_decay=t.weight_decay, clip_grad_norm=t.clip_grad_norm
  )
  points = seg_ops.make_points(config.data.max_seq_len, config.model.regression_ranges)
  step = make_train_step(
    model, points, tx, schedule, build_loss_config(config), ema_decay=t.ema_decay
  )

  def init_state(rng):
    feats = jnp.zeros((1, config.data.max_seq_len, config.data.input_dim), jnp.float32)
    params = model.init({'params': rng}, feats, jnp.ones(feats.shape[:2], bool))['params']
    return create_train_state(params, tx, init_loss_norm=t.init_loss_norm, rng=rng)

  return step, init_state


def _check_metrics(config, metrics):
  assert ('contrastive_loss' in metrics) == (config.train.contrastive_weight > 0)
  assert ('sensitivity_loss' in metrics) == config.model.ase.instance_evaluator


# Compile for speed, not for fast code: the step runs once. On CPU the older fusion emitters
# compile this step in ~3/4 of the time.
FAST_COMPILE = {
  'xla_backend_optimization_level': 0,
  'xla_llvm_disable_expensive_passes': True,
  'xla_cpu_use_fusion_emitters': False,
}


@pytest.mark.parametrize('name', TRAIN_STEP_CASES)
def test_one_training_step_on_synthetic_data(synthetic, name):
  """One real step (forward, assignment, losses, AdamW, EMA) on a batch loaded the config's way.

  The videos are written in the dataset's layout (tests/paper_data.py) and read through
  ``load_split_from_config`` and ``TrainBatches``, as training reads them.
  """
  config = synthetic(name)
  configuration.validate_config(config)
  data = config.data
  batches = pipeline.TrainBatches(
    _load(config, 'train_subset'),
    batch_size=config.train.batch_size,
    max_seq_len=data.max_seq_len,
    max_segments=data.max_segments,
    trunc_thresh=data.trunc_thresh,
    crop_ratio=data.crop_ratio,
    seed=config.seed,
  )
  batch = next(batches.epoch(0))
  assert batch['feats'].shape == (2, data.max_seq_len, data.input_dim)
  assert batch['segment_valid'].any(1).all()
  step, init_state = _training(config)
  mesh = parallel.create_mesh(jax.devices()[:1])
  rng = jax.random.PRNGKey(config.seed)
  init = jax.jit(init_state).lower(rng).compile(compiler_options=FAST_COMPILE)
  state = jax.device_put(init(rng), parallel.replicated(mesh))
  before = jax.device_get(state.params)  # The step donates the state.
  train_step = jit_train_step(step, mesh).lower(state, batch).compile(compiler_options=FAST_COMPILE)
  state, metrics = train_step(state, batch)
  assert int(state.step) == 1
  assert np.isfinite(float(metrics['loss'])), metrics
  assert float(metrics['num_pos']) > 0
  _check_metrics(config, metrics)
  assert ('input_proj' in state.params['encoder']) == bool(config.model.input_streams)
  changed = jax.tree.leaves(
    jax.tree.map(lambda a, b: not np.array_equal(a, b), before, jax.device_get(state.params))
  )
  assert sum(changed) >= 0.9 * len(changed), f'{sum(changed)} of {len(changed)} changed'


def _shaped_batch(config):
  b, t, m = config.train.batch_size, config.data.max_seq_len, config.data.max_segments
  return {
    'feats': jax.ShapeDtypeStruct((b, t, config.data.input_dim), np.float32),
    'mask': jax.ShapeDtypeStruct((b, t), np.bool_),
    'segments': jax.ShapeDtypeStruct((b, m, 2), np.float32),
    'labels': jax.ShapeDtypeStruct((b, m), np.int32),
    'segment_valid': jax.ShapeDtypeStruct((b, m), np.bool_),
  }


@pytest.mark.parametrize('name', sorted(PAPER))
def test_baseline_step_traces_at_the_config_geometry(name):
  """``:baseline`` (every ASL part off): init and one step traced without compiling."""
  config = _shrink(load(f'{name}:baseline'))
  configuration.validate_config(config)
  batch = _shaped_batch(config)
  step, init_state = _training(config)
  state = jax.eval_shape(init_state, jax.random.PRNGKey(0))
  new_state, metrics = jax.eval_shape(step, state, batch)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert metrics['loss'].shape == () and metrics['loss'].dtype == np.float32
  _check_metrics(config, metrics)
  assert 'class_gaussians' not in state.params
