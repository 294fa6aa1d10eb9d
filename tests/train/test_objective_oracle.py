"""The composed objective (ASL eq. 3-15) against a NumPy oracle written from the paper.

A small batch with known ground truth: overlapping actions of three classes, an empty video and a
padded one. Every loss term and the total are compared, and the gradients of the total with
respect to the Gaussians' mu and sigma and the instance evaluators' parameters (``jax.grad``)
against central finite differences of the oracle. ``python -m tests.train.test_objective_oracle``
prints the largest relative differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.model.sensitivity import InstanceEvaluator
from asl_jax.train import objective
from tests.train import asl_oracle

K, C, T = 3, 4, 32
RANGES = [(0.0, 4.0), (4.0, 8.0), (8.0, 1e4)]
LOSS_NORM = 5.0
LAMBDA = 0.3
# The paper's settings, as the oracle's equations take them (every LossConfig field is required).
PAPER = dict(
  center_sample_radius=1.5,
  reg_loss_weight=1.0,
  focal_alpha=0.25,
  focal_gamma=2.0,
  label_smoothing=0.0,
  sensitivity_loss_weight=1.0,
  contrastive_delta=0.2,
  contrastive_temperature=0.07,
  cls_positives='centre',
  normalize_sensitivity=False,
)


def _points():
  rows = []
  for level, (lo, hi) in enumerate(RANGES):
    stride = 2**level
    rows += [(t * stride, lo, hi, stride) for t in range(T // stride)]
  return np.array(rows, np.float32)


def make_case():
  """Inputs and parameters (float32), and the same as float64 numpy for the oracle."""
  rng = np.random.default_rng(7)
  segments = np.array(
    [
      [[2.3, 9.6], [5.1, 7.4], [2.0, 30.5]],  # Overlapping actions of three classes.
      [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],  # An empty video.
      [[1.5, 4.2], [7.2, 11.0], [0.0, 0.0]],  # Same class twice; 24 valid frames of 32.
    ],
    np.float32,
  )
  labels = np.array([[0, 1, 2], [0, 0, 0], [1, 1, 0]], np.int32)
  segment_valid = np.array([[True, True, True], [False] * 3, [True, True, False]])
  n_valid = np.array([32, 32, 24])
  mask = np.arange(T)[None] < n_valid[:, None]
  level_masks = [mask[:, :: 2**lv] for lv in range(len(RANGES))]
  levels = [
    rng.normal(size=(3, T // 2**lv, C)).astype(np.float32) * m[..., None]
    for lv, m in enumerate(level_masks)
  ]
  point_mask = np.concatenate(level_masks, 1)
  num_points = point_mask.shape[1]
  data = {
    'points': _points(),
    'level_masks': level_masks,
    'levels': levels,
    'point_mask': point_mask,
    'mask': mask,
    'level0': rng.normal(size=(3, T, C)).astype(np.float32) * mask[..., None],
    'cls_logits': rng.normal(size=(3, num_points, K)).astype(np.float32) - 1.0,
    'offsets': np.exp(rng.normal(size=(3, num_points, 2)) * 0.5).astype(np.float32),
    'segments': segments,
    'labels': labels,
    'segment_valid': segment_valid,
  }
  f32 = lambda *v: np.array(v, np.float32)
  gauss = {
    'cls': (f32(0.1, -0.2, 0.3), f32(0.4, 1.0, 0.3)),
    'loc': [(f32(-0.6, -0.4, -0.3), f32(0.2, 0.3, 1.0)), (f32(0.5, 0.7, 0.4), f32(0.6, 0.3, -0.7))],
  }
  evaluators = {}
  for name in ('q_cls', 'q_loc'):
    evaluators[name] = {
      'conv': rng.normal(size=(3, C, C)).astype(np.float32) * 0.5,
      'scale': 1 + 0.3 * rng.normal(size=C).astype(np.float32),
      'bias': 0.2 * rng.normal(size=C).astype(np.float32),
      'w': rng.normal(size=(C, 1)).astype(np.float32),
      'b': f32(0.1),
    }
  return data, {'gauss': gauss, **evaluators}


def _flax_params(p):
  return {
    'conv': {'conv': {'kernel': p['conv']}},
    'norm': {'scale': p['scale'], 'bias': p['bias']},
    'fc': {'kernel': p['w'], 'bias': p['b']},
  }


# The options beyond the paper and Table 7's two classification Gaussians: (LossConfig fields,
# oracle keyword arguments, second classification Gaussian or None).
OPTIONS = {
  'paper': ({}, {}, None),
  'positives_inside': ({'cls_positives': 'inside'}, {'cls_inside': True}, None),
  'normalize_sensitivity': ({'normalize_sensitivity': True}, {'normalize': True}, None),
  'cls_gaussians_2': ({}, {}, ((0.3, -0.1, 0.25), (0.5, 0.8, 0.35))),
}


def with_option(params, option):
  extra = OPTIONS[option][2]
  if extra is None:
    return params
  gauss = dict(params['gauss'], cls_extra=[tuple(np.array(v, np.float32) for v in extra)])
  return dict(params, gauss=gauss)


def jax_objective(params, data, option='paper'):
  """Total and terms of ``objective.compute_losses`` with q from ``InstanceEvaluator``."""
  q = {
    name: InstanceEvaluator(C).apply(
      {'params': _flax_params(params[name])}, data['levels'], data['level_masks']
    )
    for name in ('q_cls', 'q_loc')
  }
  outputs = {
    'cls_logits': data['cls_logits'],
    'offsets': data['offsets'],
    'mask': data['point_mask'],
    'encoder_level0': data['level0'],
    'gaussians': params['gauss'],
    **q,
  }
  batch = {k: data[k] for k in ('segments', 'labels', 'segment_valid', 'mask')}
  settings = {**PAPER, **OPTIONS[option][0]}
  cfg = objective.LossConfig(num_classes=K, contrastive_weight=LAMBDA, **settings)
  return objective.compute_losses(outputs, batch, data['points'], jnp.float32(LOSS_NORM), cfg)


def oracle(params, frozen, data, option='paper'):
  as64 = lambda tree: jax.tree.map(
    lambda a: np.asarray(a, np.float64) if np.asarray(a).dtype == np.float32 else np.asarray(a),
    tree,
  )
  return asl_oracle.objective(
    as64(params),
    as64(frozen),
    as64(data),
    num_classes=K,
    loss_norm=LOSS_NORM,
    lam=LAMBDA,
    **OPTIONS[option][1],
  )


def finite_difference_grads(params, data, option='paper', eps=1e-6):
  """Central differences of the oracle's total, stop-gradient terms frozen at ``params``."""
  base = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  leaves, treedef = jax.tree.flatten(base)
  grads = []
  for n, leaf in enumerate(leaves):
    g = np.zeros_like(leaf)
    for idx in np.ndindex(leaf.shape):
      total = []
      for sign in (1, -1):
        moved = [x.copy() for x in leaves]
        moved[n][idx] += sign * eps
        moved_params = jax.tree.unflatten(treedef, moved)
        total.append(oracle(moved_params, base, data, option)['loss'])
      g[idx] = (total[0] - total[1]) / (2 * eps)
    grads.append(g)
  return jax.tree.unflatten(treedef, grads)


