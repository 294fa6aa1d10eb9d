"""Table 7's rows: one or two classification Gaussians; the variants that select them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.configs import ablations, demo
from asl_jax.model.build import build_model
from asl_jax.model.sensitivity import ClassGaussians
from asl_jax.ops import sensitivity as sens
from asl_jax.train.build import build_loss_config


def test_two_classification_gaussians_start_at_the_quarters():
  module = ClassGaussians(num_classes=3, num_cls=2)
  params = module.init(jax.random.key(0))['params']
  assert sorted(params) == [
    'cls2_mu', 'cls2_sigma', 'cls_mu', 'cls_sigma', 'end_mu', 'end_sigma', 'start_mu', 'start_sigma'
  ]  # fmt: skip
  out = module.apply({'params': params})
  np.testing.assert_array_equal(out['cls'][0], -0.25)
  np.testing.assert_array_equal(out['cls_extra'][0][0], 0.25)
  # p_cls is the sum of both: at the centre (d = 0) 2 exp(-0.25^2 / 2).
  p = sens.class_sensitivity(jnp.zeros(2), jnp.array([0, 2]), out)
  np.testing.assert_allclose(p['cls'], 2 * np.exp(-(0.25**2) / 2), rtol=1e-6)


@pytest.mark.parametrize(
  'kwargs, message',
  [({'num_cls': 3}, 'num_cls must be 1 or 2'), ({'num_cls': 2, 'shared': True}, 'shared')],
)
def test_invalid_gaussian_counts_are_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    ClassGaussians(num_classes=2, **kwargs).init(jax.random.key(0))


def test_table7_rows_are_runnable():
  """Every Table 7 row builds a detector whose Gaussians match the row."""
  expected = {
    'loc_gaussians_1': (1, 1),
    '': (1, 2),
    'cls_gaussians_2,loc_gaussians_1': (2, 1),
    'cls_gaussians_2': (2, 2),
  }
  rows = ablations.table7_variants()
  assert set(expected) < set(rows) and 'shared_gaussian' in rows
  for row, (n_cls, n_loc) in expected.items():
    config = demo.get_config(','.join(v for v in ('tiny', row) if v))
    model = build_model(config)
    feats = jnp.zeros((1, config.data.max_seq_len, config.data.input_dim))
    mask = jnp.ones(feats.shape[:2], bool)
    shapes = jax.eval_shape(model.init, jax.random.key(0), feats, mask)
    gaussians = shapes['params']['class_gaussians']
    assert len([k for k in gaussians if k.startswith('cls') and k.endswith('_mu')]) == n_cls, row
    assert len([k for k in gaussians if not k.startswith('cls') and k.endswith('_mu')]) == n_loc


def test_options_beyond_the_paper_are_off_by_default_and_reach_the_loss():
  config = demo.get_config('tiny')
  cfg = build_loss_config(config)
  assert cfg.cls_positives == 'centre' and not cfg.normalize_sensitivity
  config = demo.get_config('tiny,positives_inside,normalize_sensitivity')
  cfg = build_loss_config(config)
  assert cfg.cls_positives == 'inside' and cfg.normalize_sensitivity
