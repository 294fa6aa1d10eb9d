"""Soft-NMS for a padded batch of videos: jitted, fixed shapes, same results as ``nms.soft_nms``."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from asl_jax.ops.nms_common import AREA_EPS, check_args

# Slots per block. Each class owns whole blocks, so per-class reductions are dense block
# reductions plus a [classes, blocks] one. At most 32: a block's mask is packed into a uint32 to
# count ranks. 32 measured faster than 16 or 64 at N=2000, K=20.
_BLOCK = 32

# Per video, the valid candidates are laid out in "slots", class after class (ascending), each
# class in its input order (hard: by descending score) and starting on a block boundary. Within
# a class the slots play the role of the C++ arrays: `cur` is its loop index `i`, `end` its count
# `n`, and the swap-with-max / copy-last-into-dropped moves are done on the slots. Every class
# advances one selection per loop step, so a step costs O(slots), not O(classes * slots).


class _Layout(NamedTuple):
  """Where each class of each video lives on the slots; fixed during the loop."""

  block_group: jax.Array  # [B, nb] int32: b * (K + 1) + class owning the block (K: unused)
  onehot: jax.Array  # [B, K, nb] bool: the block belongs to the class
  first_block: jax.Array  # [B, K] int32
  start: jax.Array  # [B, K] int32: first slot of each class


class _State(NamedTuple):
  # x1, x2, score and input index (float32, exact below 2**24) of each slot, each [B, nb, G].
  rows: tuple[jax.Array, jax.Array, jax.Array, jax.Array]
  cur: jax.Array  # [B, K] int32: slot of the next selection (the C++ `i`)
  end: jax.Array  # [B, K] int32: one past the last live slot (the C++ `n`)
  busy: jax.Array  # [] bool: the last step selected something


def _per_block(layout: _Layout, fill, *values: jax.Array) -> list[jax.Array]:
  """Per-class [B, K] values (one dtype) -> per-block [B, nb, 1], ``fill`` on unused blocks."""
  v = jnp.stack(values, axis=-1)
  v = jnp.concatenate([v, jnp.full(v[:, :1].shape, fill, v.dtype)], axis=1)
  v = v.reshape(-1, len(values))[layout.block_group]
  return [v[..., j : j + 1] for j in range(len(values))]


def _first(mask: jax.Array, index: jax.Array) -> jax.Array:
  """Smallest ``index`` where ``mask`` holds, along the last axis (int32 max if none).

  Used instead of argmax, which XLA's CPU backend runs as a slow variadic reduction.
  """
  return jnp.min(jnp.where(mask, index, jnp.iinfo(jnp.int32).max), axis=-1)


def _class_sum(mask: jax.Array, layout: _Layout) -> jax.Array:
  """[B, nb, G] bool -> [B, K] int32 count per class."""
  per_block = jnp.sum(mask, axis=2, dtype=jnp.int32)
  return jnp.sum(jnp.where(layout.onehot, per_block[:, None, :], 0), axis=2)


def _ranks(mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-video inclusive cumsum over the slots of a [B, nb, G] mask.

  Within a block it is a popcount of the block's bits up to each slot; across blocks a small
  triangular matmul (XLA's CPU cumsum is a reduce-window, ~25x slower here).

  Returns:
    The inclusive counts [B, nb, G], the count before each block [B, nb], the total [B] (int32).
  """
  nb, g = mask.shape[1:]
  bit = jnp.arange(g, dtype=jnp.uint32)
  words = jnp.sum(mask.astype(jnp.uint32) << bit, axis=-1, dtype=jnp.uint32)
  within = jax.lax.population_count(words[..., None] & ((jnp.uint32(2) << bit) - 1))
  per_block = jax.lax.population_count(words).astype(jnp.int32)
  upper = jnp.triu(jnp.ones((nb, nb), jnp.float32), 1)
  before = jnp.matmul(
    per_block.astype(jnp.float32), upper, precision=jax.lax.Precision.HIGHEST
  ).astype(jnp.int32)
  return within.astype(jnp.int32) + before[..., None], before, jnp.sum(per_block, axis=1)


