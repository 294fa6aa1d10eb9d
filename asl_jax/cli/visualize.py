r"""asl-visualize: figures of a training workdir (sensitivities, Gaussians, PR curves, timelines).

  asl-visualize --workdir=workdirs/demo [--video=VIDEO_ID ...] [--out=DIR] [--max_videos=3] \
      [--use_raw_weights] [--config=...]

What each figure shows: :mod:`asl_jax.visualization.report`.
"""

from __future__ import annotations

from absl import flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir.')
_CONFIG = cli_flags.define_config(
  help_string='Config of the run (default: the workdir config.json).'
)
_VIDEO = flags.DEFINE_multi_string('video', [], 'Video id for the per-video figures.')
_OUT = flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/figures).')
_MAX_VIDEOS = flags.DEFINE_integer('max_videos', 3, 'Videos shown when --video is not given.')
_USE_RAW_WEIGHTS = flags.DEFINE_bool('use_raw_weights', False, 'Raw weights instead of EMA.')
flags.mark_flags_as_required(['workdir'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.visualization import report

  paths = report.visualize_workdir(
    _WORKDIR.value,
    config=_CONFIG.value,
    video_ids=_VIDEO.value,
    out_dir=_OUT.value,
    max_videos=_MAX_VIDEOS.value,
    use_raw_weights=_USE_RAW_WEIGHTS.value,
  )
  print('\n'.join(str(p) for p in paths))


def run() -> None:
  common.run(main, hugepages=True)


if __name__ == '__main__':
  run()
