r"""Label-assignment coverage of the real annotation files under their paper configs.

python -m launch.coverage_table --annotations /work/shared/data/annotations [--json out.json]

No features are needed: coverage depends only on feature lengths, which follow from each video's
duration and the extractor the config's features come from (its fps, stride and window: the
files named in third_party/). Prints one summary row per dataset, then each dataset's tables
(per length bucket, worst classes).
"""

from __future__ import annotations

import argparse
import json
import pathlib

from asl_jax.configs import activitynet13_i3d, charades_i3d, multithumos_i3d, thumos14_i3d
from asl_jax.data import coverage, pipeline

# dataset -> (config module, files in the annotations folder, extractor (fps, stride, window)).
DATASETS = {
  # ActionFormer's I3D at each video's own fps (the file's): every 4 frames, 16-frame windows.
  'THUMOS14': (thumos14_i3d, {'annotation_file': 'thumos14.json'}, (None, 4.0, 16.0)),
  'MultiTHUMOS': (multithumos_i3d, {'annotation_file': 'multithumos.json'}, (None, 4.0, 16.0)),
  # RGB I3D of the Charades HDF5 file: 24 fps, one feature per 8 frames.
  'Charades': (charades_i3d, {'annotation_file': 'charades_superevents.json'}, (24.0, 8.0, 8.0)),
  # ActionFormer's I3D: 25 fps, every 16 frames (resized to 192 steps by the config anyway).
  'ActivityNet 1.3': (
    activitynet13_i3d,
    {
      'annotation_file': 'anet_bsn_anno_action.json',
      'video_info_csv': 'anet_bsn_video_info.csv',
      'class_names_file': 'anet_bsn_action_name.csv',
    },
    (25.0, 16.0, 16.0),
  ),
}


def dataset_coverage(name: str, annotations_dir: pathlib.Path) -> coverage.CoverageReport:
  module, files, (fps, stride, window) = DATASETS[name]
  config = module.get_config()
  for field, file in files.items():
    config.data[field] = str(annotations_dir / file)
  records = pipeline.annotations_from_config(config.data).videos
  lengths = coverage.expected_feature_lengths(
    records, fps=fps, feat_stride=stride, num_frames=window
  )
  return coverage.coverage_from_config(config, lengths=lengths)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--annotations', type=pathlib.Path, required=True)
  parser.add_argument('--json', type=pathlib.Path)
  parser.add_argument('--only', nargs='*', choices=sorted(DATASETS), default=None)
  args = parser.parse_args()
  reports = {name: dataset_coverage(name, args.annotations) for name in args.only or DATASETS}
  print('| dataset (training split) | actions | uncovered | share | reasons |')
  print('|---|---|---|---|---|')
  for name, report in reports.items():
    reasons = ', '.join(f'{r} {c}' for r, c in report.by_reason().items()) or '-'
    print(
      f'| {name} | {len(report.actions)} | {report.num_uncovered} | '
      f'{report.uncovered_fraction:.2%} | {reasons} |'
    )
  for name, report in reports.items():
    print(f'\n## {name}\n{report.format_table()}')
  if args.json:
    args.json.write_text(json.dumps({k: r.to_json() for k, r in reports.items()}, indent=1))


if __name__ == '__main__':
  main()