def relative_differences(option='paper', *, gaussians_only=False):
  """{name: max |ours - oracle| / max |oracle|} for every term and every gradient block.

  ``gaussians_only``: gradients with respect to the Gaussians alone (the options change only
  how p enters the losses; the evaluators' gradients are the paper row's).
  """
  data, params = make_case()
  params = with_option(params, option)
  objective_fn = lambda p, d: jax_objective(p, d, option)
  _, ours = jax.jit(objective_fn)(params, data)
  want = oracle(params, params, data, option)
  out = {k: abs(float(ours[k]) - want[k]) / max(abs(want[k]), 1e-12) for k in want}
  grads = jax.jit(jax.grad(lambda p, d: objective_fn(p, d)[0]))(params, data)
  if gaussians_only:
    grads = {'gauss': grads['gauss']}
    full = params

    def fd_of(gauss, data):
      return finite_difference_grads_partial(full, gauss, data, option)

    fd = {'gauss': fd_of(params['gauss'], data)}
  else:
    fd = finite_difference_grads(params, data, option)
  flat_ours = jax.tree_util.tree_flatten_with_path(grads)[0]
  flat_fd = jax.tree.leaves(fd)
  for (path, g), f in zip(flat_ours, flat_fd):
    name = 'grad ' + jax.tree_util.keystr(path)
    out[name] = float(np.max(np.abs(np.asarray(g) - f)) / max(np.max(np.abs(f)), 1e-12))
  return out, want, fd


