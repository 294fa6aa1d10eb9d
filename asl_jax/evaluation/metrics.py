"""Detection mAP and Recall@kx with the ActivityNet / ActionFormer `ANETdetection` semantics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Built exactly as the reference configs do, so the float64 thresholds compare bit for bit.
TIOU_PRESETS = {
  'thumos14': np.linspace(0.3, 0.7, 5),
  'activitynet': np.linspace(0.5, 0.95, 10),
  'ego4d': np.linspace(0.1, 0.5, 5),
  'epic': np.linspace(0.1, 0.5, 5),
  'multithumos': np.linspace(0.1, 0.9, 9),
  'charades': np.linspace(0.1, 0.9, 9),
}


def _check_rows(kind: str, video_ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
  """Checks equal lengths, finiteness and (GT only) start <= end; errors name the row and video.

  An inverted prediction (end < start) is scored as ActivityNet's evaluator scores it: its
  intersection with any GT is 0, so its IoU is 0 (a false positive) unless the union is 0 too
  (GT length = start - end), where 0/0 = NaN counts as a match, as there (NaN IoU below).
  """
  n = len(video_ids)
  for name, col in columns.items():
    if col.shape != (n,):
      raise ValueError(f'{kind}: {name} has shape {col.shape}, expected ({n},) like video_ids')
  for name in ('starts', 'ends'):
    bad = np.flatnonzero(~np.isfinite(columns[name]))
    if bad.size:
      i = bad[0]
      seg = (columns['starts'][i], columns['ends'][i])
      raise ValueError(f'{kind} row {i} (video {video_ids[i]!r}): non-finite segment {seg}')
  bad = np.flatnonzero(columns['ends'] < columns['starts'])
  if bad.size and 'scores' not in columns:  # Ground truth.
    i = bad[0]
    seg = (columns['starts'][i], columns['ends'][i])
    raise ValueError(
      f'{kind} row {i} (video {video_ids[i]!r}): inverted segment {seg} (end < start)'
    )
  if 'scores' in columns:
    bad = np.flatnonzero(np.isnan(columns['scores']))
    if bad.size:
      raise ValueError(f'{kind} row {bad[0]} (video {video_ids[bad[0]]!r}): score is NaN')


def _int_column(kind: str, values) -> np.ndarray:
  arr = np.asarray(values).reshape(-1)
  if arr.size and not np.issubdtype(arr.dtype, np.integer):
    as_int = arr.astype(np.int64)
    if not np.array_equal(as_int, arr):
      raise ValueError(f'{kind}: labels must be integer label ids, got {arr.dtype}')
    arr = as_int
  return arr.astype(np.int64)


@dataclasses.dataclass
class GroundTruth:
  """Ground-truth segments in column form; validated on construction (the data boundary).

  Zero-length segments are kept, as ActivityNet's evaluator keeps them; removing duplicates is
  the annotation loader's job, not the evaluator's.
  """

  video_ids: np.ndarray  # [G] str.
  starts: np.ndarray  # [G] float64 seconds.
  ends: np.ndarray  # [G] float64 seconds.
  labels: np.ndarray  # [G] int64 label ids.

  def __post_init__(self):
    self.video_ids = np.asarray(self.video_ids).astype(str).reshape(-1)
    self.starts = np.asarray(self.starts, dtype=np.float64).reshape(-1)
    self.ends = np.asarray(self.ends, dtype=np.float64).reshape(-1)
    self.labels = _int_column('ground truth', self.labels)
    cols = {'starts': self.starts, 'ends': self.ends, 'labels': self.labels}
    _check_rows('ground truth', self.video_ids, cols)

  def __len__(self) -> int:
    return len(self.video_ids)

  @classmethod
  def from_rows(cls, rows: Iterable[tuple]) -> GroundTruth:
    """From (video_id, start, end, label) tuples."""
    rows = list(rows)
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return cls(np.array(cols[0], dtype=str), cols[1], cols[2], np.array(cols[3], dtype=np.int64))


@dataclasses.dataclass
class Predictions:
  """Detections in column form; validated on construction (the data boundary)."""

  video_ids: np.ndarray  # [P] str.
  starts: np.ndarray  # [P] float64 seconds.
  ends: np.ndarray  # [P] float64 seconds.
  labels: np.ndarray  # [P] int64 label ids.
  scores: np.ndarray  # [P] float64; only their order matters.

  def __post_init__(self):
    self.video_ids = np.asarray(self.video_ids).astype(str).reshape(-1)
    self.starts = np.asarray(self.starts, dtype=np.float64).reshape(-1)
    self.ends = np.asarray(self.ends, dtype=np.float64).reshape(-1)
    self.labels = _int_column('predictions', self.labels)
    self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
    cols = {'starts': self.starts, 'ends': self.ends, 'labels': self.labels, 'scores': self.scores}
    _check_rows('predictions', self.video_ids, cols)

  def __len__(self) -> int:
    return len(self.video_ids)

  @classmethod
  def from_rows(cls, rows: Iterable[tuple]) -> Predictions:
    """From (video_id, start, end, label, score) tuples."""
    rows = list(rows)
    cols = list(zip(*rows)) if rows else [[], [], [], [], []]
    labels = np.array(cols[3], dtype=np.int64)
    return cls(np.array(cols[0], dtype=str), cols[1], cols[2], labels, cols[4])


@dataclasses.dataclass
class MAPResult:
  """Detection metrics over the classes present in the ground truth."""

  tious: np.ndarray  # [T] tIoU thresholds, in the order given.
  map: np.ndarray  # [T] mean over classes of the per-class AP.
  average_map: float  # Mean of `map` over thresholds (the headline number).
  per_class_ap: np.ndarray  # [C, T], classes sorted by label id.
  class_ids: np.ndarray  # [C] label ids present in the ground truth.
  recall: dict[int, np.ndarray]  # k -> [T] Recall@kx averaged over classes.
  class_names: tuple[str, ...] | None = None  # [C] names aligned with class_ids, if known.

  def _names(self, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
      return [class_names[int(c)] for c in self.class_ids]
    if self.class_names is not None:
      return list(self.class_names)
    return [str(int(c)) for c in self.class_ids]

  def to_json_dict(self, class_names: Sequence[str] | None = None) -> dict:
    """A JSON-ready dict; class_names, if given, is indexed by label id."""
    names = self._names(class_names)
    return {
      'tious': [float(t) for t in self.tious],
      'mAP': [float(m) for m in self.map],
      'average_mAP': float(self.average_map),
      'per_class_ap': {n: [float(a) for a in ap] for n, ap in zip(names, self.per_class_ap)},
      'recall': {f'R@{k}x': [float(r) for r in v] for k, v in self.recall.items()},
    }

  def format_table(self) -> str:
    """Thresholds, mAP and Recall@kx in percent, one row each; the last column is the mean."""
    rows = [('tIoU', [f'{t:.2f}' for t in self.tious] + ['Avg'])]
    rows.append(
      ('mAP (%)', [f'{100 * m:.2f}' for m in self.map] + [f'{100 * self.average_map:.2f}'])
    )
    for k, r in self.recall.items():
      rows.append((f'R@{k}x (%)', [f'{100 * x:.2f}' for x in r] + [f'{100 * r.mean():.2f}']))
    head = max(len(name) for name, _ in rows)
    width = max(len(c) for _, cells in rows for c in cells)
    return '\n'.join(
      name.ljust(head) + ''.join(' ' + c.rjust(width) for c in cells) for name, cells in rows
    )


def _rank_within_runs(keys: np.ndarray) -> np.ndarray:
  """For each element, how many earlier elements share its key (a stable per-key counter)."""
  order = np.argsort(keys, kind='stable')
  sorted_keys = keys[order]
  n = len(keys)
  is_start = np.ones(n, dtype=bool)
  is_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
  run_start = np.maximum.accumulate(np.where(is_start, np.arange(n), 0))
  out = np.empty(n, dtype=np.int64)
  out[order] = np.arange(n) - run_start
  return out


def _bucket(n: int, minimum: int) -> int:
  """Next power of two >= n (and >= minimum), so that similar inputs reuse one compilation."""
  return max(minimum, 1 << max(0, int(n) - 1).bit_length())


@jax.jit
def _match_locks(levels: jax.Array, ranks: jax.Array, gt_group: jax.Array, t_index: jax.Array):
  """Greedy matching of every (class, video) group at once; returns who locked each GT.

  Step s handles the s-th relevant prediction (score order) of every group in parallel: groups
  never share GT, so only the order within a group matters and the scan is as long as the largest
  group, not the prediction count. Per threshold the reference walks the prediction's candidates
  (NaN IoU first, then IoU descending, then GT order) and takes the first unlocked one with
  IoU >= t, stopping at the first IoU < t; as candidates passing t form a prefix of that order,
  this is "the available candidate of smallest rank", with a stop only when none is available.

  Args:
    levels: [S, N] int16, thresholds passed by the IoU of step s's prediction with GT slot n (the
      count of sorted thresholds <= IoU; NaN passes all); 0 where no prediction or pad.
    ranks: [S, N] int32, position of GT slot n in that prediction's candidate order.
    gt_group: [N] int32, non-decreasing group id of each GT slot (pads: an unused id).
    t_index: [T] int32, 0..T-1 (its length sets T).

  Returns:
    [N, T] int32: the step whose prediction matched GT n at sorted threshold t, or -1.
  """
  num_slots = levels.shape[1]
  big = jnp.iinfo(jnp.int32).max

  def step(lock_step, xs):
    level, rank, s = xs
    avail = (level[:, None].astype(jnp.int32) > t_index[None, :]) & (lock_step < 0)
    key = jnp.where(avail, rank[:, None], big)
    best = jax.ops.segment_min(key, gt_group, num_segments=num_slots, indices_are_sorted=True)
    chosen = avail & (key == best[gt_group])
    return jnp.where(chosen, s, lock_step), None

  init = jnp.full((num_slots, t_index.shape[0]), -1, dtype=jnp.int32)
  steps = jnp.arange(levels.shape[0], dtype=jnp.int32)
  lock_step, _ = jax.lax.scan(step, init, (levels, ranks, steps))
  return lock_step


def _interpolated_ap(tp: np.ndarray, npos: float) -> np.ndarray:
  """VOC2011 all-point AP per row of tp [T, n], in the reference's float64 operation order."""
  tp_cum = np.cumsum(tp, axis=1).astype(np.float64)
  fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
  rec = tp_cum / npos
  prec = tp_cum / (tp_cum + fp_cum)
  zeros, ones = np.zeros((len(tp), 1)), np.ones((len(tp), 1))
  mprec = np.hstack([zeros, prec, zeros])
  mrec = np.hstack([zeros, rec, ones])
  mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
  terms = (mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]
  changed = mrec[:, 1:] != mrec[:, :-1]
  # One np.sum per row over the selected terms only: numpy's pairwise summation then groups them
  # exactly as the reference does, so per-class APs agree bit for bit.
  return np.array([np.sum(terms[t][changed[t]]) for t in range(len(tp))])


