"""ASL's training objective in plain NumPy, from the paper's equations (3-15); no asl_jax import.

Shao et al., "Action Sensitivity Learning for Temporal Action Localization", ICCV 2023, with
ActionFormer's label assignment (centre sampling, regression ranges, shortest ground truth wins)
and loss normaliser, and the frame conventions written in docs/design.md. Loops over points and
actions, float64, so it shares no code path with the vectorised JAX objective. Stop-gradients
(q inside the weights, the Gaussians inside ASCL's pooling, the quality targets) are modelled by
evaluating those terms at ``frozen`` parameters, so finite differences of :func:`objective` with
``frozen`` fixed are the gradients the paper asks for.
"""

import math

import numpy as np

SIGMA_MIN, SIGMA_MAX = 1e-3, 5.0


def assign(points, segs, labels, valid, num_classes, radius=1.5):
  """Per point: (positive, assigned index, multi-hot target [K], offsets (l, r) / stride)."""
  out = []
  for t, lo, hi, stride in points:
    cands = []
    for m, ((s, e), ok) in enumerate(zip(segs, valid)):
      if not ok:
        continue
      c = 0.5 * (s + e)
      if radius > 0:
        left_edge, right_edge = max(c - radius * stride, s), min(c + radius * stride, e)
      else:  # No centre sampling: anywhere strictly inside the action.
        left_edge, right_edge = s, e
      if not (t - left_edge > 0 and right_edge - t > 0):
        continue
      if not lo <= max(t - s, e - t) <= hi:
        continue
      cands.append((e - s, m))
    target = np.zeros(num_classes)
    if not cands:
      out.append((False, 0, target, np.ones(2)))
      continue
    shortest = min(length for length, _ in cands)
    m = min(m for length, m in cands if length == shortest)
    for length, k in cands:
      if length <= shortest + 1e-3:
        target[labels[k]] = 1.0
    s, e = segs[m]
    out.append((True, m, target, np.array([(t - s) / stride, (e - t) / stride])))
  return out


def gaussian(d, mu, sigma):
  """Eq. 4 with sigma clamped to [1e-3, 5] (the paper's upper clamp)."""
  s = min(max(abs(sigma), SIGMA_MIN), SIGMA_MAX)
  return math.exp(-((d - mu) ** 2) / (2 * s * s))


def sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


def focal(logit, y, alpha=0.25, gamma=2.0):
  """Sigmoid focal loss of one logit (Lin et al. 2017)."""
  p = sigmoid(logit)
  ce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
  p_t = p * y + (1 - p) * (1 - y)
  return (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma


def iou_and_diou(pred, target):
  """1-D IoU and DIoU loss of two segments given as (left, right) distances from one point."""
  lp, rp = pred
  lg, rg = target
  inter = min(lp, lg) + min(rp, rg)
  iou = inter / (lp + rp + lg + rg - inter)
  rho = 0.5 * ((rp - lp) - (rg - lg))
  enclosing = max(lp, lg) + max(rp, rg)
  return iou, 1 - iou + (rho / enclosing) ** 2


def evaluator(params, levels, masks):
  """Eq. 5: masked conv (k=3, no bias) -> LayerNorm -> ReLU -> linear -> sigmoid, per level."""
  kernel, scale, bias, w, b = (params[k] for k in ('conv', 'scale', 'bias', 'w', 'b'))
  out = []
  for x, mask in zip(levels, masks):  # x [B, T, C]
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    h = sum(padded[:, j : j + x.shape[1]] @ kernel[j] for j in range(3))
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) * scale + bias
    q = 1.0 / (1.0 + np.exp(-(np.maximum(h, 0) @ w[:, 0] + b[0])))
    out.append(q * mask)
  return np.concatenate(out, 1)


def _frames(n_valid, s, e):
  frames = [t for t in range(n_valid) if s - 1e-3 <= t <= e + 1e-3]
  return frames or [min(max(math.floor(0.5 * (s + e) + 0.5), 0), n_valid - 1)]


def ascl(feats, mask, segs, labels, valid, gauss, delta=0.2, tau=0.07):
  """Eq. 11-14: f_cls, f_loc (sensitivity-pooled in T_cls, T_loc), f_bg, InfoNCE over the batch."""
  items = []  # (unit vector, class or None for background)
  for i in range(len(segs)):
    n_valid = int(mask[i].sum())
    acts = [m for m in range(len(segs[i])) if valid[i, m]]
    occupied = {t for m in acts for t in _frames(n_valid, *segs[i, m])}
    for m in acts:
      s, e = segs[i, m]
      k, n = labels[i, m], e - s
      frames = _frames(n_valid, s, e)
      d = {t: (t - 0.5 * (s + e)) / n for t in frames}
      p_cls = {
        t: sum(gaussian(d[t], mu[k], sg[k]) for mu, sg in _cls_gaussians(gauss)) for t in frames
      }
      p_loc = [{t: gaussian(d[t], mu[k], sg[k]) for t in frames} for mu, sg in gauss['loc']]
      r = max(delta * n, 0.5)
      peak = lambda p, frames=frames: max(frames, key=lambda u: (p[u], -u))  # First on ties.
      t_cls = [t for t in frames if abs(t - peak(p_cls)) <= r]
      t_loc = [t for t in frames if any(abs(t - peak(p)) <= r for p in p_loc)]
      f_cls = sum(p_cls[t] * feats[i, t] for t in t_cls) / len(t_cls)
      f_loc = sum(sum(p[t] for p in p_loc) * feats[i, t] for t in t_loc) / len(t_loc)
      items += [(f_cls, k), (f_loc, k)]
      bg = [
        t
        for t in range(n_valid)
        if t not in occupied and (s - delta * n <= t < s or e < t <= e + delta * n)
      ]
      if bg:
        items.append((sum(feats[i, t] for t in bg) / len(bg), None))
  units = [f / np.linalg.norm(f) for f, _ in items]
  losses = []
  for a, (_, k) in enumerate(items):
    if k is None:
      continue
    pos = neg = 0.0
    for b, (_, k2) in enumerate(items):
      if a == b:
        continue
      sim = math.exp(float(units[a] @ units[b]) / tau)
      if k2 == k:
        pos += sim
      else:
        neg += sim
    if pos > 0:
      losses.append(-math.log(pos / (pos + neg)))
  return sum(losses) / max(len(losses), 1)


