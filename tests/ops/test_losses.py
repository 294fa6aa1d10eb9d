"""Focal and DIoU losses and the loss normaliser vs the reference fixture and hand numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.ops import losses
from asl_jax.tools import parity
from asl_jax.train import objective
from tests import fixture_utils


@pytest.fixture(scope='module')
def fx(fixture_path):
  return fixture_utils.load_fixture(fixture_path)


def test_normalizer_sequence():
  n = losses.update_loss_normalizer(jnp.float32(100.0), jnp.float32(26.0))
  np.testing.assert_allclose(n, 92.6, rtol=1e-7)
  np.testing.assert_allclose(losses.update_loss_normalizer(n, jnp.float32(26.0)), 85.94, rtol=1e-6)
  np.testing.assert_allclose(
    losses.update_loss_normalizer(jnp.float32(10.0), jnp.float32(0.0)), 9.1, rtol=1e-6
  )


def test_focal_loss_by_hand():
  # logit 0 -> p = 0.5. Target 1: ce = log 2, p_t = 0.5, FL = 0.25 * log2 * 0.25.
  # Target 0: FL = 0.75 * log2 * 0.25. Weighted by 2 and 1.
  logits = jnp.zeros((2, 1))
  targets = jnp.array([[1.0], [0.0]])
  got = losses.focal_loss_sum(logits, targets, jnp.array([2.0, 1.0]))
  np.testing.assert_allclose(got, 2 * 0.25 * np.log(2) * 0.25 + 0.75 * np.log(2) * 0.25, rtol=1e-6)


def test_losses_match_reference_from_stored_outputs(fx):
  segs, labels, valid = fixture_utils.padded_ground_truth(fx)
  outputs = {
    'cls_logits': jnp.asarray(fixture_utils.concat_levels(fx, 'out/cls_logits_')),
    'offsets': jnp.asarray(fixture_utils.concat_levels(fx, 'out/reg_offsets_')),
    'mask': jnp.asarray(fixture_utils.concat_levels(fx, 'out/fpn_masks_')),
  }
  batch = {'segments': segs, 'labels': labels, 'segment_valid': valid}
  cfg = parity.loss_config(fx['config']['model_kwargs'])  # ActionFormer's objective.
  total, terms = jax.jit(
    lambda o, b: objective.compute_losses(o, b, fixture_utils.points(fx), jnp.float32(100.0), cfg)
  )(outputs, batch)
  np.testing.assert_allclose(terms['loss_norm'], fx['loss/loss_normalizer'], rtol=1e-7)
  assert float(terms['num_pos']) == int(fx['loss/num_pos'])
  np.testing.assert_allclose(terms['cls_loss'], fx['loss/cls_loss'], rtol=1e-6)
  np.testing.assert_allclose(terms['reg_loss'], fx['loss/reg_loss'], rtol=1e-6)
  np.testing.assert_allclose(total, fx['loss/final_loss'], rtol=1e-6)


def test_diou_loss_ignores_non_positive_rows_and_has_finite_grads():
  pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
  target = jnp.array([[1.0, 1.0], [-3.0, 0.0]])  # Second row: unassigned, negative target.
  w = jnp.array([1.0, 0.0])
  assert float(losses.diou_loss_sum(pred, target, w)) == 0.0
  g = jax.grad(lambda p: losses.diou_loss_sum(p, target, w))(pred)
  assert np.isfinite(np.asarray(g)).all()
