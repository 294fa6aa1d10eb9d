"""Per-instance normalisation of p and the sensitivity diagnostics, by hand."""

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.ops import sensitivity as sens

# One video, 6 points: points 0-2 positives of instance 0, 3-4 of instance 1, 5 a negative.
P = jnp.array([[0.5, 1.0, 0.25, 0.8, 0.4, 0.9]])
ASSIGNED = jnp.array([[0, 0, 0, 1, 1, 0]])
POSITIVE = jnp.array([[True, True, True, True, True, False]])


def test_normalize_per_instance_by_hand():
  got = sens.normalize_per_instance(P, ASSIGNED, POSITIVE, 2)
  # Instance 0: mean (0.5 + 1 + 0.25) / 3 = 7/12; instance 1: mean 0.6; the negative unchanged.
  want = [0.5 * 12 / 7, 12 / 7, 0.25 * 12 / 7, 0.8 / 0.6, 0.4 / 0.6, 0.9]
  np.testing.assert_allclose(got, [want], rtol=1e-6)


def test_normalized_weights_ignore_the_scale_of_p():
  """The guard against p -> 0: scaling p changes nothing, so its gradient along p is 0."""
  weights = lambda a: sens.normalize_per_instance(a * P, ASSIGNED, POSITIVE, 2)
  np.testing.assert_allclose(weights(0.01)[POSITIVE], weights(1.0)[POSITIVE], rtol=1e-5)
  loss = lambda a: jnp.sum(weights(a) * jnp.arange(6.0) * POSITIVE)
  np.testing.assert_allclose(jax.grad(loss)(0.3), 0.0, atol=1e-5)


def test_diagnostics_by_hand():
  q = jnp.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.9]])
  out = sens.diagnostics({'cls': P, 'loc': 2 * P}, q, None, ASSIGNED, POSITIVE, 3)
  np.testing.assert_allclose(out['sensitivity/p_cls_pos'], (0.5 + 1 + 0.25 + 0.8 + 0.4) / 5)
  np.testing.assert_allclose(out['sensitivity/p_loc_pos'], 2 * 2.95 / 5, rtol=1e-6)
  np.testing.assert_allclose(out['sensitivity/q_cls_pos'], 1.5 / 5, rtol=1e-6)
  # Within-instance max/min: 1 / 0.25 = 4 and 0.8 / 0.4 = 2; instance 2 has no positive.
  np.testing.assert_allclose(out['sensitivity/p_cls_ratio'], 3.0, rtol=1e-6)
  np.testing.assert_allclose(out['sensitivity/p_loc_ratio'], 3.0, rtol=1e-6)
  assert 'sensitivity/q_loc_pos' not in out
  empty = sens.diagnostics({'cls': P, 'loc': None}, None, None, ASSIGNED, POSITIVE & False, 2)
  assert {k: float(v) for k, v in empty.items()} == {
    'sensitivity/p_cls_pos': 0.0,
    'sensitivity/p_cls_ratio': 0.0,
  }


def test_gaussian_scalars_per_class():
  gaussians = {
    'cls': (jnp.array([0.1, 0.2]), jnp.array([-0.5, 9.0])),
    'cls_extra': [(jnp.array([0.3, 0.4]), jnp.array([1.0, 1.0]))],
    'loc': [(jnp.array([-0.5, -0.6]), jnp.array([1.0, 0.7])), (jnp.array([0.5, 0.6]),) * 2],
  }
  out = {k: float(v) for k, v in sens.gaussian_scalars(gaussians).items()}
  assert out['sensitivity/cls_mu/1'] == np.float32(0.2)
  assert out['sensitivity/cls_sigma/0'] == 0.5  # |sigma|.
  assert out['sensitivity/cls_sigma/1'] == 5.0  # Clamped as the loss uses it.
  assert out['sensitivity/cls2_mu/0'] == np.float32(0.3)
  assert out['sensitivity/start_sigma/1'] == np.float32(0.7)
  assert out['sensitivity/end_mu/1'] == np.float32(0.6)
  assert len(out) == 4 * 2 * 2
  assert sens.gaussian_scalars(gaussians, max_classes=1) == {}