def _layout_one(segs, scores, labels, valid, *, num_groups, multiclass, hard, min_score, nb):
  """Places one video's valid candidates on slots, class after class, each on whole blocks."""
  n = scores.shape[0]
  k, g = num_groups, _BLOCK
  group = labels.astype(jnp.int32) if multiclass else jnp.zeros((n,), jnp.int32)
  ok = valid & (group >= 0) & (group < k)
  if hard and min_score > 0:
    ok &= scores > min_score
  group = jnp.where(ok, group, k)
  iota = jnp.arange(n, dtype=jnp.int32)
  if hard:  # greedy NMS visits rows by descending score; a stable sort breaks ties by index
    group_sorted, _, order = jax.lax.sort((group, 0.0 - scores, iota), num_keys=2, is_stable=True)
  else:
    group_sorted, order = jax.lax.sort((group, iota), num_keys=1, is_stable=True)
  counts = jnp.zeros((k + 1,), jnp.int32).at[group].add(1)[:k]
  blocks = (counts + g - 1) // g
  block_end = jnp.cumsum(blocks)
  first_block = block_end - blocks
  first_row = jnp.cumsum(counts) - counts  # where each class begins in `order`
  pad = lambda v: jnp.concatenate([v, jnp.zeros((1,), jnp.int32)])
  rank = iota - pad(first_row)[group_sorted]
  slot = jnp.where(group_sorted < k, pad(first_block)[group_sorted] * g + rank, nb * g)
  rows = tuple(
    jnp.zeros((nb * g,), jnp.float32).at[slot].set(v, mode='drop').reshape(nb, g)
    for v in (segs[order, 0], segs[order, 1], scores[order], order.astype(jnp.float32))
  )
  block_class = jnp.sum(
    block_end[None, :] <= jnp.arange(nb, dtype=jnp.int32)[:, None], axis=1, dtype=jnp.int32
  )
  onehot = block_class[None, :] == jnp.arange(k, dtype=jnp.int32)[:, None]
  return rows, block_class, onehot, first_block, first_block * g, counts


def _step(state: _State, layout: _Layout, *, hard, max_num, weight, min_score, iou_threshold):
  """One selection for every class of every video that has one left (the C++ outer loop body)."""
  (x1, x2, sc, index), cur, end, _ = state
  b, nb, g = sc.shape
  s = nb * g
  slot = jnp.arange(s, dtype=jnp.int32).reshape(nb, g)
  can = ((cur < end) & (cur - layout.start < max_num)).astype(jnp.int32)
  cur_b, end_b, can_b = _per_block(layout, 0, cur, end, can)
  live = (slot >= cur_b) & (slot < end_b) & (can_b > 0)
  if hard:  # suppressed rows stay in place with score -inf, so live rows keep their sorted order
    live &= sc > -jnp.inf

  # First slot holding the class maximum: per block, then the first block reaching the maximum.
  masked = jnp.where(live, sc, -jnp.inf)
  block_max = jnp.max(masked, axis=2)
  block_arg = _first(masked == block_max[..., None], slot)
  class_blocks = jnp.where(layout.onehot, block_max[:, None, :], -jnp.inf)
  class_max = jnp.max(class_blocks, axis=2)
  active = class_max > -jnp.inf
  best = jnp.minimum(
    _first((class_blocks == class_max[..., None]) & layout.onehot, block_arg[:, None, :]), s - 1
  )

  # Swap slots `cur` and `best` of each active class.
  base = (jnp.arange(b, dtype=jnp.int32) * s)[:, None]
  i_cur, i_best = base + jnp.minimum(cur, s - 1), base + best
  to_cur, to_best = jnp.where(active, i_cur, b * s), jnp.where(active, i_best, b * s)

  def swap(a):
    a = a.reshape(-1)
    at_cur, at_best = a[i_cur], a[i_best]
    a = a.at[to_cur].set(at_best, mode='drop').at[to_best].set(at_cur, mode='drop')
    return a.reshape(b, nb, g), at_best

  (x1, sel_x1), (x2, sel_x2), (sc, _), (index, _) = map(swap, (x1, x2, sc, index))
  (active_b,) = _per_block(layout, 0, active.astype(jnp.int32))
  sel_x1, sel_x2 = _per_block(layout, 0.0, sel_x1, sel_x2)

  # Decay every live slot after `cur` by its IoU with the selected row.
  sweep = (slot > cur_b) & (slot < end_b) & (active_b > 0)
  if hard:
    sweep &= sc > -jnp.inf
  inter = jnp.maximum(jnp.minimum(sel_x2, x2) - jnp.maximum(sel_x1, x1), 0.0)
  ovr = inter / (((sel_x2 - sel_x1) + AREA_EPS + ((x2 - x1) + AREA_EPS)) - inter)
  if hard:
    sc = jnp.where(sweep & (ovr >= iou_threshold), -jnp.inf, sc)
    rows, new_end = (x1, x2, sc, index), end
  else:
    sc = jnp.where(sweep, sc * weight(ovr), sc)
    drop = sweep & (sc < min_score)
    kept = sweep & ~drop
    new_end = jnp.where(active, cur + 1 + _class_sum(kept, layout), end)
    rows = jax.lax.cond(
      jnp.any(new_end < end),  # some row was dropped (cheaper than a pass over `drop`)
      functools.partial(_fill_holes_jax, layout=layout, small_capacity=16 * b),
      lambda rows, *_: rows,
      (x1, x2, sc, index),
      drop,
      kept,
      new_end,
    )
  return _State(rows, jnp.where(active, cur + 1, cur), new_end, jnp.any(active))