def finite_difference_grads_partial(params, gauss, data, option, eps=1e-6):
  """Central differences with respect to the Gaussians only (the rest of ``params`` fixed)."""
  base = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  leaves, treedef = jax.tree.flatten(base['gauss'])
  grads = []
  for n, leaf in enumerate(leaves):
    g = np.zeros_like(leaf)
    for idx in np.ndindex(leaf.shape):
      total = []
      for sign in (1, -1):
        moved = [x.copy() for x in leaves]
        moved[n][idx] += sign * eps
        moved_params = dict(base, gauss=jax.tree.unflatten(treedef, moved))
        total.append(oracle(moved_params, base, data, option)['loss'])
      g[idx] = (total[0] - total[1]) / (2 * eps)
    grads.append(g)
  return jax.tree.unflatten(treedef, grads)


@pytest.fixture(scope='module')
def comparison():
  return relative_differences()


def test_known_ground_truth_gives_positives_and_every_term(comparison):
  _, want, _ = comparison
  assert want['num_pos'] > 0
  for k in ('cls_loss', 'reg_loss', 'sensitivity_loss', 'contrastive_loss'):
    assert want[k] > 0, k


def test_every_term_and_the_total_match_the_oracle(comparison):
  rel, _, _ = comparison
  for k in ('cls_loss', 'reg_loss', 'sensitivity_loss', 'contrastive_loss', 'loss', 'loss_norm'):
    assert rel[k] < 2e-5, (k, rel[k])
  assert rel['num_pos'] == 0


def test_gradients_match_finite_differences_of_the_oracle(comparison):
  rel, _, fd = comparison
  # Every block has a gradient to check (mu, sigma of each Gaussian; both evaluators).
  for leaf in jax.tree.leaves(fd):
    assert np.max(np.abs(leaf)) > 1e-4
  for k, v in rel.items():
    if k.startswith('grad'):
      assert v < 1e-3, (k, v)


@pytest.mark.parametrize('option', [k for k in OPTIONS if k != 'paper'])
def test_options_beyond_the_paper_match_the_oracle(option):
  """Every term and d total / d (mu, sigma) with each option on."""
  rel, want, _ = relative_differences(option, gaussians_only=True)
  assert want['num_pos'] > 0
  for k in ('cls_loss', 'reg_loss', 'sensitivity_loss', 'contrastive_loss', 'loss', 'loss_norm'):
    assert rel[k] < 2e-5, (k, rel[k])
  for k, v in rel.items():
    if k.startswith('grad'):
      assert v < 1e-3, (k, v)


def test_options_change_what_they_say():
  data, params = make_case()
  paper = oracle(params, params, data)
  inside = oracle(params, params, data, 'positives_inside')
  assert inside['num_pos'] == paper['num_pos']  # Regression positives are ActionFormer's.
  assert inside['cls_loss'] != paper['cls_loss'] and inside['reg_loss'] == paper['reg_loss']
  normalized = oracle(params, params, data, 'normalize_sensitivity')
  assert normalized['cls_loss'] != paper['cls_loss']


if __name__ == '__main__':
  jax.config.update('jax_default_matmul_precision', 'highest')
  for option in OPTIONS:
    rel = relative_differences(option, gaussians_only=option != 'paper')[0]
    for name, value in sorted(rel.items(), key=lambda kv: -kv[1]):
      print(f'{option:22s} {value:.2e}  {name}')
