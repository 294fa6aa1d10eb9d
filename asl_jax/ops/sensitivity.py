"""Action sensitivity (ASL, Shao et al. ICCV 2023, sec. 3.2-3.3): Gaussians, loss weights, ASCL.

Pure functions on arrays; the learnable Gaussian parameters live in ``asl_jax.model.sensitivity``.
Conventions (paper, not the released code): ``d(t) = (t - centre) / N_f`` with ``t`` and the
segment in grid units and ``N_f`` the segment length, so ``d`` runs from -0.5 at the start to
+0.5 at the end of an action; sub-task Gaussians are ``exp(-(d - mu)^2 / (2 sigma^2))``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

SIGMA_MAX = 5.0  # Paper: "clamp sigma with threshold 5.0".
SIGMA_MIN = 1e-3  # Keeps the Gaussian finite; not in the paper.


def effective_sigma(sigma: jax.Array) -> jax.Array:
  """|sigma| clamped to [SIGMA_MIN, SIGMA_MAX] (only sigma^2 enters the Gaussian)."""
  return jnp.clip(jnp.abs(sigma), SIGMA_MIN, SIGMA_MAX)


def normalized_distance(t: jax.Array, segments: jax.Array) -> jax.Array:
  """``d = (t - centre) / length`` for points ``t`` [..., P], segments [..., P, 2] (paper eq. 3)."""
  centre = 0.5 * (segments[..., 0] + segments[..., 1])
  length = jnp.maximum(segments[..., 1] - segments[..., 0], 1e-6)
  return (t - centre) / length


def gaussian(d: jax.Array, mu: jax.Array, sigma: jax.Array) -> jax.Array:
  """``exp(-(d - mu)^2 / (2 sigma^2))`` with the clamped sigma (paper eq. 4)."""
  s = effective_sigma(sigma)
  return jnp.exp(-jnp.square(d - mu) / (2.0 * jnp.square(s)))


Gaussians = dict  # {'cls': (mu [K], sigma [K]) or None, 'loc': list of 0-2 (mu, sigma)}; an
# optional 'cls_extra': list of further classification Gaussians (Table 7's "#cls = 2").
# The class Gaussians' initial (mu, sigma), paper Sec. 3.2: classification at the centre,
# localisation at the start and the end.
INITIAL_GAUSSIANS = {'cls': (0.0, 1.0), 'loc': [(-0.5, 1.0), (0.5, 1.0)]}


def class_sensitivity(d: jax.Array, labels: jax.Array, gaussians: Gaussians) -> dict:
  """Class-level sensitivities of each point's assigned ground truth (paper eq. 3-4).

  Args:
    d: ``[...]`` normalised distance to the assigned segment's centre.
    labels: ``[...]`` class of the assigned segment.
    gaussians: the class Gaussians; ``'loc'`` holds (start, end) Gaussians, one shared Gaussian,
      or none, as configured (paper Table 7).

  Returns:
    dict ``cls`` (p^cls) and ``loc`` (p^sot + p^eot, or the single loc Gaussian), each ``[...]``
    or None when that sub-task has no Gaussian.
  """
  p_cls = None
  if gaussians['cls'] is not None:
    for mu, sigma in [gaussians['cls'], *gaussians.get('cls_extra', [])]:
      g = gaussian(d, mu[labels], sigma[labels])
      p_cls = g if p_cls is None else p_cls + g
  p_loc = None
  for mu, sigma in gaussians['loc']:
    g = gaussian(d, mu[labels], sigma[labels])
    p_loc = g if p_loc is None else p_loc + g
  return {'cls': p_cls, 'loc': p_loc}


def sensitivity_weights(
  p: dict, q_cls: jax.Array | None, q_loc: jax.Array | None, shape: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
  """``h_cls = p_cls + sg(q_cls)`` and ``h_loc = p_sot + p_eot + sg(q_loc)`` (paper eq. 8-10).

  The instance-level terms are stop-gradient: the losses they weight must not pull q towards 0;
  q learns only from its quality targets (L_s). A sub-task without class-level Gaussians keeps
  the plain detector's weight 1 in place of p, so ``h = 1 + sg(q)`` (1 with no q either). The
  paper does not say what replaces p in its rows without class-level sensitivity; a literal
  ``h = sg(q)`` weights every positive by its own GT-class score, which starts at the prior
  (0.01), and training collapses (docs/synthetic_study.md measures it).
  """

  def combine(p_term, q_term):
    base = jnp.ones(shape) if p_term is None else p_term
    return base if q_term is None else base + jax.lax.stop_gradient(q_term)

  return combine(p['cls'], q_cls), combine(p['loc'], q_loc)


def quality_targets(
  cls_logits: jax.Array, assigned_labels: jax.Array, iou: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Instance-level targets (paper eq. 6-7): sigmoid score of the GT class and the predicted tIoU.

  Args:
    cls_logits: ``[..., P, K]``; assigned_labels ``[..., P]``; iou ``[..., P]`` (predicted vs GT).

  Returns:
    ``(Q_cls, Q_loc)`` ``[..., P]``, without gradient.
  """
  logit = jnp.take_along_axis(cls_logits, assigned_labels[..., None], axis=-1)[..., 0]
  return jax.lax.stop_gradient(jax.nn.sigmoid(logit)), jax.lax.stop_gradient(iou)


