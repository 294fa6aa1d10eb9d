"""Test oracle: a literal float32 transcription of ActionFormer's batched_nms and C++ soft-NMS.

Written from docs/reference-eval-nms.md §5 line by line, with scalar loops and explicit swaps,
independently of asl_jax/ops/nms.py (which it must not import). Two deliberate choices: the final
sort is stable (the reference's torch sort is not; ties are implementation-defined there), and
``expf`` is glibc's through ctypes when available, as the C++ calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np

f32 = np.float32

# ActionFormer's evaluation settings (docs/reference-eval-nms.md), the baseline every NMS test and
# benchmark varies; the ops take every setting explicitly (defaults live in configs/base.py only).
REFERENCE_NMS = dict(
  sigma=0.5,
  min_score=0.001,
  max_seg_num=200,
  multiclass=True,
  voting_thresh=0.0,
  iou_threshold=0.1,
  method='gaussian',
)

try:
  _libm = ctypes.CDLL(ctypes.util.find_library('m') or 'libm.so.6')
  _libm.expf.restype = ctypes.c_float
  _libm.expf.argtypes = [ctypes.c_float]
  # The reference ran on glibc; other C libraries' expf may differ by an ulp.
  HAVE_GLIBC_EXPF = platform.libc_ver()[0] == 'glibc'

  def expf(x: np.float32) -> np.float32:
    return f32(_libm.expf(float(x)))

except (OSError, AttributeError):  # no C math library: a correctly rounded float32 exp instead
  HAVE_GLIBC_EXPF = False

  def expf(x: np.float32) -> np.float32:
    return f32(np.exp(np.float64(x)))


def softnms_1d_cpu(segs, scores, iou_threshold, sigma, min_score, method):
  """``nms_1d_cpu.softnms``: returns (inds, dets) with dets rows (x1, x2, score), all kept."""
  n = len(scores)
  x1 = [f32(s[0]) for s in segs]
  x2 = [f32(s[1]) for s in segs]
  sc = [f32(s) for s in scores]
  area = [(x2[k] - x1[k]) + f32(1e-6) for k in range(n)]
  inds = list(range(n))
  iou_threshold, sigma, min_score = f32(iou_threshold), f32(sigma), f32(min_score)
  dets = []
  i = 0
  while i < n:
    max_score = sc[i]
    max_pos = i
    pos = i + 1
    while pos < n:
      if max_score < sc[pos]:
        max_score = sc[pos]
        max_pos = pos
      pos += 1
    dets.append((x1[max_pos], x2[max_pos], sc[max_pos]))
    for arr in (x1, x2, sc, area, inds):
      arr[i], arr[max_pos] = arr[max_pos], arr[i]
    ix1, ix2, iarea = x1[i], x2[i], area[i]
    pos = i + 1
    while pos < n:
      xx1 = max(ix1, x1[pos])
      xx2 = min(ix2, x2[pos])
      inter = max(f32(0), f32(xx2 - xx1))
      ovr = f32(inter / f32(f32(iarea + area[pos]) - inter))
      weight = f32(1)
      if method == 0:
        if ovr >= iou_threshold:
          weight = f32(0)
      elif method == 1:
        if ovr >= iou_threshold:
          weight = f32(1) - ovr
      else:
        weight = expf(f32(f32(-(ovr * ovr)) / sigma))
      sc[pos] = f32(sc[pos] * weight)
      if sc[pos] < min_score:
        for arr in (x1, x2, sc, area, inds):
          arr[pos] = arr[n - 1]
        n -= 1
      else:
        pos += 1
    i += 1
  return inds[:n], dets[:n]


def nms_1d_cpu(segs, scores, iou_threshold):
  """``nms_1d_cpu.nms``: greedy hard NMS in descending score order (stable sort here)."""
  n = len(scores)
  x1 = [f32(s[0]) for s in segs]
  x2 = [f32(s[1]) for s in segs]
  area = [(x2[k] - x1[k]) + f32(1e-6) for k in range(n)]
  order = sorted(range(n), key=lambda k: -float(scores[k]))  # Python's sort is stable
  suppressed = [False] * n
  keep = []
  for a in range(n):
    i = order[a]
    if suppressed[i]:
      continue
    keep.append(i)
    for b in range(a + 1, n):
      j = order[b]
      if suppressed[j]:
        continue
      inter = max(f32(0), f32(min(x2[i], x2[j]) - max(x1[i], x1[j])))
      ovr = f32(inter / f32(f32(area[i] + area[j]) - inter))
      if ovr >= f32(iou_threshold):
        suppressed[j] = True
  return keep


def seg_voting(nms_segs, all_segs, all_scores, iou_threshold):
  """ActionFormer's ``seg_voting`` in float32 (0/0 gives NaN, as in torch)."""
  out = np.zeros((len(nms_segs), 2), f32)
  for i, (a, b) in enumerate(nms_segs):
    w = np.zeros(len(all_segs), f32)
    for j, (c, d) in enumerate(all_segs):
      inter = max(f32(0), f32(min(b, d) - max(a, c)))
      with np.errstate(invalid='ignore', divide='ignore'):
        iou = f32(inter / f32(f32(f32(b - a) + f32(d - c)) - inter))
      w[j] = f32(f32(f32(iou >= f32(iou_threshold)) * f32(all_scores[j])) * iou)
    with np.errstate(invalid='ignore', divide='ignore'):
      w = w / w.sum(dtype=f32)
    out[i] = w.astype(np.float64) @ np.asarray(all_segs, np.float64)
  return out


