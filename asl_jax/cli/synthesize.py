"""asl-synthesize: write a synthetic benchmark in ActionFormer's on-disk layout.

  asl-synthesize --out=/tmp/synth --num_videos=240 [--num_classes=8 --feature_dim=64 --seed=0 ...]

Every field of :class:`asl_jax.data.synthetic.SynthesisSpec` is a flag of the same name.
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags

from asl_jax.cli import common
from asl_jax.data import synthetic

_OUT = flags.DEFINE_string('out', None, 'Output folder.', required=True)
_NUM_VIDEOS = flags.DEFINE_integer('num_videos', 200, 'Number of videos.')
_TRAIN_FRACTION = flags.DEFINE_float(
  'train_fraction', 0.75, 'Share of videos in "training"; the rest goes to "validation".'
)
_DEFINE = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
_SPEC_FLAGS = {
  f.name: _DEFINE[type(f.default)](f.name, f.default, f'SynthesisSpec.{f.name}.')
  for f in dataclasses.fields(synthetic.SynthesisSpec)
  if type(f.default) in _DEFINE
}


def main(argv: list[str]) -> None:
  del argv
  train = _TRAIN_FRACTION.value
  summary = synthetic.synthesize_dataset(
    _OUT.value,
    num_videos=_NUM_VIDEOS.value,
    subsets=(('training', train), ('validation', 1.0 - train)),
    **{name: holder.value for name, holder in _SPEC_FLAGS.items()},
  )
  brief = {k: v for k, v in summary.items() if k not in ('spec', 'class_names')}
  print(json.dumps(brief, indent=1))


def run() -> None:
  common.run(main)


if __name__ == '__main__':
  run()