FRAME_TOLERANCE = 1e-3  # Grid units: a boundary this close to a frame counts as on it.


def action_frames(feat_mask: jax.Array, segments: jax.Array, segment_valid: jax.Array) -> jax.Array:
  """``[B, M, T]`` bool: the frames of each ground truth (the rule of :func:`sensitive_features`).

  Frames ``t`` with ``s <= t <= e`` among the video's valid frames; an action without one gets
  the valid frame nearest its centre, so every valid action has at least one frame.
  """
  t = jnp.arange(feat_mask.shape[1], dtype=jnp.float32)[None, None, :]
  s, e = segments[..., 0:1], segments[..., 1:2]
  frame_ok = feat_mask[:, None, :] & segment_valid[..., None]
  inside = (t >= s - FRAME_TOLERANCE) & (t <= e + FRAME_TOLERANCE) & frame_ok
  last = jnp.maximum(feat_mask.sum(-1).astype(jnp.float32) - 1.0, 0.0)[:, None, None]
  nearest = jnp.clip(jnp.floor(0.5 * (s + e) + 0.5), 0.0, last)
  return jnp.where(inside.any(-1, keepdims=True), inside, (t == nearest) & frame_ok)


def sensitive_features(
  feats: jax.Array,
  feat_mask: jax.Array,
  segments: jax.Array,
  labels: jax.Array,
  segment_valid: jax.Array,
  gaussians: dict[str, jax.Array],
  *,
  delta: float = 0.2,
) -> dict[str, jax.Array]:
  """Per ground truth: f_cls, f_loc (sensitivity-pooled) and f_bg (boundary background), eq. 11-13.

  ``a_x = argmax_t p_x(t)`` over the action's frames. Without class-level Gaussians (Table 5's
  ASCL-only row) the initial ones stand in (:data:`INITIAL_GAUSSIANS`: centre for cls, start and
  end for loc): a uniform p would put every peak on the action's first frame;
  ``T_cls = [a_cls +- delta N_f]``, ``T_loc = [a_sot +- delta N_f] U [a_eot +- delta N_f]``, both
  within the action; features are pooled with the (stop-gradient) Gaussian weights and divided by
  the frame count.
  ``f_bg`` averages the frames in ``[s - delta N_f, s) U (e, e + delta N_f]`` inside the video
  that belong to no ground-truth action of the video.
  A frame ``t`` belongs to an action when ``s <= t <= e`` (``ceil(s) <= t <= floor(e)``, with
  :data:`FRAME_TOLERANCE` for boundaries that sit on a frame up to float error) and is a valid
  frame of the video; an action with no such frame (shorter than one grid step, or beyond the
  valid frames) gets the one valid frame nearest its centre (``floor(centre + 0.5)`` clipped to
  the video). So T_cls and T_loc never leave the action and never share a frame with f_bg.

  Args:
    feats: ``[B, T, C]`` level-0 features; feat_mask ``[B, T]``.
    segments: ``[B, M, 2]`` grid units; labels ``[B, M]``; segment_valid ``[B, M]``.

  Returns:
    dict ``cls``, ``loc``, ``bg`` ``[B, M, C]`` and ``bg_valid`` ``[B, M]``.
  """
  t = jnp.arange(feats.shape[1], dtype=jnp.float32)[None, None, :]  # [1, 1, T]
  s, e = segments[..., 0:1], segments[..., 1:2]  # [B, M, 1]
  length = jnp.maximum(e - s, 1e-6)
  d = (t - 0.5 * (s + e)) / length
  gaussians = jax.lax.stop_gradient(gaussians)
  lab = labels[..., None]
  if gaussians['cls'] is not None:
    cls = [gaussians['cls'], *gaussians.get('cls_extra', [])]
    p_cls = sum(gaussian(d, mu[lab], sigma[lab]) for mu, sigma in cls)
  else:
    p_cls = gaussian(d, *INITIAL_GAUSSIANS['cls'])
  loc = [(mu[lab], sigma[lab]) for mu, sigma in gaussians['loc']] or INITIAL_GAUSSIANS['loc']
  p_loc = [gaussian(d, mu, sigma) for mu, sigma in loc]
  frame_ok = feat_mask[:, None, :] & segment_valid[..., None]
  inside = action_frames(feat_mask, segments, segment_valid)
  radius = delta * length

  def peak(weights):
    return jnp.argmax(jnp.where(inside, weights, -1.0), axis=-1)[..., None].astype(jnp.float32)

  near = lambda a: jnp.abs(t - a) <= jnp.maximum(radius, 0.5)
  in_cls = near(peak(p_cls)) & inside
  in_loc = inside & functools.reduce(jnp.logical_or, [near(peak(p)) for p in p_loc])
  w_cls = jnp.where(in_cls, p_cls, 0.0) / jnp.maximum(in_cls.sum(-1, keepdims=True), 1)
  w_loc = jnp.where(in_loc, sum(p_loc), 0.0) / jnp.maximum(in_loc.sum(-1, keepdims=True), 1)
  occupied = inside.any(1)[:, None, :]  # [B, 1, T]: frames of any ground-truth action.
  bg = ((t >= s - radius) & (t < s) | (t > e) & (t <= e + radius)) & frame_ok & ~occupied
  w_bg = bg / jnp.maximum(bg.sum(-1, keepdims=True), 1)
  pool = lambda w: jnp.einsum('bmt,btc->bmc', w.astype(feats.dtype), feats)
  return {'cls': pool(w_cls), 'loc': pool(w_loc), 'bg': pool(w_bg), 'bg_valid': bg.any(-1)}


