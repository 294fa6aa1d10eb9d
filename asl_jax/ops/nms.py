"""ActionFormer's ``batched_nms`` (1-D soft-NMS) for one video, in reference-exact NumPy."""

from __future__ import annotations

import functools

import numpy as np

from asl_jax.ops.nms_batched import batched_soft_nms
from asl_jax.ops.nms_common import AREA_EPS, METHODS, check_args

__all__ = ['METHODS', 'batched_soft_nms', 'soft_nms']

# NumPy groups up to this size precompute their [n, n] decay matrix (cheaper below ~300 rows).
_DENSE_MAX = 256


def _soft_nms_1d(
  segs: np.ndarray, scores: np.ndarray, *, weight, min_score: np.float32, max_num: int
) -> tuple[np.ndarray, np.ndarray]:
  """ActionFormer's ``softnms_1d_cpu`` on one group of rows, stopped after ``max_num`` selections.

  Stopping early is exact: a selection depends only on the selections before it, and the caller
  keeps the first ``max_num`` anyway. The C++ sweep decays every live row once and moves the last
  live row into each dropped slot; the decays are independent, so they are done as one vector op
  and the moves replayed as one permutation (``_fill_holes``). Small groups look their decays up
  in a precomputed matrix (the IoU is symmetric bit for bit), which halves the cost per selection.

  Returns:
    Row indices into ``segs`` in selection order and their scores when selected (float32).
  """
  n = scores.shape[0]
  x1, x2 = segs[:, 0].copy(), segs[:, 1].copy()
  area = (x2 - x1) + AREA_EPS
  # The C++ arrays; slots below `i` hold the selections, in order (its `dets`).
  sc, inds = scores.copy(), np.arange(n)
  dense = n <= _DENSE_MAX
  if dense:
    decay = weight(_iou(x1[:, None], x2[:, None], area[:, None], x1, x2, area))
  else:  # coordinates permuted along with `sc` and `inds`
    coords = np.stack([x1, x2, area])
    x1, x2, area = coords
  i = 0
  while i < min(n, max_num):
    m = i + int(sc[i:n].argmax())  # first maximum, as the C++ strict '<' scan
    if m != i:
      sc[i], sc[m] = sc[m], sc[i]
      inds[i], inds[m] = inds[m], inds[i]
      if not dense:
        coords[:, [i, m]] = coords[:, [m, i]]
    rest = sc[i + 1 : n]  # a view: decayed in place
    if dense:
      rest *= decay[inds[i], inds[i + 1 : n]]
    else:
      rest *= weight(_iou(x1[i], x2[i], area[i], x1[i + 1 : n], x2[i + 1 : n], area[i + 1 : n]))
    drop = rest < min_score
    if drop.any():
      order = i + 1 + _fill_holes(drop)
      n = i + 1 + order.size
      sc[i + 1 : n], inds[i + 1 : n] = sc[order], inds[order]
      if not dense:
        coords[:, i + 1 : n] = coords[:, order]
    i += 1
  return inds[:i], sc[:i]


def _iou(x1a, x2a, area_a, x1b, x2b, area_b):
  """The C++ overlap, float32: ``inter / ((area_a + area_b) - inter)``, areas with +1e-6."""
  inter = np.maximum(np.minimum(x2a, x2b) - np.maximum(x1a, x1b), np.float32(0))
  return inter / ((area_a + area_b) - inter)


def _fill_holes(drop: np.ndarray) -> np.ndarray:
  """The C++ "copy the last live row into the dropped slot" moves of one sweep, as a gather.

  With ``k`` rows kept, the slots below ``k`` that held dropped rows are filled, in increasing
  order, by the kept rows at or above ``k`` taken from the end (the end pointer walks down).
  """
  k = drop.size - int(np.count_nonzero(drop))
  order = np.arange(k)
  order[np.flatnonzero(drop[:k])] = (k + np.flatnonzero(~drop[k:]))[::-1]
  return order


def _hard_nms_1d(
  segs: np.ndarray,
  scores: np.ndarray,
  *,
  iou_threshold: np.float32,
  min_score: float,
  max_num: int,
) -> tuple[np.ndarray, np.ndarray]:
  """ActionFormer's hard ``nms``: drop ``score <= min_score``, sort, suppress ``IoU >= thr``.

  The reference sort is torch's unstable one; a stable descending sort replaces it.
  """
  rows = np.flatnonzero(scores > min_score) if min_score > 0 else np.arange(scores.shape[0])
  rows = rows[np.argsort(-scores[rows], kind='stable')]
  x1, x2 = segs[rows, 0], segs[rows, 1]
  area = (x2 - x1) + AREA_EPS
  alive = np.ones(rows.size, bool)
  picked = []
  for j in range(rows.size):
    if not alive[j]:
      continue
    picked.append(j)
    if len(picked) == max_num:
      break
    tail = slice(j + 1, None)
    alive[tail] &= ~(_iou(x1[j], x2[j], area[j], x1[tail], x2[tail], area[tail]) >= iou_threshold)
  picked = rows[np.asarray(picked, np.int64)]
  return picked, scores[picked]


def _np_weight(method: str, sigma: float, iou_threshold: float):
  """Score decay as a function of IoU, float32 like the C++.

  The Gaussian goes through float64 ``exp`` rounded to float32, i.e. a correctly rounded
  ``expf``; glibc's ``expf`` (the reference) agrees with that bit for bit on the fixture, whereas
  NumPy's float32 ``exp`` is 1 ulp off on a third of the scores.
  """
  sigma, thr = np.float32(sigma), np.float32(iou_threshold)
  if method == 'gaussian':
    return lambda ovr: np.exp((-(ovr * ovr) / sigma).astype(np.float64)).astype(np.float32)
  return lambda ovr: np.where(ovr >= thr, np.float32(1) - ovr, np.float32(1))


