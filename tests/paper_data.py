"""A few synthetic videos in a paper dataset's on-disk layout, written where its config reads them.

Each dataset is described as its real files are laid out (third_party/<dataset>.json, the config
docstrings, the authors' loaders), independently of the config's loading options: annotation
schema and subset spelling, how video ids are written, where and how the feature files are
stored (a folder of .npy / .npz / .pt, one HDF5 file, several folders) and the rate the features
were extracted at. :func:`write_dataset` writes such videos under a root folder, at the config's
relative paths, and points the config there; loading then goes through the config's own
options (schema, prefix, extension, subsets, geometry), so a config that no longer matches its
data fails to load or to span its videos.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import pathlib

import numpy as np

HAS_TORCH = importlib.util.find_spec('torch') is not None


@dataclasses.dataclass(frozen=True)
class Layout:
  """How a dataset's real files look."""

  schema: str  # 'database' (ActionFormer), 'bsn' (+ video info CSV), 'flat', 'superevents'.
  subsets: tuple[str, str]  # (training, evaluation) subset names as the files spell them.
  video_id: str  # Video id format, from the video index i.
  features: str  # 'npy', 'npz' (key 'feats'), 'pt' (one folder per set) or 'h5' (one file).
  dims: tuple[int, ...]  # Channels of each feature set (several: one folder each, in order).
  # The extractor: features every `stride` frames of `window` frames at `fps` (the video's
  # rate as the features see it); T = (duration * fps - window) // stride + 1.
  fps: float
  stride: float
  window: float
  file_fps: float | tuple[float, ...] | None  # fps written in the annotations (None: none).
  label_base: int = 0  # First class id as written (MultiTHUMOS super-events: 1).
  short_sets: tuple[int, ...] = ()  # Sets one step shorter than the others (real Ego4D clips).


THUMOS_IDS = 'video_{subset}_{i:07d}'
LAYOUTS = {
  # ActionFormer's thumos14.json: capitalised subsets, fps 30; I3D every 4 frames, 16 frames.
  'thumos14': Layout(
    'database', ('Validation', 'Test'), THUMOS_IDS, 'npy', (2048,), 30.0, 4, 16, 30.0
  ),
  # BSN's files (ids 'v_<YouTube id>', fps of the video in the CSV); ActionFormer's I3D files
  # are 'v_<YouTube id>.npy', extracted at 25 fps every 16 frames.
  'activitynet13': Layout(
    'bsn',
    ('training', 'validation'),
    'v_yt{i:09d}',
    'npy',
    (2048,),
    25.0,
    16,
    16,
    (25.0, 29.97, 30.0),
  ),
  # TriDet+'s MultiTHUMOS file (ActionFormer format, fps 30) over the THUMOS14 I3D features.
  'multithumos': Layout(
    'database', ('Validation', 'Test'), THUMOS_IDS, 'npy', (2048,), 30.0, 4, 16, 30.0
  ),
  # PointTAD's super-events file (classes 1..65, no fps), MLAD's RGB I3D in one HDF5 file.
  'multithumos_rgb': Layout(
    'superevents', ('training', 'testing'), THUMOS_IDS, 'h5', (1024,), 25.0, 8, 8, None, 1
  ),
  # PointTAD's super-events file (classes 0..156, no fps); RGB I3D in one HDF5 file.
  'charades': Layout(
    'superevents', ('training', 'testing'), 'C{i:04d}X', 'h5', (1024,), 24.0, 8, 8, None
  ),
  # The authors' flat clip file (fps 1.874 = the feature rate); one .pt per clip and set:
  # EgoVLP alone, or EgoVLP, SlowFast (often one step shorter) and Omnivore.
  'ego4d_egovlp': Layout(
    'flat', ('train', 'val'), 'clip-{i:04d}', 'pt', (256,), 30.0, 16, 16, 1.874
  ),
  'ego4d_egovlp_sf_ov': Layout(
    'flat',
    ('train', 'val'),
    'clip-{i:04d}',
    'pt',
    (256, 2304, 1536),
    30.0,
    16,
    16,
    1.874,
    short_sets=(1,),
  ),
  # ActionFormer's EPIC file (fps 30) and SlowFast .npz files (every 16 frames, 32 frames).
  'epic100': Layout(
    'database', ('training', 'validation'), 'P01_{i:03d}', 'npz', (2304,), 30.0, 16, 32, 30.0
  ),
}

# Config file -> its dataset's layout (variants with other data have their own).
CONFIG_LAYOUTS = {
  'thumos14_i3d.py': 'thumos14',
  'activitynet13_i3d.py': 'activitynet13',
  'multithumos_i3d.py': 'multithumos',
  'multithumos_i3d.py:rgb_h5': 'multithumos_rgb',
  'charades_i3d.py': 'charades',
  'ego4d_egovlp.py': 'ego4d_egovlp',
  'ego4d_egovlp_sf_ov.py': 'ego4d_egovlp_sf_ov',
  'epic100_verb_slowfast.py': 'epic100',
  'epic100_noun_slowfast.py': 'epic100',
}


def layout_of(name: str) -> Layout:
  """The layout of ``file.py[:variants]`` (the first variant naming its own data wins)."""
  file, _, variants = name.partition(':')
  for variant in variants.split(','):
    if f'{file}:{variant}' in CONFIG_LAYOUTS:
      return LAYOUTS[CONFIG_LAYOUTS[f'{file}:{variant}']]
  return LAYOUTS[CONFIG_LAYOUTS[file]]