def _fill_holes_jax(rows, drop, kept, new_end, *, layout, small_capacity):
  """The C++ "copy the last live row into the dropped slot" moves of one sweep, all classes.

  Dropped slots below the class's new end (holes) are filled, in increasing order, by the kept
  slots at or above it (donors) taken from the right. In slot order a class's movers are its
  holes then its donors, as many of each, so the mover of class rank r pairs with the one of
  rank ``2 * holes - 1 - r``. Pairs are numbered across the batch and moved by one small scatter
  per array: few rows move per step, and touching only those is ~3x cheaper than a permutation
  of every slot. The capacity is ``small_capacity`` pairs, or all slots when more rows move.
  """
  b, nb, g = drop.shape
  size = b * nb * g
  slot = jnp.arange(nb * g, dtype=jnp.int32).reshape(nb, g)
  flat_slot = (jnp.arange(b, dtype=jnp.int32) * nb * g)[:, None, None] + slot
  (new_end_b,) = _per_block(layout, 0, new_end)
  hole, donor = drop & (slot < new_end_b), kept & (slot >= new_end_b)
  rank, before_block, movers = _ranks(hole | donor)
  before_video = jnp.cumsum(movers) - movers  # even: every class has as many holes as donors
  before_class = jnp.take_along_axis(before_block, jnp.minimum(layout.first_block, nb - 1), axis=1)
  holes = _class_sum(hole, layout)
  first_pair = (before_video[:, None] + before_class) // 2
  start_b, first_pair_b, holes_b = _per_block(layout, 0, before_class, first_pair, holes)
  r = rank - 1 - start_b
  pair = first_pair_b + jnp.where(hole, r, 2 * holes_b - 1 - r)
  num_pairs = jnp.sum(movers) // 2

  def move(capacity):
    index = jnp.where(hole | donor, 2 * pair + donor, 2 * capacity).reshape(-1)
    ends = jnp.full((2 * capacity,), size, jnp.int32)
    ends = ends.at[index].set(flat_slot.reshape(-1), mode='drop')
    to, source = ends[0::2], jnp.minimum(ends[1::2], size - 1)
    return tuple(
      a.reshape(-1).at[to].set(a.reshape(-1)[source], mode='drop').reshape(a.shape) for a in rows
    )

  small_capacity = min(small_capacity, size // 2)
  return jax.lax.cond(
    num_pairs <= small_capacity,
    lambda: move(small_capacity),
    lambda: move(size // 2),
  )


def _collect(state: _State, layout: _Layout, labels: jax.Array, *, max_seg_num: int):
  """Selected rows of each video, sorted by score (stable), cut and padded to ``max_seg_num``."""
  b, nb, g = state.rows[0].shape
  slot = jnp.arange(nb * g, dtype=jnp.int32).reshape(nb, g)
  start_b, cur_b = _per_block(layout, 0, layout.start, state.cur)
  picked = ((slot >= start_b) & (slot < cur_b)).reshape(b, nb * g)
  all_rows = jnp.stack([a.reshape(b, nb * g) for a in state.rows], axis=-1)
  # Selections sit in slots [start, cur) of their class, classes ascending: a stable sort keeps
  # that order among equal scores. 0 - score makes -0.0 equal to 0.0, as NumPy compares them.
  key = jnp.where(picked, 0.0 - all_rows[..., 2], jnp.inf)
  order = jnp.argsort(key, axis=1, stable=True)[:, :max_seg_num]
  rows = jnp.take_along_axis(all_rows, order[..., None], axis=1)
  valid = jnp.arange(order.shape[1]) < jnp.sum(picked, axis=1, keepdims=True)
  pad = max_seg_num - order.shape[1]
  rows, valid = jnp.pad(rows, ((0, 0), (0, pad), (0, 0))), jnp.pad(valid, ((0, 0), (0, pad)))
  out_labels = jnp.take_along_axis(labels, rows[..., 3].astype(jnp.int32), axis=1)
  return (
    jnp.where(valid[..., None], rows[..., :2], 0.0),
    jnp.where(valid, rows[..., 2], 0.0),
    jnp.where(valid, out_labels.astype(jnp.int32), -1),
    valid,
  )


def _vote(nms_segs, all_segs, all_scores, all_valid, *, thresh):
  """``seg_voting`` over the valid input rows; padded rows carry no weight."""
  all_segs = jnp.where(all_valid[:, None], all_segs, 0.0)
  left = jnp.maximum(nms_segs[:, None, 0], all_segs[None, :, 0])
  right = jnp.minimum(nms_segs[:, None, 1], all_segs[None, :, 1])
  inter = jnp.maximum(right - left, 0.0)
  lens_nms, lens_all = nms_segs[:, 1] - nms_segs[:, 0], all_segs[:, 1] - all_segs[:, 0]
  iou = inter / ((lens_nms[:, None] + lens_all[None, :]) - inter)
  w = jnp.where(all_valid[None, :], (iou >= thresh).astype(jnp.float32) * all_scores * iou, 0.0)
  w = w / jnp.sum(w, axis=1, keepdims=True)
  return jnp.matmul(w, all_segs, precision=jax.lax.Precision.HIGHEST)


@functools.partial(
  jax.jit,
  static_argnames=(
    'num_classes',
    'sigma',
    'min_score',
    'max_seg_num',
    'multiclass',
    'voting_thresh',
    'iou_threshold',
    'method',
  ),
)
def batched_soft_nms(
  segments: jax.Array,
  scores: jax.Array,
  labels: jax.Array,
  valid: jax.Array,
  *,
  num_classes: int,
  sigma: float,
  min_score: float,
  max_seg_num: int,
  multiclass: bool,
  voting_thresh: float,
  iou_threshold: float,
  method: str,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """:func:`soft_nms` for a padded batch of videos, jitted, fixed shapes (one compile per B, N).

  Same selections, order and semantics as :func:`soft_nms` (including the stable final sort and
  the C++ tie-breaking); scores agree to about 1 ulp per decay, as XLA's ``exp`` is not glibc's.
  Keyword arguments are static, so this can be called inside another jit. A ``while_loop`` runs
  until every class of every video has made its selections (at most ``max_seg_num`` steps); each
  step advances all classes of all videos at once and costs O(B * (N + 32 * num_classes)).

  Voting (class-agnostic, ``voting_thresh > 0``) behaves as the reference where :func:`soft_nms`
  refuses: a kept zero-length segment gets NaN coordinates (0/0 IoU with itself), as does a kept
  row whose overlapping inputs all have score 0.

  Args:
    segments: [B, N, 2] float (start, end), finite where valid.
    scores: [B, N] float, finite where valid.
    labels: [B, N] int in ``[0, num_classes)``; valid rows with other labels are ignored.
    valid: [B, N] bool, the real candidates.
    num_classes: the number of classes (static; sizes the per-class state).
    sigma, min_score, max_seg_num, multiclass, voting_thresh, iou_threshold, method: as
      :func:`soft_nms`.

  Returns:
    segments [B, M, 2] float32, scores [B, M] float32, labels [B, M] int32 and valid [B, M] bool,
    ``M = max_seg_num``; rows past each video's count are zero with label -1.
  """
  check_args(method, max_seg_num)
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1, got {num_classes}')
  b, n = scores.shape
  if segments.shape != (b, n, 2) or labels.shape != (b, n) or valid.shape != (b, n):
    raise ValueError(
      f'expected segments [B, N, 2], scores/labels/valid [B, N]; got {segments.shape}, '
      f'{scores.shape}, {labels.shape}, {valid.shape}'
    )
  if n >= 2**24:
    raise ValueError(f'at most 2**24 - 1 candidates per video (float32 row ids), got {n}')
  segments = segments.astype(jnp.float32)
  scores = scores.astype(jnp.float32)
  valid = valid.astype(bool)
  hard = method == 'hard'
  num_groups = num_classes if multiclass else 1
  nb = -(-n // _BLOCK) + num_groups  # every class wastes less than one block
  rows, block_class, onehot, first_block, start, counts = jax.vmap(
    functools.partial(
      _layout_one,
      num_groups=num_groups,
      multiclass=multiclass,
      hard=hard,
      min_score=min_score,
      nb=nb,
    )
  )(segments, scores, labels, valid)
  block_group = block_class + (jnp.arange(b, dtype=jnp.int32) * (num_groups + 1))[:, None]
  layout = _Layout(block_group, onehot, first_block, start)

  if method == 'gaussian':
    weight = lambda ovr: jnp.exp(-(ovr * ovr) / jnp.float32(sigma))
  else:
    weight = lambda ovr: jnp.where(ovr >= jnp.float32(iou_threshold), 1.0 - ovr, 1.0)
  step = functools.partial(
    _step,
    hard=hard,
    max_num=max_seg_num,
    weight=weight,
    min_score=jnp.float32(min_score),
    iou_threshold=jnp.float32(iou_threshold),
  )
  state = _State(rows, start, start + counts, jnp.any(valid))
  state = jax.lax.while_loop(lambda st: st.busy, lambda st: step(st, layout), state)
  out = _collect(state, layout, labels, max_seg_num=max_seg_num)
  if not multiclass and voting_thresh > 0:
    voted = jax.vmap(functools.partial(_vote, thresh=jnp.float32(voting_thresh)))(
      out[0], segments, scores, valid
    )
    out = (jnp.where(out[3][..., None], voted, 0.0), *out[1:])
  return out
