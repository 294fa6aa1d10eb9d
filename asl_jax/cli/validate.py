"""Checks a dataset (annotations + features) against a config and prints every problem found.

asl-validate --config=custom.py \
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
table (--show_warnings lists them; --strict makes them problems). After the table: the
label-assignment coverage of the training split (actions that get no positive point, and why);
--suggest adds the config values that fit the files, with their evidence and coverage, as
ready-to-paste --config.* flags. Exits 1 when there is any
problem, so it can gate a build or a training job (python -m asl_jax.cli.validate, or
``asl-validate`` of earlier releases, take the same flags).
"""

from __future__ import annotations

import json
from typing import Any

from absl import flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

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
  """Defined when run as a program: build_dataset imports the tolerance flags alone."""
  _FLAGS['config'] = cli_flags.define_config()
  _FLAGS['all'] = flags.DEFINE_bool('all', False, 'List every video, not only those with problems.')
  _FLAGS['json'] = flags.DEFINE_string('json', None, 'Also write the report as JSON here.')
  _FLAGS['show_warnings'] = flags.DEFINE_bool(
    'show_warnings', False, 'List every warning in the table, not only their counts.'
  )
  _FLAGS['suggest'] = flags.DEFINE_bool(
    'suggest',
    False,
    'Also propose the config values that fit the files (feature geometry, max_seq_len, pyramid, '
    'regression ranges, window), with the evidence, as --config.* flags.',
  )
  define_tolerance_flags(_FLAGS)
  flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> int:
  del argv
  from asl_jax.data import storage, suggest, validation

  report = validation.validate_from_config(_FLAGS['config'].value.data, **tolerances(_FLAGS))
  table = report.format_table(
    all_videos=_FLAGS['all'].value, show_warnings=_FLAGS['show_warnings'].value
  )
  print(table)
  extra, extra_json = suggest.after_validation(
    _FLAGS['config'].value, report, suggest=_FLAGS['suggest'].value
  )
  print(extra)
  if _FLAGS['json'].value:
    with storage.open_file(_FLAGS['json'].value, 'w') as f:
      json.dump({**report.to_json(), **extra_json}, f, indent=1)
  return 0 if report.ok else 1


def run() -> None:
  _define_flags()
  common.run(main)


if __name__ == '__main__':
  run()