@dataclasses.dataclass(frozen=True)
class _Pairs:
  """Every (prediction, GT of the prediction's (class, video) group) pair, prediction-major."""

  pred: np.ndarray  # [Q] index of the prediction among the in-group ones (score order).
  slot: np.ndarray  # [Q] GT slot, ascending within a prediction.
  first: np.ndarray  # [N] index of each prediction's first pair.
  count: np.ndarray  # [N] pairs per prediction (= GT in its group).
  iou: np.ndarray  # [Q] float64 tIoU; NaN for two zero-length segments.


def _topkx_recall(
  pairs: _Pairs, rank_in_group: np.ndarray, slot_class: np.ndarray, npos: np.ndarray, tious, topk
) -> np.ndarray:
  """[T, K, C]: GT hit by one of its video's top k * n_gt predictions of its class, per class."""
  recall = np.zeros((len(tious), len(topk), len(npos)))
  for i, k in enumerate(topk):
    top = rank_in_group[pairs.pred] < k * pairs.count[pairs.pred]
    for t, thr in enumerate(tious):
      hit = np.zeros(len(slot_class), dtype=bool)
      hit[pairs.slot[top & (pairs.iou >= thr)]] = True
      recall[t, i] = np.bincount(slot_class[hit], minlength=len(npos)) / npos
  return recall


