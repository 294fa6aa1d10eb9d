r"""asl-export: a training workdir -> an inference bundle (weights, config, StableHLO detector).

  asl-export --workdir=workdirs/demo --out=bundles/demo \
      [--lengths=384,768] [--platforms=cpu,cuda,tpu] [--use_raw_weights] [--config=...]

The bundle's layout and how to load it with jax alone: :mod:`asl_jax.export`.
"""

from __future__ import annotations

from absl import flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir (config.json, checkpoints/).')
_CONFIG = cli_flags.define_config(
  help_string='Config the run was trained with (default: the workdir config.json).'
)
_OUT = flags.DEFINE_string('out', None, 'New folder for the bundle.')
_LENGTHS = flags.DEFINE_list(
  'lengths', None, 'Padded lengths to export (multiples of max_seq_len; default 1x and 2x).'
)
_PLATFORMS = flags.DEFINE_list(
  'platforms', ['cpu', 'cuda', 'tpu'], 'Platforms the StableHLO is lowered for.'
)
_USE_RAW_WEIGHTS = flags.DEFINE_bool('use_raw_weights', False, 'Raw weights instead of EMA.')
flags.mark_flags_as_required(['workdir', 'out'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax import export

  out = export.export_bundle(
    _WORKDIR.value,
    _OUT.value,
    config=_CONFIG.value,
    lengths=[int(n) for n in _LENGTHS.value] if _LENGTHS.value else None,
    platforms=_PLATFORMS.value or None,
    use_raw_weights=_USE_RAW_WEIGHTS.value,
  )
  manifest = export.read_manifest(out)
  print(
    f'bundle of step {manifest["source"]["step"]} -> {out} '
    f'(lengths {sorted(map(int, manifest["exported"]))}, platforms {manifest["platforms"]})'
  )


def run() -> None:
  common.run(main)


if __name__ == '__main__':
  run()
