"""Checks a dataset (annotations + features) against a config and prints every problem found.

python -m asl_jax.tools.validate_data --config=configs/custom.py \
    --config.data.annotation_file=... --config.data.feature_dir=... [--all] [--json report.json] \
    [--show_warnings] [--strict]

Any annotation schema the loaders read (ActionFormer / ActivityNet, flat, super-events, BSN with
data.video_info_csv), with the config's label options (label_offset, class_names_file,
class-agnostic BSN when num_classes == 1), feature formats (.npy/.npz/.pt/HDF5, several sets) and
geometry (downsample_rate, force_upsampling). Per video: missing or unreadable feature files,
[C, T] arrays stored instead of [T, C], wrong channel count, NaN/Inf, feature length far from
duration * fps / feat_stride (tolerance: --length_tol of the expected length or --length_tol_steps
steps, whichever is larger), malformed fields, label ids outside [0, num_classes) or names outside
the class list, conflicting label names; for the file: subset names of the config that match no
video, settings that cannot apply, anything the real loader still refuses. Segments the loader
repairs (zero length: dropped; outside [0, duration]: clipped) are warnings, counted under the
table (--show_warnings lists them; --strict makes them problems). Exits 1 when there is any
problem, so it can gate a build or a training job.
"""

import json
import os
import sys
from typing import Any

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from asl_jax.data import storage, validation  # noqa: E402

_FLAGS: dict[str, Any] = {}


def define_tolerance_flags(registry: dict[str, Any]) -> None:
  """The validator's tolerances (shared with build_dataset, which validates first)."""
  registry['length_tol'] = flags.DEFINE_float(
    'length_tol', 0.1, 'Allowed |T - expected| as a fraction of the expected feature length.'
  )
  registry['length_tol_steps'] = flags.DEFINE_float(
    'length_tol_steps', 2.0, 'Allowed |T - expected| in steps (the larger tolerance applies).'
  )
  registry['segment_tol'] = flags.DEFINE_float(
    'segment_tol', 1e-3, 'Seconds a segment may reach outside [0, duration] (rounding).'
  )
  registry['strict'] = flags.DEFINE_bool(
    'strict', False, 'Segments the loader repairs (clips, drops) are problems, not warnings.'
  )


def tolerances(registry: dict[str, Any]) -> dict[str, Any]:
  return {
    'length_tol': registry['length_tol'].value,
    'length_tol_steps': registry['length_tol_steps'].value,
    'segment_tol_sec': registry['segment_tol'].value,
    'strict': registry['strict'].value,
  }


def _define_flags() -> None:
  """Defined only when run as a program, so importing this module never clashes with another
  program's ``--config``."""
  _FLAGS['config'] = config_flags.DEFINE_config_file('config', None, 'Config file (configs/X.py).')
  _FLAGS['all'] = flags.DEFINE_bool('all', False, 'List every video, not only those with problems.')
  _FLAGS['json'] = flags.DEFINE_string('json', None, 'Also write the report as JSON here.')
  _FLAGS['show_warnings'] = flags.DEFINE_bool(
    'show_warnings', False, 'List every warning in the table, not only their counts.'
  )
  define_tolerance_flags(_FLAGS)
  flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  report = validation.validate_from_config(_FLAGS['config'].value.data, **tolerances(_FLAGS))
  table = report.format_table(
    all_videos=_FLAGS['all'].value, show_warnings=_FLAGS['show_warnings'].value
  )
  print(table)
  if _FLAGS['json'].value:
    with storage.open_file(_FLAGS['json'].value, 'w') as f:
      json.dump(report.to_json(), f, indent=1)
  sys.exit(0 if report.ok else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
