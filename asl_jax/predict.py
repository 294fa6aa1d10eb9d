"""Detections for new videos' feature files from a trained checkpoint, in seconds with class names.

python -m asl_jax.predict --config=configs/demo.py --checkpoint=workdirs/demo \
  --features=data/new_videos/ [--features=one_more.npz] [--out=detections.json] \
  [--csv=detections.csv] [--fps=30] [--duration=SECONDS] [--use_raw_weights]

``--checkpoint`` is a training workdir, its ``checkpoints`` folder (latest step) or one step's
folder. The EMA weights are used unless ``--use_raw_weights``. ``--features`` (repeatable) names
``.npy``/``.npz`` files laid out ``[T, C]`` or folders of them; the video id is the file name
without extension (and without ``config.data.feature_prefix``). Without ``--fps`` the config's
``data.default_fps`` is used, else 30. Without ``--duration`` each video lasts until the end of its
last feature window, ``((T - 1) * feat_stride + num_frames) / fps``. Writes the ActivityNet results
JSON ``{"results": {video_id: [{"segment", "label", "score"}]}}`` and, with ``--csv``, rows
``video_id,start,end,label,score``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import os
import pathlib
import types
from collections.abc import Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from etils import epath  # noqa: E402

from asl_jax import configuration  # noqa: E402
from asl_jax.data import annotations as annotations_lib  # noqa: E402
from asl_jax.data import features as features_lib  # noqa: E402
from asl_jax.data import pipeline  # noqa: E402
from asl_jax.data.geometry import FeatureGeometry  # noqa: E402
from asl_jax.data.records import VideoRecord  # noqa: E402
from asl_jax.evaluation import evaluator as evaluator_lib  # noqa: E402
from asl_jax.evaluation import score_fusion  # noqa: E402
from asl_jax.model.build import build_model  # noqa: E402
from asl_jax.train import checkpoint as checkpoint_lib  # noqa: E402
from asl_jax.train import loop  # noqa: E402 - the Detector's settings live with the loop

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


# ----------------------------------------------------------------------------------------------
# Checkpoint.


def resolve_checkpoint(path: str | os.PathLike) -> tuple[epath.Path, int]:
  """A workdir, its ``checkpoints`` folder or one step's folder -> (checkpoints folder, step).

  Local folders and buckets (``gs://...``) alike: the path is an ``etils.epath`` path.
  """
  path = checkpoint_lib.absolute_path(path)
  if not path.is_dir():
    raise FileNotFoundError(f'checkpoint {path} is not a directory')
  if path.name.isdigit() and (path / 'state').is_dir():
    return path.parent, int(path.name)
  directory = path / 'checkpoints' if (path / 'checkpoints').is_dir() else path
  steps = sorted(
    int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / 'state').is_dir()
  )
  if not steps:
    raise FileNotFoundError(
      f'no checkpoint under {path}: expected a workdir, its checkpoints/ folder or a step folder'
    )
  return directory, steps[-1]


def restore_params(checkpoint: str | os.PathLike, template, *, use_raw_weights: bool = False):
  """Restores the EMA (or raw) parameters of a training checkpoint onto the default device.

  The checkpoint's metadata is checked against ``template`` (``model.init`` output or its
  ``jax.eval_shape``) first: a different structure or shape means the config does not describe
  the checkpoint's model. Then only that subtree is read, laid out as the template; should that
  fail, the whole state is read as saved and the subtree taken from it.
  """
  directory, step = resolve_checkpoint(checkpoint)
  key = 'params' if use_raw_weights else 'ema_params'
  where = f'{directory}/{step}'
  with _manager(directory) as manager:
    saved = manager.item_metadata(step)['state']
    saved = getattr(saved, 'tree', saved)
    if not isinstance(saved, dict) or key not in saved:
      raise KeyError(f'checkpoint {where} has no {key!r} in its state')
    _check_same_tree(saved[key], template, where)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = {
      key: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), template)
    }
    args = ocp.args.PyTreeRestore(
      item=abstract,
      restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
      partial_restore=True,
    )
    try:
      params = manager.restore(step, args=ocp.args.Composite(state=args))['state'][key]
    except Exception as e:  # noqa: BLE001 - any failure falls back to the raw read below
      logger.warning('restoring %r onto the template failed (%s); reading it as saved', key, e)
      params = None
  if params is None:
    with _manager(directory) as manager:
      raw = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))
      params = raw['state'][key]
  _check_same_tree(params, template, where)
  logger.info('restored %s from %s', key, where)
  return jax.tree.map(jnp.asarray, params)


@contextlib.contextmanager
def _manager(directory: epath.Path):
  """A reading manager (a fresh one per attempt: a failed restore can leave it unusable)."""
  manager = ocp.CheckpointManager(
    directory,
    item_handlers={'state': ocp.PyTreeCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()},
    options=ocp.CheckpointManagerOptions(create=False),
  )
  try:
    yield manager
  finally:
    manager.close()


def _check_same_tree(params, template, where: str) -> None:
  got = {
    jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(params)
  }
  want = {
    jax.tree_util.keystr(k): tuple(v.shape)
    for k, v in jax.tree_util.tree_leaves_with_path(template)
  }
  if got != want:
    diff = sorted(
      f'{k}: checkpoint {got.get(k, "missing")}, config {want.get(k, "missing")}'
      for k in set(got) | set(want)
      if got.get(k) != want.get(k)
    )
    raise ValueError(
      f'checkpoint {where} does not match the model the config builds ({len(diff)} '
      'parameters differ):\n  ' + '\n  '.join(diff[:10])
    )


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


def class_names_of(config: ml_collections.ConfigDict) -> list[str]:
  """Names from ``config.data.annotation_file`` when it can be read, else ``class_<i>``."""
  data = config.data
  fallback = [f'class_{i}' for i in range(data.num_classes)]
  if not data.annotation_file or not os.path.isfile(data.annotation_file):
    logger.warning('no annotation file %r: classes are named class_<i>', data.annotation_file)
    return fallback
  try:
    annotations = annotations_lib.load_actionformer_json(
      data.annotation_file,
      default_fps=data.default_fps if data.default_fps > 0 else None,
      num_classes=data.num_classes,
    )
  except ValueError as e:
    logger.warning('cannot read class names (%s): classes are named class_<i>', e)
    return fallback
  return list(annotations.class_names)


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
  params = restore_params(checkpoint, template, use_raw_weights=use_raw_weights)
  detections = loop.build_detector(config, model).detect(params, videos)
  return detections, class_names_of(config)


def write_csv(path: str | os.PathLike, detections: dict, class_names: Sequence[str]) -> None:
  """Rows ``video_id,start,end,label,score`` (seconds), videos in order, scores descending."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['video_id', 'start', 'end', 'label', 'score'])
    for vid, det in detections.items():
      for (s, e), lab, sc in zip(det['segments'], det['labels'], det['scores']):
        writer.writerow([vid, f'{s:.4f}', f'{e:.4f}', class_names[int(lab)], repr(float(sc))])