def _true_positives(pairs: _Pairs, grp: np.ndarray, gt_group: np.ndarray, tious) -> np.ndarray:
  """[T, N] bool: whether each in-group prediction is a TP at each threshold.

  Host side: IoU levels and candidate ranks (exact float64 work); device side: the sequential
  greedy matching, which then only sees integers and needs no x64 mode.
  """
  num_t, num_preds = len(tious), len(pairs.count)
  t_order = np.argsort(tious, kind='stable')
  level = np.searchsorted(tious[t_order], pairs.iou, side='right')
  is_nan = np.isnan(pairs.iou)
  level[is_nan] = num_t
  # Only a prediction passing the lowest threshold with some GT can lock anything; the others are
  # FP everywhere and are left out of the scan.
  relevant = np.zeros(num_preds, dtype=bool)
  relevant[pairs.pred[level > 0]] = True
  rel = np.flatnonzero(relevant)
  tp = np.zeros((num_t, num_preds), dtype=bool)
  if not rel.size:
    return tp
  cand_order = np.lexsort((np.where(is_nan, -np.inf, -pairs.iou), pairs.pred))
  cand_rank = np.empty(len(pairs.pred), dtype=np.int64)
  cand_rank[cand_order] = np.arange(len(pairs.pred)) - pairs.first[pairs.pred[cand_order]]
  step_of = np.full(num_preds, -1, dtype=np.int64)
  step_of[rel] = _rank_within_runs(grp[rel])
  num_steps, num_slots = _bucket(step_of.max() + 1, 8), _bucket(len(gt_group), 64)
  use = relevant[pairs.pred]
  rows, cols = step_of[pairs.pred[use]], pairs.slot[use]
  levels = np.zeros((num_steps, num_slots), dtype=np.int16)
  levels[rows, cols] = level[use]
  ranks = np.zeros((num_steps, num_slots), dtype=np.int32)
  ranks[rows, cols] = cand_rank[use]
  slot_group = np.full(num_slots, num_slots - 1, dtype=np.int32)
  slot_group[: len(gt_group)] = gt_group
  t_index = np.arange(num_t, dtype=np.int32)
  lock = np.asarray(_match_locks(levels, ranks, slot_group, t_index))[: len(gt_group)]
  # Each lock (GT slot, sorted threshold) -> the prediction at (group, step).
  slot, col = np.nonzero(lock >= 0)
  rel_key = grp[rel] * num_steps + step_of[rel]
  by_key = np.argsort(rel_key)
  hit = by_key[np.searchsorted(rel_key[by_key], gt_group[slot] * num_steps + lock[slot, col])]
  tp[t_order[col], rel[hit]] = True
  return tp