def _num_features(layout: Layout, duration: float) -> int:
  return int((duration * layout.fps - layout.window) // layout.stride) + 1


def _durations(layout: Layout, config, rng: np.random.Generator, n: int) -> list[float]:
  """Videos of 0.4 to 1.6 training windows (at least 24 features), so some are cropped."""
  data = config.data
  if data.force_upsampling:  # Every video is resized to max_seq_len: any length will do.
    steps = rng.integers(40, 160, n)
  else:
    steps = rng.integers(max(24, int(0.4 * data.max_seq_len)), int(1.6 * data.max_seq_len), n)
  return [round(float(((s - 1) * layout.stride + layout.window) / layout.fps), 2) for s in steps]


def _actions(duration: float, num_classes: int, rng: np.random.Generator, n: int):
  """``n`` actions of 5-30% of the video: ``[(start_sec, end_sec, class)]``."""
  out = []
  for _ in range(n):
    length = duration * rng.uniform(0.05, 0.3)
    start = rng.uniform(0, duration - length)
    out.append((round(start, 2), round(start + length, 2), int(rng.integers(0, num_classes))))
  return out


def write_dataset(config, root: pathlib.Path, layout: Layout, *, seed: int = 0) -> dict:
  """Writes 3 training and 2 evaluation videos for ``config`` under ``root``; retargets it.

  ``config.data``'s paths (annotation file, video info and class name files, feature folders)
  become ``root / <path>``. Returns ``{video_id: duration}`` of the videos written.
  """
  data = config.data
  rng = np.random.default_rng(seed)
  for field in ('annotation_file', 'video_info_csv', 'class_names_file'):
    if data[field]:
      data[field] = str(root / data[field])
  folders = [root / p for p in data.feature_dir.split(',')]
  assert len(folders) == len(layout.dims), f'{data.feature_dir} for {len(layout.dims)} sets'
  data.feature_dir = ','.join(str(p) for p in folders)
  if layout.features == 'pt' and not HAS_TORCH:
    # No PyTorch to write (or read) .pt: the conversion the Ego4D config docstrings give.
    data.feature_ext = '.npy'

  subsets = [layout.subsets[0]] * 3 + [layout.subsets[1]] * 2
  ids = [layout.video_id.format(subset=s.lower(), i=i) for i, s in enumerate(subsets)]
  durations = _durations(layout, config, rng, len(ids))
  num_classes = max(data.num_classes, 2)  # ActivityNet (1 class) names 2 in its files.
  actions = [_actions(d, num_classes, rng, int(rng.integers(2, 6))) for d in durations]
  names = [f'class {k}' for k in range(num_classes)]

  path = pathlib.Path(data.annotation_file)
  path.parent.mkdir(parents=True, exist_ok=True)
  fps_values = layout.file_fps if isinstance(layout.file_fps, tuple) else (layout.file_fps,)
  videos = {}
  for i, (vid, subset, duration, acts) in enumerate(zip(ids, subsets, durations, actions)):
    fps = fps_values[i % len(fps_values)]
    if layout.schema == 'superevents':
      videos[vid] = {
        'subset': subset,
        'duration': duration,
        'actions': [[c + layout.label_base, s, e] for s, e, c in acts],
      }
    elif layout.schema == 'bsn':
      videos[vid] = {
        'duration_second': duration,
        'duration_frame': int(duration * fps),
        'feature_frame': int(duration * fps) // 16 * 16,
        'annotations': [{'segment': [s, e], 'label': names[c]} for s, e, c in acts],
      }
    else:
      videos[vid] = {
        'subset': subset,
        'duration': duration,
        'fps': fps,
        **(
          {'video_id': f'parent-{vid}', 'parent_start_sec': 60.0} if layout.schema == 'flat' else {}
        ),
        'annotations': [
          {'segment': [s, e], 'label': names[c], 'label_id': c + layout.label_base}
          for s, e, c in acts
        ],
      }
  if layout.schema == 'database':
    path.write_text(json.dumps({'version': 'synthetic', 'database': videos}))
  else:
    path.write_text(json.dumps(videos))
  if layout.schema == 'bsn':
    with open(data.video_info_csv, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['video', 'numFrame', 'seconds', 'fps', 'rfps', 'subset', 'featureFrame'])
      for i, (vid, subset, duration) in enumerate(zip(ids, subsets, durations)):
        fps = fps_values[i % len(fps_values)]
        frames = int(duration * fps)
        writer.writerow([vid, frames, duration, fps, fps, subset, frames // 16 * 16])
    pathlib.Path(data.class_names_file).write_text('\n'.join(['action', *names]) + '\n')

  for vid, duration in zip(ids, durations):
    t = _num_features(layout, duration)
    for k, (folder, dim) in enumerate(zip(folders, layout.dims)):
      feats = rng.standard_normal((t - (k in layout.short_sets), dim)).astype(np.float32)
      _write_features(folder, vid, feats, layout.features, data.feature_ext)
  return dict(zip(ids, durations))


def _write_features(folder: pathlib.Path, vid: str, feats: np.ndarray, kind: str, ext: str):
  if kind == 'h5':
    import h5py

    folder.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder, 'a') as f:
      f[vid] = feats
    return
  folder.mkdir(parents=True, exist_ok=True)
  if kind == 'npz':
    np.savez(folder / f'{vid}.npz', feats=feats)
  elif kind == 'pt' and ext == '.pt':
    import torch

    torch.save(torch.from_numpy(feats), folder / f'{vid}.pt')
  else:
    np.save(folder / f'{vid}.npy', feats)