def contrastive_loss(
  pooled: dict[str, jax.Array],
  labels: jax.Array,
  segment_valid: jax.Array,
  *,
  temperature: float = 0.07,
) -> jax.Array:
  """Action Sensitive Contrastive Loss (paper eq. 14), InfoNCE over the whole batch.

  Anchors: every f_cls and f_loc. Positives of an anchor: the other f_cls / f_loc of its class
  (its own partner included, so there is always one). Negatives: f_cls / f_loc of other classes
  and every f_bg. Similarity ``exp(cos / temperature)``. A batch without negatives gives 0 and a
  batch without valid actions gives 0, never NaN.
  """
  b, m, c = pooled['cls'].shape
  feats = jnp.concatenate([pooled['cls'], pooled['loc'], pooled['bg']], 1).reshape(3 * b * m, c)
  # rsqrt of a floored square norm: padded rows are all zero and a plain norm has no gradient there.
  feats = feats * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(feats), -1, keepdims=True), 1e-12))
  kind = jnp.repeat(jnp.arange(3), m)[None].repeat(b, 0).reshape(-1)  # 0 cls, 1 loc, 2 bg.
  cls_ids = jnp.tile(labels, (1, 3)).reshape(-1)
  valid = jnp.concatenate([segment_valid, segment_valid, pooled['bg_valid'] & segment_valid], 1)
  valid = valid.reshape(-1)
  logits = (feats @ feats.T) / temperature
  n = feats.shape[0]
  not_self = ~jnp.eye(n, dtype=bool)
  action = kind < 2
  anchor = action & valid
  positive = action[None] & valid[None] & (cls_ids[:, None] == cls_ids[None]) & not_self
  negative = valid[None] & ((action[None] & (cls_ids[:, None] != cls_ids[None])) | ~action[None])
  big_neg = -1e9
  log_pos = jax.nn.logsumexp(jnp.where(positive, logits, big_neg), axis=-1)
  log_all = jax.nn.logsumexp(jnp.where(positive | negative, logits, big_neg), axis=-1)
  has_pos = positive.any(-1) & anchor
  per_anchor = jnp.where(has_pos, log_all - log_pos, 0.0)
  return per_anchor.sum() / jnp.maximum(has_pos.sum(), 1)


