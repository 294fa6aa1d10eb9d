"""ASL sensitivity ops vs hand numbers (eq. 3-4) and a loop-based NumPy ASCL oracle (eq. 11-14)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from asl_jax.ops import sensitivity as sens


def test_normalized_distance_by_hand():
  # Segment [2, 10]: centre 6, length 8. t = 2 -> -0.5, t = 4 -> -0.25, t = 10 -> +0.5.
  d = sens.normalized_distance(jnp.array([2.0, 4.0, 10.0]), jnp.array([[2.0, 10.0]] * 3))
  np.testing.assert_allclose(d, [-0.5, -0.25, 0.5])


def test_gaussian_by_hand_and_sigma_clamp():
  np.testing.assert_allclose(sens.gaussian(jnp.float32(-0.5), -0.5, 1.0), 1.0)
  np.testing.assert_allclose(
    sens.gaussian(jnp.float32(0.0), -0.5, 1.0), math.exp(-0.125), rtol=1e-6
  )
  # sigma 0.5: exp(-(0.25)^2 / (2 * 0.25)) = exp(-0.125).
  np.testing.assert_allclose(
    sens.gaussian(jnp.float32(0.25), 0.0, 0.5), math.exp(-0.125), rtol=1e-6
  )
  # sigma 10 is clamped to 5: exp(-0.25 / 50).
  np.testing.assert_allclose(
    sens.gaussian(jnp.float32(0.5), 0.0, 10.0), math.exp(-0.005), rtol=1e-6
  )
  np.testing.assert_allclose(
    sens.gaussian(jnp.float32(0.5), 0.0, -10.0), math.exp(-0.005), rtol=1e-6
  )


def test_class_sensitivity_indexes_the_assigned_class():
  gaussians = {
    'cls': (jnp.array([0.0, 0.3]), jnp.array([1.0, 0.5])),
    'loc': [(jnp.array([-0.5, -0.5]), jnp.ones(2)), (jnp.array([0.5, 0.5]), jnp.ones(2))],
  }
  d = jnp.array([0.3, -0.5])
  p = sens.class_sensitivity(d, jnp.array([1, 0]), gaussians)
  np.testing.assert_allclose(p['cls'], [1.0, math.exp(-0.125)], rtol=1e-6)
  expected_loc = [math.exp(-0.32) + math.exp(-0.02), 1.0 + math.exp(-0.5)]
  np.testing.assert_allclose(p['loc'], expected_loc, rtol=1e-6)


def test_sensitivity_weights_combinations():
  shape = (3,)
  p = {'cls': jnp.array([0.5, 1.0, 0.2]), 'loc': jnp.array([1.0, 1.5, 0.1])}
  q = jnp.array([0.1, 0.2, 0.3])
  h_cls, h_loc = sens.sensitivity_weights(p, q, q, shape)
  np.testing.assert_allclose(h_cls, [0.6, 1.2, 0.5], rtol=1e-6)
  np.testing.assert_allclose(h_loc, [1.1, 1.7, 0.4], rtol=1e-6)
  none = {'cls': None, 'loc': None}
  h_cls, h_loc = sens.sensitivity_weights(none, None, None, shape)
  np.testing.assert_array_equal(h_cls, 1.0)
  np.testing.assert_array_equal(h_loc, 1.0)
  # Without class-level Gaussians the plain detector's weight 1 takes p's place.
  h_cls, h_loc = sens.sensitivity_weights(none, q, None, shape)
  np.testing.assert_allclose(h_cls, [1.1, 1.2, 1.3], rtol=1e-6)
  np.testing.assert_array_equal(h_loc, 1.0)
  h_cls, h_loc = sens.sensitivity_weights({'cls': p['cls'], 'loc': None}, None, q, shape)
  np.testing.assert_allclose(h_cls, p['cls'])
  np.testing.assert_allclose(h_loc, 1 + q)
  # Instance terms carry no gradient through the weights.
  g = jax.grad(lambda q: sens.sensitivity_weights(p, q, q, shape)[0].sum())(q)
  np.testing.assert_array_equal(g, 0.0)


def _frames(mask_row, s, e):
  """Frames of an action: valid t with s <= t <= e, else the valid frame nearest the centre."""
  frames = [t for t in range(len(mask_row)) if mask_row[t] and s - 1e-3 <= t <= e + 1e-3]
  if not frames:
    last = int(mask_row.sum()) - 1
    frames = [min(max(math.floor(0.5 * (s + e) + 0.5), 0), last)]
  return frames


def _numpy_pool(feats, mask, segs, labels, valid, gaussians, delta):
  """Loop-based re-derivation of eq. 11-13 (same frame conventions as the docstring)."""
  b, t_len, c = feats.shape
  out = {k: np.zeros((b, segs.shape[1], c)) for k in ('cls', 'loc', 'bg')}
  bg_valid = np.zeros((b, segs.shape[1]), bool)

  def g(d, mu, sigma):
    s = min(max(abs(sigma), 1e-3), 5.0)
    return math.exp(-((d - mu) ** 2) / (2 * s * s))

  for i in range(b):
    for j in range(segs.shape[1]):
      if not valid[i, j]:
        continue
      s, e = segs[i, j]
      lab = labels[i, j]
      n = e - s
      frames = _frames(mask[i], s, e)
      d = {t: (t - 0.5 * (s + e)) / n for t in frames}
      pc = {t: g(d[t], gaussians['cls'][0][lab], gaussians['cls'][1][lab]) for t in frames}
      pl = [{t: g(d[t], mu[lab], sg[lab]) for t in frames} for mu, sg in gaussians['loc']]
      radius = max(delta * n, 0.5)
      a_cls = max(frames, key=lambda t: (pc[t], -t))
      tc = [t for t in frames if abs(t - a_cls) <= radius]
      peaks = [max(frames, key=lambda t, p=p: (p[t], -t)) for p in pl]
      tl = [t for t in frames if any(abs(t - a) <= radius for a in peaks)]
      out['cls'][i, j] = sum(pc[t] * feats[i, t] for t in tc) / len(tc)
      out['loc'][i, j] = sum(sum(p[t] for p in pl) * feats[i, t] for t in tl) / len(tl)
      occupied = {
        t for k in range(segs.shape[1]) if valid[i, k] for t in _frames(mask[i], *segs[i, k])
      }
      bg = [
        t
        for t in range(t_len)
        if mask[i, t] and t not in occupied and (s - delta * n <= t < s or e < t <= e + delta * n)
      ]
      if bg:
        out['bg'][i, j] = sum(feats[i, t] for t in bg) / len(bg)
        bg_valid[i, j] = True
  return out, bg_valid


def _numpy_ascl(out, bg_valid, labels, valid, tau):
  anchors = []
  for kind in ('cls', 'loc'):
    for i, j in zip(*np.nonzero(valid)):
      anchors.append((out[kind][i, j], labels[i, j], True))
  for i, j in zip(*np.nonzero(valid & bg_valid)):
    anchors.append((out['bg'][i, j], -1, False))
  unit = [a / max(np.linalg.norm(a), 1e-6) for a, _, _ in anchors]
  losses = []
  for x, (_, lab, is_action) in enumerate(anchors):
    if not is_action:
      continue
    pos = neg = 0.0
    for y, (_, lab2, action2) in enumerate(anchors):
      if x == y:
        continue
      sim = math.exp(float(unit[x] @ unit[y]) / tau)
      if action2 and lab2 == lab:
        pos += sim
      else:
        neg += sim
    if pos > 0:
      losses.append(-math.log(pos / (pos + neg)))
  return sum(losses) / max(len(losses), 1)


@pytest.fixture
def small_case():
  rng = np.random.default_rng(3)
  feats = rng.normal(size=(2, 40, 6)).astype(np.float32)
  mask = np.arange(40)[None] < np.array([[40], [30]])
  segs = np.array(
    [[[3.2, 12.7], [20.0, 31.5], [0, 0]], [[1.0, 2.4], [10.3, 25.0], [26.0, 29.0]]], np.float32
  )
  labels = np.array([[0, 1, 0], [1, 0, 2]], np.int32)
  valid = np.array([[True, True, False], [True, True, True]])
  gaussians = {
    'cls': (np.array([0.1, -0.2, 0.3], np.float32), np.array([0.4, 1.0, 0.3], np.float32)),
    'loc': [
      (np.array([-0.5, -0.4, -0.3], np.float32), np.array([0.2, 0.3, 1.0], np.float32)),
      (np.array([0.5, 0.4, 0.3], np.float32), np.array([0.2, 0.3, 1.0], np.float32)),
    ],
  }
  return feats, mask, segs, labels, valid, gaussians


def test_sensitive_features_match_loop_oracle(small_case):
  feats, mask, segs, labels, valid, gaussians = small_case
  got = jax.jit(lambda *a: sens.sensitive_features(*a, delta=0.2))(
    feats, mask, segs, labels, valid, gaussians
  )
  want, bg_valid = _numpy_pool(feats, mask, segs, labels, valid, gaussians, 0.2)
  for k in ('cls', 'loc', 'bg'):
    np.testing.assert_allclose(np.asarray(got[k])[valid], want[k][valid], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(got['bg_valid']) & valid, bg_valid)


def test_sensitive_features_without_gaussians_use_the_initial_ones(small_case):
  """ASCL alone (no class-level Gaussians) pools the centre and the boundaries, as at init."""
  feats, mask, segs, labels, valid, _ = small_case
  k = 3
  initial = {
    'cls': (np.zeros(k, np.float32), np.ones(k, np.float32)),
    'loc': [(np.full(k, m, np.float32), np.ones(k, np.float32)) for m in (-0.5, 0.5)],
  }
  got = sens.sensitive_features(feats, mask, segs, labels, valid, {'cls': None, 'loc': []})
  want, _ = _numpy_pool(feats, mask, segs, labels, valid, initial, 0.2)
  for key in ('cls', 'loc', 'bg'):
    np.testing.assert_allclose(np.asarray(got[key])[valid], want[key][valid], rtol=1e-5, atol=1e-5)
  # The classification range sits at the centre, not at the first frame: f_cls != f_loc.
  assert not np.allclose(np.asarray(got['cls'])[valid], np.asarray(got['loc'])[valid])


def test_contrastive_loss_matches_loop_oracle(small_case):
  feats, mask, segs, labels, valid, gaussians = small_case
  pooled = sens.sensitive_features(feats, mask, segs, labels, valid, gaussians, delta=0.2)
  got = sens.contrastive_loss(pooled, labels, valid, temperature=0.1)
  want = _numpy_ascl(
    {k: np.asarray(v) for k, v in pooled.items()},
    np.asarray(pooled['bg_valid']),
    labels,
    valid,
    0.1,
  )
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_contrastive_loss_degenerate_batches_are_finite(small_case):
  feats, mask, segs, labels, _, gaussians = small_case
  one = np.zeros((2, 3), bool)
  one[0, 0] = True  # A single action: its partner is the only positive; bg is the only negative.
  for valid in (one, np.zeros((2, 3), bool)):
    pooled = sens.sensitive_features(feats, mask, segs, labels, valid, gaussians)
    loss = sens.contrastive_loss(pooled, labels, valid)
    assert np.isfinite(float(loss))
    grads = jax.grad(
      lambda f, valid=valid: sens.contrastive_loss(
        sens.sensitive_features(f, mask, segs, labels, valid, gaussians), labels, valid
      )
    )(feats)
    assert np.isfinite(np.asarray(grads)).all()
  same_class = np.zeros_like(labels)
  pooled = sens.sensitive_features(feats, mask, segs, same_class, np.ones((2, 3), bool), gaussians)
  assert np.isfinite(float(sens.contrastive_loss(pooled, same_class, np.ones((2, 3), bool))))


def test_contrastive_loss_gradients(small_case):
  feats, mask, segs, labels, valid, gaussians = small_case
  fn = lambda f: sens.contrastive_loss(
    sens.sensitive_features(f, mask, segs, labels, valid, gaussians), labels, valid, temperature=0.5
  )
  check_grads(
    fn,
    (jnp.asarray(feats, jnp.float64) if jax.config.jax_enable_x64 else jnp.asarray(feats),),
    order=1,
    modes=['rev'],
    atol=5e-2,
    rtol=5e-2,
  )


def test_gaussian_gradients():
  check_grads(
    lambda mu, sigma: sens.gaussian(jnp.array([-0.4, 0.1, 0.45]), mu, sigma).sum(),
    (jnp.float32(0.1), jnp.float32(0.7)),
    order=1,
    modes=['rev'],
    atol=1e-2,
    rtol=1e-2,
  )