def _define_flags() -> types.SimpleNamespace:
  """The command-line flags; defined only when run as a program (``asl_jax.main`` has its own)."""
  from absl import flags
  from ml_collections import config_flags

  holders = types.SimpleNamespace(
    config=config_flags.DEFINE_config_file('config', None, 'Config the model was trained with.'),
    checkpoint=flags.DEFINE_string(
      'checkpoint', None, 'Training workdir, its checkpoints/ folder or a step folder.'
    ),
    features=flags.DEFINE_multi_string(
      'features', None, 'A .npy/.npz feature file [T, C] or a folder of them (repeatable).'
    ),
    out=flags.DEFINE_string('out', 'detections.json', 'ActivityNet-format results JSON.'),
    csv=flags.DEFINE_string('csv', None, 'Optional CSV: video_id,start,end,label,score.'),
    fps=flags.DEFINE_float('fps', None, 'Video fps (default: data.default_fps, else 30).'),
    duration=flags.DEFINE_float(
      'duration', None, 'Video duration in seconds (default: end of the last feature window).'
    ),
    use_raw_weights=flags.DEFINE_bool(
      'use_raw_weights', False, 'Use the raw weights instead of their EMA.'
    ),
    external_scores=flags.DEFINE_string(
      'external_scores',
      None,
      'ActivityNet-style fusion: JSON {"results": {video: [K class scores]}} of a video-level '
      'classifier; each detection is relabelled with its top classes (see --external_top_k).',
    ),
    external_class_names=flags.DEFINE_string(
      'external_class_names', None, 'Class-name CSV (header line, one name per line) for fusion.'
    ),
    external_top_k=flags.DEFINE_integer('external_top_k', 2, 'Classes per video in fusion.'),
    external_num_pred=flags.DEFINE_integer(
      'external_num_pred', 200, 'Detections per video kept before fusion.'
    ),
  )
  flags.mark_flags_as_required(['config', 'checkpoint', 'features'])
  return holders


def main(argv, args: types.SimpleNamespace) -> None:
  from absl import app

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.getLogger().setLevel(logging.WARNING)
  logging.getLogger('asl_jax').setLevel(logging.INFO)
  detections, class_names = predict(
    args.config.value,
    args.checkpoint.value,
    args.features.value,
    fps=args.fps.value,
    duration=args.duration.value,
    use_raw_weights=args.use_raw_weights.value,
  )
  if args.external_scores.value:
    if not args.external_class_names.value:
      raise app.UsageError('--external_scores needs --external_class_names')
    class_names = annotations_lib.read_class_names(args.external_class_names.value)
    detections = score_fusion.fuse_scores(
      detections,
      score_fusion.load_external_scores(args.external_scores.value, num_classes=len(class_names)),
      top_k_classes=args.external_top_k.value,
      num_pred=args.external_num_pred.value,
    )
  out, csv_path = args.out.value, args.csv.value
  evaluator_lib.write_detections(out, detections, class_names)
  if csv_path:
    write_csv(csv_path, detections, class_names)
  total = sum(len(d['scores']) for d in detections.values())
  print(
    f'{total} detections for {len(detections)} videos -> {out}'
    + (f' and {csv_path}' if csv_path else '')
  )


if __name__ == '__main__':
  from absl import app

  from asl_jax import hugepages

  hugepages.reexec_with_hugepages()

  app.run(functools.partial(main, args=_define_flags()))
