"""Small datasets in every annotation schema, cut from the real annotation files, for the tests.

Each builder takes a few videos of one of the public files in ``shared/data/annotations`` (see its
README), writes them in the file's own schema next to synthetic features of a length consistent
with the geometry, and returns the ``config.data`` section that loads them. Together they cover
every schema (ActionFormer, flat, super-events, BSN + CSVs), every label mode (ids, ids with an
offset, names, class-agnostic) and the feature paths (.npy, HDF5, two concatenated sets, the
``downsample_rate`` and ``force_upsampling`` geometry). There is no flat file among the public
ones: the flat case is MultiTHUMOS's videos without the "database" wrapper and with fps -1, as
ASL's converters write them.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib

import ml_collections
import numpy as np

from asl_jax.data.validation import expected_length

REPO = pathlib.Path(__file__).resolve().parents[2]
DIM = 8  # Channels of each synthetic feature set.
CASES = ('thumos_database', 'multithumos_flat_hdf5', 'charades_superevents_two_sets', 'anet_bsn')


def base_data_config(**fields) -> ml_collections.ConfigDict:
  from asl_jax.configs import base as module

  data = module.get_base_config().data
  data.update(fields)
  return data


def _features(video_id: str, length: int, dim: int = DIM) -> np.ndarray:
  """Features that differ per video and step, so a mix-up or a wrong resize shows."""
  rng = np.random.default_rng(sum(map(ord, video_id)))
  return rng.normal(size=(max(int(length), 1), dim)).astype(np.float32)


def _pick(entries: dict, subsets: dict[str, int]) -> list[str]:
  """The first ``n`` videos of each subset (file order), shortest-first within the first 50."""
  out = []
  for subset, n in subsets.items():
    ids = [k for k, v in entries.items() if v['subset'] == subset][:50]
    out += sorted(ids, key=lambda k: entries[k]['duration'])[:n]
  return out


def thumos_database(annotations_dir: pathlib.Path, root: pathlib.Path) -> ml_collections.ConfigDict:
  """ActionFormer schema (label ids, fps 30 in the file), .npy features, ``downsample_rate=2``."""
  with open(annotations_dir / 'thumos14.json') as f:
    data = json.load(f)
  keep = _pick(data['database'], {'Validation': 2, 'Test': 2})
  data['database'] = {k: data['database'][k] for k in keep}
  root.mkdir(parents=True, exist_ok=True)
  (root / 'thumos.json').write_text(json.dumps(data))
  (root / 'features').mkdir(exist_ok=True)
  for vid, entry in data['database'].items():
    t = round(expected_length(entry['duration'], entry['fps'], 4.0, 16.0))
    np.save(root / 'features' / f'{vid}.npy', _features(vid, t))
  return base_data_config(
    annotation_file=str(root / 'thumos.json'),
    feature_dir=str(root / 'features'),
    num_classes=20,
    input_dim=DIM,
    feat_stride=4.0,
    num_frames=16.0,
    downsample_rate=2,
    train_subset='Validation',
    eval_subset='Test',
    max_seq_len=64,
    max_segments=32,
  )


def multithumos_flat_hdf5(
  annotations_dir: pathlib.Path, root: pathlib.Path
) -> ml_collections.ConfigDict:
  """Flat schema (fps -1: the features' own rate), one HDF5 file of features, stride 1."""
  import h5py

  with open(annotations_dir / 'multithumos.json') as f:
    database = json.load(f)['database']
  keep = _pick(database, {'Validation': 2, 'Test': 1})
  flat = {k: dict(database[k], fps=-1) for k in keep}
  root.mkdir(parents=True, exist_ok=True)
  (root / 'multithumos_flat.json').write_text(json.dumps(flat))
  with h5py.File(root / 'rgb.h5', 'w') as f:
    for vid, entry in flat.items():
      f[vid] = _features(vid, math.ceil(entry['duration'] * 2))  # 2 features per second.
  return base_data_config(
    annotation_file=str(root / 'multithumos_flat.json'),
    annotation_format='flat',
    feature_dir=str(root / 'rgb.h5'),
    num_classes=65,
    input_dim=DIM,
    feat_stride=1.0,
    num_frames=1.0,
    train_subset='Validation',
    eval_subset='Test',
    max_seq_len=128,
    max_segments=128,
  )


def charades_superevents_two_sets(
  annotations_dir: pathlib.Path, root: pathlib.Path
) -> ml_collections.ConfigDict:
  """Super-events (class ids 0..156, no fps), two feature sets of unequal length concatenated
  ('resample' to the longer); one video without actions, most with actions past the end."""
  with open(annotations_dir / 'charades_superevents.json') as f:
    data = json.load(f)
  keep = _pick(data, {'training': 2, 'testing': 1})
  keep.append(next(k for k, v in data.items() if v['subset'] == 'training' and not v['actions']))
  data = {k: data[k] for k in keep}
  root.mkdir(parents=True, exist_ok=True)
  (root / 'charades.json').write_text(json.dumps(data))
  for name, rate in (('rgb', 4), ('flow', 3)):
    (root / name).mkdir(exist_ok=True)
    for vid, entry in data.items():
      np.save(
        root / name / f'{vid}.npy', _features(vid + name, math.ceil(entry['duration'] * rate))
      )
  return base_data_config(
    annotation_file=str(root / 'charades.json'),
    annotation_format='superevents',
    feature_dir=f'{root / "rgb"},{root / "flow"}',
    feature_dims=(DIM, DIM),
    input_dim=2 * DIM,
    num_classes=157,
    feat_stride=1.0,
    num_frames=1.0,
    train_subset='training',
    eval_subset='testing',
    max_seq_len=128,
    max_segments=32,
  )


def anet_bsn(annotations_dir: pathlib.Path, root: pathlib.Path) -> ml_collections.ConfigDict:
  """BSN's ActivityNet files (JSON + video_info.csv + action_name.csv), class-agnostic
  (``num_classes=1``), features resized to ``max_seq_len=32`` (``force_upsampling``), 25 fps."""
  with open(annotations_dir / 'anet_bsn_video_info.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  with open(annotations_dir / 'anet_bsn_anno_action.json') as f:
    data = json.load(f)
  picked = []
  for subset, n in (('training', 2), ('validation', 1), ('testing', 1)):
    ordered = sorted((r for r in rows if r['subset'] == subset), key=lambda r: float(r['seconds']))
    picked += ordered[len(ordered) // 10 :][:n]  # 20-30 s videos: T of 30-50 before resizing.
  root.mkdir(parents=True, exist_ok=True)
  with open(root / 'video_info.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(picked)
  data = {r['video']: data[r['video']] for r in picked}
  (root / 'anet.json').write_text(json.dumps(data))
  (root / 'features').mkdir(exist_ok=True)
  for vid, entry in data.items():
    t = round(expected_length(entry['duration_second'], 25.0, 16.0, 16.0))
    np.save(root / 'features' / f'{vid}.npy', _features(vid, t))
  return base_data_config(
    annotation_file=str(root / 'anet.json'),
    annotation_format='bsn',
    video_info_csv=str(root / 'video_info.csv'),
    class_names_file=str(annotations_dir / 'anet_bsn_action_name.csv'),
    num_classes=1,
    feature_dir=str(root / 'features'),
    input_dim=DIM,
    feat_stride=16.0,
    num_frames=16.0,
    default_fps=25.0,
    force_upsampling=True,
    max_seq_len=32,
    train_subset='training',
    eval_subset='validation',
    max_segments=32,
  )


def make(case: str, annotations_dir: pathlib.Path, root: pathlib.Path) -> ml_collections.ConfigDict:
  return globals()[case](annotations_dir, root)


def subsets(data_config) -> list[str]:
  """Every subset a case's config names (training and evaluation)."""
  names = f'{data_config.train_subset},{data_config.eval_subset}'.split(',')
  return list(dict.fromkeys(n for n in names if n))
