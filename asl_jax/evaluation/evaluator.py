"""Runs the detector over every evaluation video, returns detections in seconds and their mAP."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np
from etils import epath

from asl_jax.data import pipeline
from asl_jax.evaluation import metrics as metrics_lib
from asl_jax.evaluation import postprocess
from asl_jax.ops import nms as nms_ops
from asl_jax.ops import segments as seg_ops


@dataclasses.dataclass(frozen=True)
class NMSConfig:
  """Soft-NMS settings (static under jit); the values live in ``configs/base.py`` (``test.*``)."""

  method: str
  sigma: float
  iou_threshold: float
  min_score: float
  max_seg_num: int
  multiclass: bool
  voting_thresh: float


class Detector:
  """Features -> detections: forward, candidate selection, batched NMS; jitted per padded length."""

  def __init__(
    self,
    model: nn.Module,
    *,
    num_classes: int,
    regression_ranges: Sequence[tuple[float, float]],
    max_seq_len: int,
    batch_size: int,
    decode: postprocess.DecodeConfig,
    nms: NMSConfig,
  ):
    self.model = model
    self.num_classes = num_classes
    self.regression_ranges = tuple(tuple(r) for r in regression_ranges)
    self.max_seq_len = max_seq_len
    self.batch_size = batch_size
    self.decode = decode
    self.nms = nms
    self._compiled = {}

  def _fn(self, length: int):
    if length not in self._compiled:
      points = seg_ops.make_points(length, self.regression_ranges)
      sizes = seg_ops.level_lengths(length, len(self.regression_ranges))

      def detect(params, feats, mask):
        out = self.model.apply({'params': params}, feats, mask, deterministic=True)
        cand = postprocess.select_candidates(
          out['cls_logits'], out['offsets'], out['mask'], points, sizes, self.decode
        )
        return nms_ops.batched_soft_nms(
          cand['segments'],
          cand['scores'],
          cand['labels'],
          cand['valid'],
          num_classes=self.num_classes,
          sigma=self.nms.sigma,
          min_score=self.nms.min_score,
          max_seg_num=self.nms.max_seg_num,
          multiclass=self.nms.multiclass,
          voting_thresh=self.nms.voting_thresh,
          iou_threshold=self.nms.iou_threshold,
          method=self.nms.method,
        )

      self._compiled[length] = jax.jit(detect)
    return self._compiled[length]

  @property
  def num_compiled(self) -> int:
    return len(self._compiled)

  def detect(self, params, videos: Sequence[pipeline.Video]) -> dict[str, dict[str, np.ndarray]]:
    """Detections per video id: ``segments`` [D, 2] seconds, ``scores`` [D], ``labels`` [D]."""
    results = {}
    for batch in pipeline.eval_batches(
      videos, batch_size=self.batch_size, max_seq_len=self.max_seq_len
    ):
      segs, scores, labels, valid = jax.device_get(
        self._fn(batch.feats.shape[1])(params, batch.feats, batch.mask)
      )
      for row, video in enumerate(batch.videos):
        if video is None:
          continue
        keep = valid[row]
        results[video.video_id] = {
          'segments': postprocess.to_seconds(
            segs[row][keep], video.geometry, video.record.duration
          ),
          'scores': scores[row][keep].astype(np.float64),
          'labels': labels[row][keep].astype(np.int64),
        }
    return results


def ground_truth_of(videos: Sequence[pipeline.Video]) -> metrics_lib.GroundTruth:
  rows = [
    (v.video_id, float(s), float(e), int(lab))
    for v in videos
    for (s, e), lab in zip(v.record.segments_sec, v.record.labels)
  ]
  return metrics_lib.GroundTruth.from_rows(rows)


def predictions_of(detections: dict[str, dict[str, np.ndarray]]) -> metrics_lib.Predictions:
  rows = [
    (vid, float(s), float(e), int(lab), float(sc))
    for vid, det in detections.items()
    for (s, e), lab, sc in zip(det['segments'], det['labels'], det['scores'])
  ]
  return metrics_lib.Predictions.from_rows(rows)


def evaluate(
  detector: Detector,
  params,
  videos: Sequence[pipeline.Video],
  *,
  tious: Sequence[float],
) -> tuple[dict, metrics_lib.MAPResult]:
  detections = detector.detect(params, videos)
  result = metrics_lib.compute_map(ground_truth_of(videos), predictions_of(detections), tious)
  return detections, result


def write_detections(path: str | os.PathLike, detections: dict, class_names: Sequence[str]) -> None:
  """Writes ActivityNet results ``{"results": {vid: [{"segment", "label", "score"}]}}`` (sec)."""
  results = {
    vid: [
      {
        'segment': [round(float(s), 4), round(float(e), 4)],
        'label': class_names[int(lab)],
        'score': float(sc),
      }
      for (s, e), lab, sc in zip(det['segments'], det['labels'], det['scores'])
    ]
    for vid, det in detections.items()
  }
  payload = {'version': 'asl-jax', 'results': results, 'external_data': {}}
  epath.Path(path).write_text(json.dumps(payload))  # Local or gs:// alike.