@dataclasses.dataclass(frozen=True)
class Matching:
  """The greedy matching behind the mAP: TP flags of every detection of a GT class, class-major
  and in stable descending score order, and Recall@kx. :func:`compute_map` and the PR-curve
  figure both read it, so the curves' areas are the reported APs by construction."""

  tious: np.ndarray  # [T].
  class_ids: np.ndarray  # [C] label ids present in the ground truth.
  npos: np.ndarray  # [C] GT segments per class (float64).
  tp: np.ndarray  # [T, N] bool, N = detections of GT classes (class-major, score order).
  bounds: np.ndarray  # [C + 1]: class c's detections are tp[:, bounds[c]:bounds[c + 1]].
  recall: np.ndarray  # [T, K, C] Recall@kx per class, K = len(recall_topk).
  recall_topk: tuple[int, ...]

  def class_tp(self, c: int) -> np.ndarray:
    """[T, n_c] TP flags of class index ``c``'s detections, score order."""
    return self.tp[:, self.bounds[c] : self.bounds[c + 1]]


def match_detections(
  gt: GroundTruth,
  preds: Predictions,
  tious: Sequence[float],
  *,
  recall_topk: Sequence[int] = (1, 5),
) -> Matching:
  """ActivityNet's greedy matching at every threshold (rules: :func:`compute_map`)."""
  tious = np.asarray(tious, dtype=np.float64).reshape(-1)
  if tious.size == 0 or not np.all(np.isfinite(tious)):
    raise ValueError(f'tious must be a non-empty list of finite thresholds, got {tious}')
  if len(gt) == 0:
    raise ValueError('ground truth is empty: mAP is undefined without classes')

  # Classes, videos and (class, video) groups come from the GT; GT slots are sorted by group and
  # keep input order inside a group (it breaks ties between equal IoUs).
  class_ids, gt_class = np.unique(gt.labels, return_inverse=True)
  videos, gt_video = np.unique(gt.video_ids, return_inverse=True)
  gt_key = gt_class.astype(np.int64) * len(videos) + gt_video
  slot_order = np.argsort(gt_key, kind='stable')
  group_keys, gt_group, group_size = np.unique(
    gt_key[slot_order], return_inverse=True, return_counts=True
  )
  group_first = np.cumsum(group_size) - group_size
  gt_starts, gt_ends = gt.starts[slot_order], gt.ends[slot_order]
  npos = np.bincount(gt_class, minlength=len(class_ids)).astype(np.float64)

  # Predictions of GT classes, class-major, then stable descending score (lexsort is stable).
  cls = np.searchsorted(class_ids, preds.labels).clip(0, len(class_ids) - 1)
  kept = np.flatnonzero(class_ids[cls] == preds.labels)
  kept = kept[np.lexsort((-preds.scores[kept], cls[kept]))]
  p_class = cls[kept]
  vid = np.searchsorted(videos, preds.video_ids[kept]).clip(0, len(videos) - 1)
  key = p_class.astype(np.int64) * len(videos) + vid
  grp = np.searchsorted(group_keys, key).clip(0, len(group_keys) - 1)
  has_group = (videos[vid] == preds.video_ids[kept]) & (group_keys[grp] == key)
  in_group = kept[has_group]  # Predictions outside every group are FP at every threshold.
  grp = grp[has_group]

  count = group_size[grp]
  pred = np.repeat(np.arange(len(in_group)), count)
  first = np.cumsum(count) - count
  slot = group_first[grp][pred] + np.arange(len(pred)) - first[pred]
  ps, pe = preds.starts[in_group][pred], preds.ends[in_group][pred]
  gs, ge = gt_starts[slot], gt_ends[slot]
  inter = (np.minimum(pe, ge) - np.maximum(ps, gs)).clip(0)
  with np.errstate(divide='ignore', invalid='ignore'):
    iou = inter / ((ge - gs) + (pe - ps) - inter)  # The reference's operation order.
  pairs = _Pairs(pred=pred, slot=slot, first=first, count=count, iou=iou)

  recall_topk = tuple(int(k) for k in recall_topk)
  rank_in_group = _rank_within_runs(grp)  # Score rank among the group's predictions.
  recall = _topkx_recall(pairs, rank_in_group, gt_class[slot_order], npos, tious, recall_topk)
  tp = np.zeros((len(tious), len(kept)), dtype=bool)
  tp[:, np.flatnonzero(has_group)] = _true_positives(pairs, grp, gt_group, tious)

  bounds = np.searchsorted(p_class, np.arange(len(class_ids) + 1))
  return Matching(tious, class_ids, npos, tp, bounds, recall, recall_topk)