def _instance_onehot(assigned: jax.Array, positive: jax.Array, num_segments: int) -> jax.Array:
  """``[B, P, M]``: point p is a positive assigned to ground truth m."""
  return (assigned[..., None] == jnp.arange(num_segments)) & positive[..., None]


def normalize_per_instance(
  p: jax.Array, assigned: jax.Array, positive: jax.Array, num_segments: int
) -> jax.Array:
  """``p`` divided by its mean over the positives of the same ground truth (beyond the paper).

  Each instance's class-level weights then average 1: scaling p down no longer lowers the loss,
  so the Gaussians can only move weight between an instance's points, not shrink it (the guard
  against the trivial solution p -> 0). The mean carries gradient. Non-positive points unchanged.
  """
  onehot = _instance_onehot(assigned, positive, num_segments).astype(p.dtype)
  mean = jnp.einsum('bpm,bp->bm', onehot, p) / jnp.maximum(onehot.sum(1), 1.0)
  mean_at = jnp.take_along_axis(mean, assigned, axis=1)
  return jnp.where(positive, p / jnp.maximum(mean_at, 1e-6), p)


def diagnostics(
  p: dict,
  q_cls: jax.Array | None,
  q_loc: jax.Array | None,
  assigned: jax.Array,
  positive: jax.Array,
  num_segments: int,
) -> dict[str, jax.Array]:
  """Scalars that show whether sensitivity acts: means at positives, within-instance spread.

  ``p_{cls,loc}_pos`` and ``q_{cls,loc}_pos``: mean over positive points; ``p_{cls,loc}_ratio``:
  max / min of p over each instance's positives, averaged over instances with positives (1 means
  p weights every point of an instance alike). Without gradient; 0 where a term is absent.
  """
  pos = positive.astype(jnp.float32)
  count = jnp.maximum(pos.sum(), 1.0)
  onehot = _instance_onehot(assigned, positive, num_segments)
  has = onehot.any(1)
  out = {}
  for name, value in (('p_cls', p['cls']), ('p_loc', p['loc']), ('q_cls', q_cls), ('q_loc', q_loc)):
    if value is None:
      continue
    value = jax.lax.stop_gradient(value).astype(jnp.float32)
    out[f'sensitivity/{name}_pos'] = jnp.sum(value * pos) / count
    if name.startswith('p'):
      high = jnp.max(jnp.where(onehot, value[..., None], 0.0), axis=1)
      low = jnp.min(jnp.where(onehot, value[..., None], jnp.inf), axis=1)
      ratio = jnp.where(has, high / jnp.maximum(low, 1e-12), 0.0)
      out[f'sensitivity/{name}_ratio'] = ratio.sum() / jnp.maximum(has.sum(), 1)
  return out


def gaussian_scalars(gaussians: Gaussians, max_classes: int = 100) -> dict[str, jax.Array]:
  """Per-class ``mu`` and effective ``sigma`` of every class Gaussian, for the training log.

  Names ``sensitivity/<sub-task>_{mu,sigma}/<class>`` with sub-task cls, cls2, start, end or loc;
  nothing for more than ``max_classes`` classes (the log would hold thousands of scalars).
  """
  named = []
  if gaussians.get('cls') is not None:
    named.append(('cls', gaussians['cls']))
  named += [(f'cls{i + 2}', g) for i, g in enumerate(gaussians.get('cls_extra', []))]
  loc = gaussians.get('loc', [])
  named += list(zip(('start', 'end') if len(loc) == 2 else ('loc',), loc))
  out = {}
  for name, (mu, sigma) in named:
    if mu.shape[0] > max_classes:
      continue
    mu = jax.lax.stop_gradient(mu)
    sigma = effective_sigma(jax.lax.stop_gradient(sigma))
    for k in range(mu.shape[0]):
      out[f'sensitivity/{name}_mu/{k}'] = mu[k]
      out[f'sensitivity/{name}_sigma/{k}'] = sigma[k]
  return out