def _vote_np(
  nms_segs: np.ndarray, all_segs: np.ndarray, all_scores: np.ndarray, thresh: float
) -> np.ndarray:
  """ActionFormer's ``seg_voting``: IoU-and-score weighted mean of all input segments (float32)."""
  left = np.maximum(nms_segs[:, None, 0], all_segs[None, :, 0])
  right = np.minimum(nms_segs[:, None, 1], all_segs[None, :, 1])
  inter = np.maximum(right - left, np.float32(0))
  lens_nms = nms_segs[:, 1] - nms_segs[:, 0]
  lens_all = all_segs[:, 1] - all_segs[:, 0]
  with np.errstate(invalid='ignore', divide='ignore'):
    iou = inter / ((lens_nms[:, None] + lens_all[None, :]) - inter)
    w = (iou >= np.float32(thresh)).astype(np.float32) * all_scores[None, :] * iou
    w /= w.sum(axis=1, keepdims=True)
  return (w @ all_segs).astype(np.float32)


def soft_nms(
  segments,
  scores,
  labels,
  *,
  sigma: float,
  min_score: float,
  max_seg_num: int,
  multiclass: bool,
  voting_thresh: float,
  iou_threshold: float,
  method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """ActionFormer's ``batched_nms`` for one video, in NumPy (docs/reference-eval-nms.md §5).

  Multiclass: each class present, in ascending order, runs its own NMS over its rows in input
  order and keeps its first ``max_seg_num`` selections; the classes are concatenated. Otherwise
  one NMS runs over all rows (labels ride along) and, if ``voting_thresh > 0``, each kept segment
  is replaced by the IoU-and-score weighted mean of all input segments (scores unchanged).
  Finally the rows are sorted by score, descending, and cut to ``max_seg_num``.

  Methods: ``'gaussian'`` (the reference's, ``w = exp(-IoU^2 / sigma)``, ``iou_threshold``
  unused), ``'linear'`` (``w = 1 - IoU`` where ``IoU >= iou_threshold``), both dropping rows whose
  decayed score is ``< min_score`` (except the first selection of each group, never tested);
  ``'hard'``: rows with ``score <= min_score`` dropped first, then greedy suppression of
  ``IoU >= iou_threshold``.

  Ties: selection reproduces the C++ exactly (first maximum in the array as permuted by its swaps).
  The final sort is *stable* where the reference's torch sort is not: equal scores keep the
  per-class concatenation order (class ascending, then selection order). Only the order of equal
  scores, and which tied rows survive the final cut, can differ from a given torch run.

  Args:
    segments: [N, 2] (start, end), ``end >= start``, finite.
    scores: [N] finite.
    labels: [N] integer class ids.
    sigma, min_score, max_seg_num, multiclass, voting_thresh, iou_threshold, method: as the
      reference's ``batched_nms`` arguments.

  Returns:
    segments [M, 2] float32, scores [M] float32, labels [M] int32, ``M <= max_seg_num``, in output
    order.

  Raises:
    ValueError: bad shapes, non-finite values, ``end < start``, an unknown method, or, when voting,
      a zero-length segment (the reference's voting IoU is then 0/0 and the row becomes NaN; a kept
      row whose overlapping inputs all have score 0 still gets NaN, as in the reference).
  """
  check_args(method, max_seg_num)
  segs = np.asarray(segments, np.float32).reshape(-1, 2)
  scores = np.asarray(scores, np.float32).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  n = scores.shape[0]
  if segs.shape[0] != n or labels.shape[0] != n:
    raise ValueError(
      f'segments {segs.shape}, scores {scores.shape} and labels {labels.shape} disagree on N'
    )
  if not (np.isfinite(segs).all() and np.isfinite(scores).all()):
    raise ValueError('segments and scores must be finite')
  if (segs[:, 1] < segs[:, 0]).any():
    raise ValueError('every segment must have end >= start')
  voting = not multiclass and voting_thresh > 0
  if voting and (segs[:, 1] == segs[:, 0]).any():
    raise ValueError('score voting needs segments of positive length (0/0 IoU otherwise)')
  if n == 0:
    return np.zeros((0, 2), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)

  if method == 'hard':
    run = functools.partial(
      _hard_nms_1d,
      iou_threshold=np.float32(iou_threshold),
      min_score=min_score,
      max_num=max_seg_num,
    )
  else:
    run = functools.partial(
      _soft_nms_1d,
      weight=_np_weight(method, sigma, iou_threshold),
      min_score=np.float32(min_score),
      max_num=max_seg_num,
    )
  if multiclass:
    by_class = np.argsort(labels, kind='stable')
    groups = np.split(by_class, np.flatnonzero(np.diff(labels[by_class])) + 1)
  else:
    groups = [np.arange(n)]
  picked, picked_scores = [], []
  for rows in groups:
    sel, sel_scores = run(segs[rows], scores[rows])
    picked.append(rows[sel])
    picked_scores.append(sel_scores)
  picked = np.concatenate(picked)
  new_scores = np.concatenate(picked_scores)
  new_segs = segs[picked]
  if voting:
    new_segs = _vote_np(new_segs, segs, scores, voting_thresh)
  order = np.argsort(-new_scores, kind='stable')[:max_seg_num]
  return new_segs[order], new_scores[order], labels[picked][order].astype(np.int32)
