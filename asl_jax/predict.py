"""Detections for new videos' feature files from a trained checkpoint, in seconds with class names.

:func:`predict` is the ``asl-predict`` command. Its ``checkpoint`` is a training workdir, its
``checkpoints`` folder (latest step) or one step's folder. The EMA weights are used unless
``--use_raw_weights``. ``--features`` (repeatable) names ``.npy``/``.npz`` files laid out ``[T, C]``
or folders of them; the video id is the file name without extension (and without
``config.data.feature_prefix``). Without ``--fps`` the config's ``data.default_fps`` is used, else
30. Without ``--duration`` each video lasts until the end of its last feature window, ``((T - 1) *
feat_stride + num_frames) / fps``. Writes the ActivityNet results JSON ``{"results": {video_id:
[{"segment", "label", "score"}]}}`` and, with ``--csv``, rows ``video_id,start,end,label,score``.
"""

from __future__ import annotations

import csv
import logging
import os
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asl_jax import configuration
from asl_jax import workdir as workdir_lib
from asl_jax.data import features as features_lib
from asl_jax.data import pipeline
from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.records import VideoRecord
from asl_jax.model.build import build_model
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train.build import build_detector

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


# ----------------------------------------------------------------------------------------------
# Inputs.


def find_feature_files(paths: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
  """Files as given, folders expanded to their ``.npy``/``.npz`` files (sorted, not recursive)."""
  files = []
  for p in map(pathlib.Path, paths):
    if p.is_dir():
      found = sorted(
        f
        for f in p.iterdir()
        if f.is_file() and f.suffix.lower() in features_lib.SUPPORTED_EXTENSIONS
      )
      if not found:
        raise FileNotFoundError(f'no {features_lib.SUPPORTED_EXTENSIONS} files in folder {p}')
      files += found
    elif p.is_file():
      files.append(p)
    else:
      raise FileNotFoundError(f'feature path {p} does not exist')
  return files


def video_id_of(path: pathlib.Path, prefix: str = '') -> str:
  stem = path.name[: -len(path.suffix)] if path.suffix else path.name
  return stem[len(prefix) :] if prefix and stem.startswith(prefix) and stem != prefix else stem


def load_videos(
  files: Sequence[pathlib.Path],
  *,
  input_dim: int,
  feat_stride: float,
  num_frames: float,
  fps: float,
  duration: float | None = None,
  prefix: str = '',
) -> list[pipeline.Video]:
  """Feature files -> unlabelled videos ready for :class:`Detector` (no ground truth)."""
  if not fps > 0:
    raise ValueError(f'fps must be positive, got {fps}')
  if duration is not None and not duration > 0:
    raise ValueError(f'duration must be positive, got {duration}')
  geometry = FeatureGeometry(feat_stride=feat_stride, num_frames=num_frames, fps=fps)
  videos, seen = [], {}
  for path in files:
    video_id = video_id_of(path, prefix)
    if video_id in seen:
      raise ValueError(f'video id {video_id!r} comes from both {seen[video_id]} and {path}')
    seen[video_id] = path
    feats = features_lib.load_features(path, expected_dim=input_dim, video_id=video_id)
    if duration is None:
      seconds = ((len(feats) - 1) * feat_stride + num_frames) / fps
    else:
      seconds = duration
    record = VideoRecord(
      video_id=video_id,
      subset='predict',
      duration=float(seconds),
      fps=float(fps),
      segments_sec=np.zeros((0, 2)),
      labels=np.zeros((0,), np.int32),
    )
    videos.append(
      pipeline.Video(record, feats, geometry, np.zeros((0, 2), np.float32), record.labels)
    )
  return videos


# ----------------------------------------------------------------------------------------------
# Prediction and outputs.


def predict(
  config: ml_collections.ConfigDict,
  checkpoint: str | os.PathLike,
  feature_paths: Sequence[str | os.PathLike],
  *,
  fps: float | None = None,
  duration: float | None = None,
  use_raw_weights: bool = False,
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
  """Detections per video id (``Detector.detect`` format, seconds) and the class names."""
  configuration.validate_config(config)
  data = config.data
  if fps is None:
    fps = data.default_fps if data.default_fps > 0 else DEFAULT_FPS
    if data.default_fps <= 0:
      logger.warning('no --fps and config.data.default_fps <= 0: assuming %g fps', fps)
  files = find_feature_files(feature_paths)
  if duration is not None and len(files) > 1:
    logger.warning('--duration=%g applies to all %d videos', duration, len(files))
  videos = load_videos(
    files,
    input_dim=data.input_dim,
    feat_stride=data.feat_stride,
    num_frames=data.num_frames,
    fps=fps,
    duration=duration,
    prefix=data.feature_prefix,
  )
  model = build_model(config)
  length = data.max_seq_len
  template = jax.eval_shape(
    lambda: model.init(
      jax.random.PRNGKey(0),
      jnp.zeros((1, length, data.input_dim), jnp.float32),
      jnp.ones((1, length), bool),
    )['params']
  )
  params, _, _ = checkpoint_lib.restore_params(
    checkpoint, template, use_raw_weights=use_raw_weights
  )
  detections = build_detector(config, model).detect(params, videos)
  return detections, workdir_lib.read_class_names(workdir_lib.find_workdir(checkpoint), config)


def write_csv(path: str | os.PathLike, detections: dict, class_names: Sequence[str]) -> None:
  """Rows ``video_id,start,end,label,score`` (seconds), videos in order, scores descending."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['video_id', 'start', 'end', 'label', 'score'])
    for vid, det in detections.items():
      for (s, e), lab, sc in zip(det['segments'], det['labels'], det['scores']):
        writer.writerow([vid, f'{s:.4f}', f'{e:.4f}', class_names[int(lab)], repr(float(sc))])
