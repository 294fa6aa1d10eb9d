"""Evaluation split over processes: each detects its share of the videos, then all gather.

With one process this is :func:`asl_jax.evaluation.evaluator.evaluate`. With ``N`` processes each
runs the detector on every ``N``-th video (in the order one process would batch them: by padded
length, so the shares cost about the same) with its own copy of the replicated weights on one
local device, so nothing waits on the other processes until the gather. The detections travel as
pickled bytes (float64 seconds bit for bit), are put back in the one-process order, and every
process computes the same mAP from them: ``detections.json`` (written by process 0) and the mAP
equal a one-process evaluation, and every process takes the same best-checkpoint decision.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from asl_jax.data import pipeline
from asl_jax.evaluation import evaluator as evaluator_lib
from asl_jax.evaluation import metrics as metrics_lib


def detection_order(videos: Sequence[pipeline.Video], max_seq_len: int) -> list[int]:
  """Indices of ``videos`` in the order one process detects (and writes) them."""
  lengths = [pipeline.eval_length(len(v.feats), max_seq_len) for v in videos]
  return sorted(range(len(videos)), key=lambda i: (lengths[i], i))


def shard(
  videos: Sequence[pipeline.Video], max_seq_len: int, process_index: int, process_count: int
) -> list[pipeline.Video]:
  """This process's share: every ``process_count``-th video of :func:`detection_order`."""
  order = detection_order(videos, max_seq_len)
  return [videos[i] for i in order[process_index::process_count]]


def local_copy(params):
  """A replicated global tree as this process's own single-device copy (no cross-host work)."""

  def local(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x.addressable_data(0)
    return x

  return jax.tree.map(local, params)


def gather(local: dict) -> list[dict]:
  """Every process's ``local`` picklable dict, in process order, on every process."""
  payload = np.frombuffer(pickle.dumps(local, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.int32(payload.size))).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[: payload.size] = payload
  gathered = np.asarray(multihost_utils.process_allgather(padded))
  return [pickle.loads(gathered[p, : sizes[p]].tobytes()) for p in range(len(sizes))]


def evaluate(
  detector: evaluator_lib.Detector,
  params,
  videos: Sequence[pipeline.Video],
  *,
  tious: Sequence[float],
) -> tuple[dict, metrics_lib.MAPResult]:
  """Detections of every video (one-process order) and their mAP, on every process."""
  count = jax.process_count()
  if count == 1:
    return evaluator_lib.evaluate(detector, params, videos, tious=tious)
  mine = shard(videos, detector.max_seq_len, jax.process_index(), count)
  found: dict = {}
  for part in gather(detector.detect(local_copy(params), mine)):
    found.update(part)
  order = detection_order(videos, detector.max_seq_len)
  detections = {videos[i].video_id: found[videos[i].video_id] for i in order}
  ground_truth = evaluator_lib.ground_truth_of(videos)
  result = metrics_lib.compute_map(ground_truth, evaluator_lib.predictions_of(detections), tious)
  return detections, result