def _cls_gaussians(gauss):
  """The classification Gaussians: one, or two summed (Table 7's "#cls = 2")."""
  return [gauss['cls'], *gauss.get('cls_extra', [])]


def objective(
  params, frozen, data, *, num_classes, loss_norm, lam=0.3, cls_inside=False, normalize=False
):
  """Eq. 15 ``L = L_cls + L_loc + L_s + lambda L_ASCL`` and its terms.

  Args:
    params: ``gauss`` ({'cls': (mu, sigma), 'loc': [(mu, sigma), (mu, sigma)]}, optionally
      'cls_extra': [(mu, sigma)]), ``q_cls`` and ``q_loc`` (evaluator parameters).
    frozen: the same structure; the stop-gradient terms are computed from it.
    data: points, masks per level, neck levels, level-0 features, cls logits, offsets, batch.
    cls_inside: the option beyond the paper: classification positives are all points strictly
      inside an action (assignment without centre sampling); regression keeps centre sampling.
    normalize: the other option: p divided by its mean over each instance's positives.
  """
  q = {k: evaluator(params[k], data['levels'], data['level_masks']) for k in ('q_cls', 'q_loc')}
  q_sg = {k: evaluator(frozen[k], data['levels'], data['level_masks']) for k in ('q_cls', 'q_loc')}
  gauss = params['gauss']
  segs, labels, valid = data['segments'], data['labels'], data['segment_valid']
  point_mask, points = data['point_mask'], data['points']

  def p_at(i, j, m, task):
    s, e = segs[i, m]
    k = labels[i, m]
    d = (points[j][0] - 0.5 * (s + e)) / (e - s)  # Eq. 3.
    pairs = _cls_gaussians(gauss) if task == 'cls' else gauss['loc']
    return sum(gaussian(d, mu[k], sg[k]) for mu, sg in pairs)

  # Per task: {(video, point): (instance, p)} over the task's positive points.
  reg_targets, cls_targets, pos_p = [], [], {'cls': {}, 'loc': {}}
  for i in range(len(segs)):
    reg = assign(points, segs[i], labels[i], valid[i], num_classes)
    cls = assign(
      points, segs[i], labels[i], valid[i], num_classes, radius=0.0 if cls_inside else 1.5
    )
    reg_targets.append(reg)
    cls_targets.append(cls)
    for j in range(len(points)):
      if not point_mask[i, j]:
        continue
      for task, targets in (('cls', cls), ('loc', reg)):
        if targets[j][0]:
          pos_p[task][i, j] = (targets[j][1], p_at(i, j, targets[j][1], task))
  if normalize:
    for task, entries in pos_p.items():
      by_instance = {}
      for (i, _), (m, p) in entries.items():
        by_instance.setdefault((i, m), []).append(p)
      means = {key: sum(v) / len(v) for key, v in by_instance.items()}
      pos_p[task] = {(i, j): (m, p / means[i, m]) for (i, j), (m, p) in entries.items()}

  cls_sum = reg_sum = s_sum = 0.0
  num_pos = 0
  for i in range(len(segs)):
    for j in range(len(points)):
      if not point_mask[i, j]:
        continue
      logits = data['cls_logits'][i, j]
      cls_pos, m_cls, y, _ = cls_targets[i][j]
      fl = sum(focal(logits[k], y[k]) for k in range(num_classes))
      if cls_pos:
        h_cls = pos_p['cls'][i, j][1] + q_sg['q_cls'][i, j]  # Eq. 8-9.
        cls_sum += h_cls * fl
        s_sum += (q['q_cls'][i, j] - sigmoid(logits[labels[i, m_cls]])) ** 2  # Eq. 6.
      else:
        cls_sum += fl
      reg_pos, _, _, off = reg_targets[i][j]
      if reg_pos:
        num_pos += 1
        h_loc = pos_p['loc'][i, j][1] + q_sg['q_loc'][i, j]  # Eq. 10.
        iou, diou = iou_and_diou(data['offsets'][i, j], off)
        reg_sum += h_loc * diou
        s_sum += (q['q_loc'][i, j] - iou) ** 2  # Eq. 7.
  norm = 0.9 * loss_norm + 0.1 * max(num_pos, 1)
  terms = {
    'cls_loss': cls_sum / norm,
    'reg_loss': reg_sum / norm,
    'sensitivity_loss': s_sum / norm,
    'contrastive_loss': ascl(data['level0'], data['mask'], segs, labels, valid, frozen['gauss']),
    'num_pos': num_pos,
    'loss_norm': norm,
  }
  terms['loss'] = (
    terms['cls_loss']
    + terms['reg_loss']
    + terms['sensitivity_loss']
    + lam * terms['contrastive_loss']
  )
  return terms
