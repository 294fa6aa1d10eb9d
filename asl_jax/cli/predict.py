r"""asl-predict: detections for new videos' feature files from a training workdir.

  asl-predict --workdir=workdirs/demo --features=data/new_videos/ [--features=one_more.npz] \
      [--out=detections.json] [--csv=detections.csv] [--fps=30] [--duration=SECONDS] \
      [--use_raw_weights] [--config=...]

The workdir alone is enough: the model's config comes from its ``config.json`` and the class names
from its ``class_names.json`` (``--config`` overrides the first). ``--workdir`` may also be its
``checkpoints`` folder or one step's folder; ``--checkpoint`` is the spelling of earlier releases.
Output: the ActivityNet results JSON (seconds, class names) and, with ``--csv``, one row per
detection. ActivityNet-style score fusion with a video-level classifier: ``--external_scores``.
"""

from __future__ import annotations

from absl import app, flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Training workdir, its checkpoints/ folder or a step folder.'
)
flags.DEFINE_alias('checkpoint', 'workdir')
_CONFIG = cli_flags.define_config(
  help_string='Config the model was trained with (default: the workdir config.json).'
)
_FEATURES = flags.DEFINE_multi_string(
  'features', None, 'A .npy/.npz feature file [T, C] or a folder of them (repeatable).'
)
_OUT = flags.DEFINE_string('out', 'detections.json', 'ActivityNet-format results JSON.')
_CSV = flags.DEFINE_string('csv', None, 'Optional CSV: video_id,start,end,label,score.')
_FPS = flags.DEFINE_float('fps', None, 'Video fps (default: data.default_fps, else 30).')
_DURATION = flags.DEFINE_float(
  'duration', None, 'Video duration in seconds (default: end of the last feature window).'
)
_USE_RAW_WEIGHTS = flags.DEFINE_bool(
  'use_raw_weights', False, 'Use the raw weights instead of their EMA.'
)
_EXTERNAL_SCORES = flags.DEFINE_string(
  'external_scores',
  None,
  'ActivityNet-style fusion: JSON {"results": {video: [K class scores]}} of a video-level '
  'classifier; each detection is relabelled with its top classes (see --external_top_k).',
)
_EXTERNAL_CLASS_NAMES = flags.DEFINE_string(
  'external_class_names', None, 'Class-name CSV (header line, one name per line) for fusion.'
)
_EXTERNAL_TOP_K = flags.DEFINE_integer('external_top_k', 2, 'Classes per video in fusion.')
_EXTERNAL_NUM_PRED = flags.DEFINE_integer(
  'external_num_pred', 200, 'Detections per video kept before fusion.'
)
flags.mark_flags_as_required(['workdir', 'features'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax import predict
  from asl_jax import workdir as workdir_lib
  from asl_jax.data import annotations as annotations_lib
  from asl_jax.evaluation import evaluator as evaluator_lib
  from asl_jax.evaluation import score_fusion

  if _EXTERNAL_SCORES.value and not _EXTERNAL_CLASS_NAMES.value:
    raise app.UsageError('--external_scores needs --external_class_names')
  checkpoint = _WORKDIR.value
  config = workdir_lib.read_config(
    workdir_lib.find_workdir(checkpoint) or checkpoint, _CONFIG.value
  )
  detections, class_names = predict.predict(
    config,
    checkpoint,
    _FEATURES.value,
    fps=_FPS.value,
    duration=_DURATION.value,
    use_raw_weights=_USE_RAW_WEIGHTS.value,
  )
  if _EXTERNAL_SCORES.value:
    class_names = annotations_lib.read_class_names(_EXTERNAL_CLASS_NAMES.value)
    detections = score_fusion.fuse_scores(
      detections,
      score_fusion.load_external_scores(_EXTERNAL_SCORES.value, num_classes=len(class_names)),
      top_k_classes=_EXTERNAL_TOP_K.value,
      num_pred=_EXTERNAL_NUM_PRED.value,
    )
  out, csv_path = _OUT.value, _CSV.value
  evaluator_lib.write_detections(out, detections, class_names)
  if csv_path:
    predict.write_csv(csv_path, detections, class_names)
  total = sum(len(d['scores']) for d in detections.values())
  print(
    f'{total} detections for {len(detections)} videos -> {out}'
    + (f' and {csv_path}' if csv_path else '')
  )


def run() -> None:
  common.run(main, hugepages=True)


if __name__ == '__main__':
  run()
