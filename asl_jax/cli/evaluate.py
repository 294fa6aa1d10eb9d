"""asl-evaluate: mAP of an ActivityNet-format results file against a ground-truth file.

  asl-evaluate --gt=FILE --pred=detections.json (--tiou=A:B:N | --tiou_preset=NAME) \
      [--subset=a,b] [--gt_video_info=CSV --gt_action_names=CSV] [--gt_cleaning=none] [--out=J] \
      [--analysis=DIR [--analysis_tiou=0.5]] [--strict]

Ground truth: any file the annotation loaders read (ActivityNet's official file, ActionFormer's,
flat, super-events; BSN's with --gt_video_info). Predictions:
``{"results": {vid: [{"segment": [s, e], "label": name, "score": x}]}}``. How videos, labels,
subsets and GT cleaning are matched: :mod:`asl_jax.evaluation.scoring`. Errors in the inputs print
one message naming the file and video and exit with status 2. ``--analysis`` adds the error
analysis of :mod:`asl_jax.evaluation.analysis` (JSON and a figure). The dashed spellings of earlier
releases (--tiou-preset, --gt-video-info, --gt-action-names, --gt-cleaning) still work.
"""

from __future__ import annotations

import json

from absl import flags

from asl_jax import errors
from asl_jax.cli import common
from asl_jax.evaluation import metrics

_GT = flags.DEFINE_string('gt', None, 'Ground-truth annotation file.')
_PRED = flags.DEFINE_string('pred', None, 'ActivityNet-format results file.')
_SUBSET = flags.DEFINE_string('subset', None, 'Subset(s) to evaluate, comma-separated, any case.')
_TIOU = flags.DEFINE_string('tiou', None, 'tIoU thresholds: A:B:N (np.linspace) or T1,T2,...')
_TIOU_PRESET = flags.DEFINE_enum(
  'tiou_preset', None, sorted(metrics.TIOU_PRESETS), 'A benchmark tIoU preset.'
)
_GT_VIDEO_INFO = flags.DEFINE_string('gt_video_info', None, "BSN's video_info.csv (BSN GT).")
_GT_ACTION_NAMES = flags.DEFINE_string(
  'gt_action_names', None, 'Class names, one per line after a header.'
)
_GT_CLEANING = flags.DEFINE_enum(
  'gt_cleaning', 'none', ['none', 'duplicates', 'full'], 'GT cleaning (see the module doc).'
)
_OUT = flags.DEFINE_string('out', None, 'Write the metrics and counts as JSON here.')
_ANALYSIS = flags.DEFINE_string(
  'analysis',
  None,
  'Also write a DETAD-style error analysis into this folder (error_analysis.json and .png): '
  'false positives by cause, false negatives by length and instances per video.',
)
_STRICT = flags.DEFINE_bool(
  'strict',
  False,
  'Reject a detection with end < start instead of scoring it as a false positive, as the '
  'official ActivityNet evaluator does (the count is printed either way).',
)
_ANALYSIS_TIOU = flags.DEFINE_float('analysis_tiou', 0.5, 'tIoU threshold of the error analysis.')
flags.mark_flags_as_required(['gt', 'pred'])
flags.mark_flags_as_mutual_exclusive(['tiou', 'tiou_preset'], required=True)
for _old, _new in (
  ('tiou-preset', 'tiou_preset'),
  ('gt-video-info', 'gt_video_info'),
  ('gt-action-names', 'gt_action_names'),
  ('gt-cleaning', 'gt_cleaning'),
):
  flags.DEFINE_alias(_old, _new)


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.evaluation import scoring

  try:
    tious = (
      scoring.parse_tious(_TIOU.value)
      if _TIOU.value is not None
      else metrics.TIOU_PRESETS[_TIOU_PRESET.value]
    )
    result, report = scoring.evaluate_files(
      _GT.value,
      _PRED.value,
      tious=tious,
      subset=_SUBSET.value,
      video_info_csv=_GT_VIDEO_INFO.value,
      action_names_csv=_GT_ACTION_NAMES.value,
      gt_cleaning=_GT_CLEANING.value,
      strict=_STRICT.value,
    )
  except ValueError as e:  # The loaders name the file, the video and the field.
    raise errors.UserError(str(e)) from e
  print(result.format_table())
  print(scoring.summary_text(report))
  if _ANALYSIS.value:
    from asl_jax.visualization import error_analysis

    print(
      error_analysis.analyze_files_to(
        _ANALYSIS.value,
        _GT.value,
        _PRED.value,
        tiou=_ANALYSIS_TIOU.value,
        subset=_SUBSET.value,
        video_info_csv=_GT_VIDEO_INFO.value,
        action_names_csv=_GT_ACTION_NAMES.value,
        gt_cleaning=_GT_CLEANING.value,
      )
    )
  if _OUT.value:
    with open(_OUT.value, 'w', encoding='utf-8') as f:
      json.dump(report, f, indent=1)


def run() -> None:
  common.run(main)


if __name__ == '__main__':
  run()
