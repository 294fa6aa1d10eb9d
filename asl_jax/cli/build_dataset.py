"""Validates a dataset and writes it as TFDS shards (one example per video) for the tf.data input.

asl-build-dataset --config=custom.py \
    --config.data.annotation_file=... --config.data.feature_dir=... \
    [--out DIR] [--skip_bad] [--overwrite] [--encoding=bytes|zlib] [--num_shards=N]

Every annotation schema, feature format and geometry the config-driven file loading supports
(asl_jax.data.pipeline.load_split_from_config) is built, and the shards hold exactly what that
loading produces for the same config: features after downsample_rate / force_upsampling / the
concatenation of several sets, segments in seconds and grid units, labels as the config says.

The validator (asl-validate; same tolerance flags, --strict included) runs first:
with problems the build is refused and the report printed, unless --skip_bad, which leaves the
bad videos out and lists them with the reasons in DIR/skipped.json. The shards land in
DIR/asl_features/2.0.0 (default DIR: data.tfds_dir, else the annotation file's folder + '/tfds');
DIR may be gs://. Nothing is downloaded.
"""

from __future__ import annotations

import sys
from typing import Any

from absl import flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags
from asl_jax.cli import validate as validate_data
from asl_jax.data import storage

_FLAGS: dict[str, Any] = {}


def default_out_dir(data_config) -> str:
  """``data.tfds_dir`` when the config has it, else ``tfds/`` next to the annotation file."""
  configured = data_config.get('tfds_dir', '')
  if configured:
    return configured
  annotation_file = data_config.annotation_file
  folder = annotation_file.rsplit('/', 1)[0] if '/' in annotation_file else '.'
  return storage.join(folder, 'tfds')


def _define_flags() -> None:
  """Defined only when run as a program (see validate_data._define_flags)."""
  _FLAGS['config'] = cli_flags.define_config()
  _FLAGS['out'] = flags.DEFINE_string('out', None, 'TFDS data dir (default: see module doc).')
  _FLAGS['skip_bad'] = flags.DEFINE_bool(
    'skip_bad', False, 'Leave out videos with problems (listed in OUT/skipped.json).'
  )
  _FLAGS['overwrite'] = flags.DEFINE_bool('overwrite', False, 'Rebuild an existing dataset.')
  _FLAGS['encoding'] = flags.DEFINE_enum(
    'encoding', 'bytes', ['bytes', 'zlib'], 'Feature storage: raw float32 or zlib-compressed.'
  )
  _FLAGS['num_shards'] = flags.DEFINE_integer(
    'num_shards', None, 'Shards per split (default: TFDS sizes them at 64 MB - 1 GiB).'
  )
  validate_data.define_tolerance_flags(_FLAGS)
  flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.data import tfds_builder  # Imports TensorFlow: after flag parsing keeps --help fast.

  tfds_builder.tfds.disable_progress_bar()
  data = _FLAGS['config'].value.data
  out = _FLAGS['out'].value or default_out_dir(data)
  try:
    path = tfds_builder.build(
      data,
      out,
      skip_bad=_FLAGS['skip_bad'].value,
      overwrite=_FLAGS['overwrite'].value,
      encoding=_FLAGS['encoding'].value,
      num_shards=_FLAGS['num_shards'].value,
      **validate_data.tolerances(_FLAGS),
    )
  except tfds_builder.BuildRefused as e:
    sys.exit(str(e))
  except FileExistsError as e:
    sys.exit(f'error: {e} (--overwrite)')
  info = tfds_builder.tfds.builder_from_directory(path).info
  splits = ', '.join(f'{name}: {s.num_examples}' for name, s in sorted(info.splits.items()))
  skipped = info.metadata.get('skipped_videos', [])
  print(f'built {path}\n  splits: {splits}\n  skipped videos: {len(skipped)}')


def run() -> None:
  _define_flags()
  common.run(main)


if __name__ == '__main__':
  run()
