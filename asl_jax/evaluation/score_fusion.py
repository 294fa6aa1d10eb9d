"""ActivityNet-style fusion of detections with an external video-level classifier's scores.

The ActionFormer / ASL ActivityNet protocol (reference ``libs/utils/postprocessing.py``,
``postprocess_results``) ignores the detector's own labels: per video it keeps the ``num_pred``
best detections, takes the ``top_k_classes`` best classes of an external classifier (e.g. the
CUHK ``cuhk_val_simp_share.json`` scores) and emits every kept segment once per such class with
score ``sqrt(class_score * detection_score)``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import numpy as np

_ANET_PREFIX = 'v_'  # ActivityNet's YouTube ids are written with and without it.


def fuse_video_scores(
  detections_for_video: Mapping[str, np.ndarray],
  class_scores,
  *,
  top_k_classes: int = 2,
  num_pred: int = 200,
) -> dict[str, np.ndarray]:
  """One video's detections relabelled by the external classifier (reference semantics).

  Keeps the ``num_pred`` best detections (stable descending score), takes the ``top_k_classes``
  best classes (stable descending: equal class scores keep the lower index first; the reference's
  ``argsort()[::-1]`` leaves ties platform-dependent) and outputs ``top_k_classes * D`` rows,
  class-major as the reference: all kept segments with the best class, then with the second...
  Each row's score is ``sqrt(class_score * detection_score)``; its label is the class index.

  Args:
    detections_for_video: ``segments`` [D, 2] (seconds), ``scores`` [D], ``labels`` [D] (the
      detector's labels, discarded), e.g. one entry of ``Detector.detect``.
    class_scores: [K] non-negative video-level class scores.
    top_k_classes: classes per video (the reference's ``topk``, 2).
    num_pred: detections kept per video before duplication (the reference's 200).

  Returns:
    dict of ``segments`` [M, 2] float64, ``scores`` [M] float64 and ``labels`` [M] int64, with
    ``M = min(top_k_classes, K) * min(num_pred, D)``.
  """
  if top_k_classes < 1 or num_pred < 1:
    raise ValueError(f'top_k_classes and num_pred must be >= 1, got {top_k_classes}, {num_pred}')
  cls = np.asarray(class_scores, np.float64).reshape(-1)
  if cls.size == 0 or not np.all(np.isfinite(cls)) or (cls < 0).any():
    raise ValueError(f'class scores must be a non-empty vector of finite values >= 0, got {cls}')
  segments = np.asarray(detections_for_video['segments'], np.float64).reshape(-1, 2)
  scores = np.asarray(detections_for_video['scores'], np.float64).reshape(-1)
  if scores.shape[0] != segments.shape[0]:
    raise ValueError(f'{segments.shape[0]} segments but {scores.shape[0]} scores')
  if not np.all(np.isfinite(scores)) or (scores < 0).any():
    raise ValueError('detection scores must be finite and >= 0')
  keep = np.argsort(-scores, kind='stable')[:num_pred]
  top = np.argsort(-cls, kind='stable')[:top_k_classes]
  return {
    'segments': np.tile(segments[keep], (len(top), 1)),
    'scores': np.sqrt(cls[top][:, None] * scores[keep][None, :]).reshape(-1),
    'labels': np.repeat(top.astype(np.int64), len(keep)),
  }


def fuse_scores(
  detections: Mapping[str, Mapping[str, np.ndarray]],
  external_scores: Mapping[str, np.ndarray],
  *,
  top_k_classes: int = 2,
  num_pred: int = 200,
) -> dict[str, dict[str, np.ndarray]]:
  """:func:`fuse_video_scores` for every video; a video without external scores is an error."""
  return {
    vid: fuse_video_scores(
      det,
      video_scores(external_scores, vid),
      top_k_classes=top_k_classes,
      num_pred=num_pred,
    )
    for vid, det in detections.items()
  }


def video_scores(external_scores: Mapping[str, np.ndarray], video_id: str) -> np.ndarray:
  """The scores of ``video_id``, also found when only one side carries ActivityNet's 'v_'."""
  candidates = [video_id]
  if video_id.startswith(_ANET_PREFIX):
    candidates.append(video_id[len(_ANET_PREFIX) :])
  else:
    candidates.append(_ANET_PREFIX + video_id)
  for key in candidates:
    if key in external_scores:
      return external_scores[key]
  raise KeyError(
    f'no external class scores for video {video_id!r} (also tried {candidates[1]!r}); '
    f'{len(external_scores)} videos have scores'
  )


def load_external_scores(
  path: str | os.PathLike, *, num_classes: int | None = None
) -> dict[str, np.ndarray]:
  """Reads ``{"results": {video_id: [K floats]}}`` (or the bare mapping) as float64 vectors.

  Every vector must have the same length ``K`` (``num_classes`` if given) and finite, non-negative
  values; errors name the file and the video.
  """
  source = os.fspath(path)
  with open(source) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{source}: not valid JSON ({e})') from e
  if isinstance(data, dict) and isinstance(data.get('results'), dict):
    data = data['results']
  if not isinstance(data, dict) or not data:
    raise ValueError(f'{source}: expected {{"results": {{video_id: [K scores]}}}}')
  out = {}
  for vid, values in data.items():
    where = f'{source}: video {vid!r}'
    if not isinstance(values, list) or not all(
      isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
      raise ValueError(f'{where}: expected a list of numbers')
    vec = np.asarray(values, np.float64)
    if not all(math.isfinite(v) and v >= 0 for v in values):
      raise ValueError(f'{where}: class scores must be finite and >= 0')
    if num_classes is None:
      num_classes = len(vec)
    if len(vec) != num_classes or num_classes == 0:
      raise ValueError(f'{where}: {len(vec)} class scores, expected {num_classes}')
    out[str(vid)] = vec
  return out