def compute_map(
  gt: GroundTruth,
  preds: Predictions,
  tious: Sequence[float],
  *,
  class_names: Sequence[str] | None = None,
  recall_topk: Sequence[int] = (1, 5),
) -> MAPResult:
  """Per-class AP at each tIoU threshold, mAP and ActionFormer's Recall@kx.

  Semantics are ActivityNet's `compute_average_precision_detection` (= ActionFormer's), see
  docs/reference-eval-nms.md §4, with these choices where the references are ill-defined:
  * Ties: predictions of a class are ordered by a stable descending sort of the score (equal
    scores keep input order, earlier first), and a prediction's candidate GT by descending IoU
    with NaN first and equal IoU in input order. The references' unstable `argsort()[::-1]` makes
    tie order platform-dependent; on tie-free inputs results agree with them bit for bit.
  * Predictions whose label has no GT in `gt` are ignored: they count nowhere (ActivityNet raises
    KeyError, ActionFormer mis-assigns them to another class).
  * Classes are the labels present in `gt`; a class without predictions has AP 0.
  * IoU is float64 without epsilon; two zero-length segments have IoU NaN, which the reference
    treats as passing every threshold, and so do we.

  Args:
    gt: ground truth of the evaluated subset (non-empty).
    preds: detections; videos or labels absent from `gt` are allowed.
    tious: tIoU thresholds [T], e.g. `TIOU_PRESETS['activitynet']`.
    class_names: names indexed by label id, stored in the result for reports.
    recall_topk: the k of Recall@kx.

  Returns:
    A MAPResult; mAP averages over classes, `average_map` over thresholds.
  """
  m = match_detections(gt, preds, tious, recall_topk=recall_topk)
  tious, class_ids, npos, recall, recall_topk = (
    m.tious,
    m.class_ids,
    m.npos,
    m.recall,
    m.recall_topk,
  )
  ap = np.zeros((len(tious), len(class_ids)))
  for c in range(len(class_ids)):
    if m.bounds[c + 1] > m.bounds[c]:
      ap[:, c] = _interpolated_ap(m.class_tp(c), npos[c])
  mean_ap = ap.mean(axis=1)
  mean_recall = recall.mean(axis=2)
  return MAPResult(
    tious=tious,
    map=mean_ap,
    average_map=float(mean_ap.mean()),
    per_class_ap=np.ascontiguousarray(ap.T),
    class_ids=class_ids,
    recall={k: mean_recall[:, i] for i, k in enumerate(recall_topk)},
    class_names=None if class_names is None else tuple(class_names[int(c)] for c in class_ids),
  )