def batched_nms(
  segs,
  scores,
  cls_idxs,
  *,
  iou_threshold,
  min_score,
  max_seg_num,
  use_soft_nms=True,
  multiclass=True,
  sigma=0.5,
  voting_thresh=0.75,
  method=2,
):
  """ActionFormer's ``batched_nms``; ``method`` (0 hard, 1 linear, 2 gaussian) for soft-NMS."""
  segs = np.asarray(segs, f32).reshape(-1, 2)
  scores = np.asarray(scores, f32).reshape(-1)
  cls_idxs = np.asarray(cls_idxs).reshape(-1)
  if len(scores) == 0:
    return np.zeros((0, 2), f32), np.zeros((0,), f32), np.zeros((0,), cls_idxs.dtype)

  def one_call(rows):
    if use_soft_nms:
      inds, dets = softnms_1d_cpu(segs[rows], scores[rows], iou_threshold, sigma, min_score, method)
      dets = dets[:max_seg_num]
      kept_segs = np.array([[d[0], d[1]] for d in dets], f32).reshape(-1, 2)
      kept_scores = np.array([d[2] for d in dets], f32)
      kept_cls = cls_idxs[rows][np.asarray(inds, np.int64)][:max_seg_num]
    else:
      rows = rows[scores[rows] > f32(min_score)] if min_score > 0 else rows
      keep = nms_1d_cpu(segs[rows], scores[rows], iou_threshold)[:max_seg_num]
      kept = rows[np.asarray(keep, np.int64)]
      kept_segs, kept_scores, kept_cls = segs[kept], scores[kept], cls_idxs[kept]
    return kept_segs, kept_scores, kept_cls

  if multiclass:
    parts = [one_call(np.flatnonzero(cls_idxs == c)) for c in np.unique(cls_idxs)]
    new_segs = np.concatenate([p[0] for p in parts])
    new_scores = np.concatenate([p[1] for p in parts])
    new_cls = np.concatenate([p[2] for p in parts])
  else:
    new_segs, new_scores, new_cls = one_call(np.arange(len(scores)))
    if voting_thresh > 0:
      new_segs = seg_voting(new_segs, segs, scores, voting_thresh)
  order = sorted(range(len(new_scores)), key=lambda k: -float(new_scores[k]))
  order = np.asarray(order[: min(max_seg_num, len(order))], np.int64)
  return new_segs[order], new_scores[order], new_cls[order]
