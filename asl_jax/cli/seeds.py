r"""asl-seeds: one config trained with N seeds in sequence; mAP as mean ± std per tIoU and average.

  python -m asl_jax.cli.seeds --config=thumos14_i3d.py --workdir=workdirs/thumos14_seeds \
      --seeds=1,2,3 [--config.train.num_epochs=...] [--collect_only]

Seed N trains in ``WORKDIR/seedN`` (finished seeds are not run again, an interrupted one resumes);
the summary goes to ``WORKDIR/seeds.md`` and ``WORKDIR/seeds.json`` and is printed. On a slice,
start the seeds as separate jobs with the same workdirs (``launch/sweep.py --seeds``) and summarize
with ``--collect_only``. Statistics: :mod:`asl_jax.train.seeds`.
"""

from __future__ import annotations

from absl import flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_CONFIG = cli_flags.define_config()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Root of the runs: WORKDIR/seed<N>.')
_SEEDS = flags.DEFINE_list('seeds', ['1', '2', '3'], 'Seeds, comma-separated.')
_WEIGHTS = flags.DEFINE_enum('weights', 'ema', ['ema', 'raw'], 'Which weights to summarize.')
_COLLECT_ONLY = flags.DEFINE_bool(
  'collect_only', False, 'Only summarize the runs already finished under --workdir.'
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.errors import UserError
  from asl_jax.train import seeds

  try:
    numbers = [int(s) for s in _SEEDS.value]
  except ValueError as e:
    raise UserError(f'--seeds must be integers, got {_SEEDS.value}') from e
  summary = seeds.run_seeds(
    _CONFIG.value,
    _WORKDIR.value,
    numbers,
    weights=_WEIGHTS.value,
    train=not _COLLECT_ONLY.value,
  )
  print(seeds.format_table(summary))


def run() -> None:
  common.run(main, hugepages=True)


if __name__ == '__main__':
  run()
