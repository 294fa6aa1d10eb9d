"""Tests for the synthetic benchmark: files, determinism, time geometry, presence of the signal."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from asl_jax.data import synthetic as synthesize
from asl_jax.data.annotations import load_actionformer_json
from asl_jax.data.features import load_features
from asl_jax.data.geometry import sec_to_grid

# Small but varied: long enough videos that every pyramid level's range gets instances.
SMALL = dict(num_classes=4, feature_dim=16, min_len=128, max_len=256, seed=3)
NUM_VIDEOS = 40
# Seconds are rounded to 1e-3 s, i.e. 1e-3 / 2 * fps / feat_stride = 0.0038 grid steps here.
GRID_TOL = 0.01
# Level l's regression range in grid units (ActionFormer's THUMOS14 setting).
REGRESSION_RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, np.inf)]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  out = tmp_path_factory.mktemp('synth')
  return out, synthesize.synthesize_dataset(out, num_videos=NUM_VIDEOS, **SMALL)


def _database(out: pathlib.Path) -> dict:
  with open(out / 'annotations.json') as f:
    return json.load(f)['database']


def _grid_segments(video: dict) -> tuple[np.ndarray, np.ndarray]:
  """Segments in grid units via the project's geometry, and labels, from one JSON entry."""
  sec = np.array([a['segment'] for a in video['annotations']], np.float64).reshape(-1, 2)
  grid = sec_to_grid(sec, fps=video['fps'], feat_stride=4, num_frames=16)
  return grid, np.array([a['label_id'] for a in video['annotations']], np.int64)


def _frame_labels(video: dict, t: int, num_classes: int) -> np.ndarray:
  """[T, K] multi-hot: a frame belongs to a segment when its grid index lies inside it."""
  grid, labels = _grid_segments(video)
  out = np.zeros((t, num_classes), bool)
  idx = np.arange(t)
  for (start, end), k in zip(grid, labels):
    out[(idx > start) & (idx < end), k] = True
  return out


def _files(out: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
  kwargs = dict(num_videos=6, num_classes=3, feature_dim=16, min_len=64, max_len=128)
  synthesize.synthesize_dataset(tmp_path / 'a', seed=1, **kwargs)
  synthesize.synthesize_dataset(tmp_path / 'b', seed=1, **kwargs)
  synthesize.synthesize_dataset(tmp_path / 'c', seed=2, **kwargs)
  a, b, c = (_files(tmp_path / n) for n in 'abc')
  assert len(a) == 7 and a == b
  assert a['annotations.json'] != c['annotations.json']
  assert all(a[k] != c.get(k) for k in a if k.startswith('features'))


def test_video_does_not_depend_on_num_videos(tmp_path):
  kwargs = dict(num_classes=3, feature_dim=8, min_len=64, max_len=96, seed=5)
  synthesize.synthesize_dataset(tmp_path / 'few', num_videos=2, **kwargs)
  synthesize.synthesize_dataset(tmp_path / 'many', num_videos=5, **kwargs)
  few, many = _database(tmp_path / 'few'), _database(tmp_path / 'many')
  for vid in few:
    assert few[vid]['annotations'] == many[vid]['annotations']
    assert (tmp_path / 'few/features' / f'{vid}.npy').read_bytes() == (
      tmp_path / 'many/features' / f'{vid}.npy'
    ).read_bytes()


def test_json_schema(dataset):
  out, summary = dataset
  with open(out / 'annotations.json') as f:
    data = json.load(f)
  assert set(data) == {'version', 'database'} and data['version'] == 'synthetic-1'
  database = data['database']
  assert sorted(database) == [f'synth_{i:05d}' for i in range(NUM_VIDEOS)]
  names = synthesize.class_names(SMALL['num_classes'])
  for vid, video in database.items():
    assert set(video) == {'subset', 'duration', 'fps', 'annotations'}
    assert video['subset'] in ('training', 'validation')
    assert isinstance(video['duration'], float) and isinstance(video['fps'], float)
    assert video['fps'] == 30.0
    t = np.load(out / 'features' / f'{vid}.npy', mmap_mode='r').shape[0]
    assert video['duration'] == pytest.approx(((t - 1) * 4 + 16) / 30.0, abs=1e-9)
    assert 2 <= len(video['annotations']) <= 8
    for ann in video['annotations']:
      assert set(ann) == {'segment', 'label', 'label_id'}
      assert isinstance(ann['label_id'], int) and 0 <= ann['label_id'] < SMALL['num_classes']
      assert ann['label'] == names[ann['label_id']]
      start, end = ann['segment']
      assert isinstance(start, float) and isinstance(end, float)
      assert 0 <= start < end <= video['duration']
      assert round(start, 3) == start and round(end, 3) == end

  annotations = load_actionformer_json(out / 'annotations.json')
  assert annotations.skipped == {}
  assert annotations.class_names == names
  assert sum(len(v.labels) for v in annotations.videos) == summary['num_instances']
  for subset, n in summary['instances_per_subset'].items():
    assert sum(len(v.labels) for v in annotations.subset(subset)) == n


def test_features_shape_and_dtype(dataset):
  out, _ = dataset
  paths = sorted((out / 'features').iterdir())
  assert len(paths) == NUM_VIDEOS
  lengths = []
  for path in paths:
    feats = load_features(path, expected_dim=SMALL['feature_dim'])
    assert np.load(path).dtype == np.float32
    lengths.append(feats.shape[0])
  assert SMALL['min_len'] <= min(lengths) and max(lengths) <= SMALL['max_len']
  assert len(set(lengths)) > NUM_VIDEOS // 2


def test_seconds_land_on_the_painted_frames(dataset):
  """JSON seconds -> grid recovers the painted cells [g0 - 0.5, g0 + N - 0.5] within GRID_TOL."""
  out, summary = dataset
  spec = synthesize.SynthesisSpec(**summary['spec'])
  database = _database(out)
  for index in range(NUM_VIDEOS):
    vid = synthesize.video_id(index)
    video = synthesize.generate_video(spec, index)
    np.testing.assert_array_equal(video.features, np.load(out / 'features' / f'{vid}.npy'))
    grid, labels = _grid_segments(database[vid])
    painted = np.stack([video.starts - 0.5, video.starts + video.lengths - 0.5], axis=-1)
    np.testing.assert_allclose(grid, painted, atol=GRID_TOL, rtol=0)
    np.testing.assert_array_equal(labels, video.labels)
    # The frames whose index lies strictly inside the segment are exactly the painted ones.
    t = video.features.shape[0]
    for (start, end), g0, n in zip(grid, video.starts, video.lengths):
      inside = np.flatnonzero((np.arange(t) > start) & (np.arange(t) < end))
      np.testing.assert_array_equal(inside, np.arange(g0, g0 + n))
    assert np.all(video.part_lengths >= 1)
    np.testing.assert_array_equal(video.part_lengths.sum(-1), video.lengths)


def test_lengths_cover_every_regression_range(dataset):
  out, _ = dataset
  lengths = np.concatenate(
    [np.diff(_grid_segments(v)[0], axis=-1)[:, 0] for v in _database(out).values()]
  )
  for lo, hi in REGRESSION_RANGES:
    assert np.sum((lengths >= lo) & (lengths < hi)) >= 3, (lo, hi)
  assert lengths.min() >= 3 - GRID_TOL


def test_classes_overlap_only_across_classes(dataset):
  out, _ = dataset
  across = 0
  instances = 0
  for video in _database(out).values():
    grid, labels = _grid_segments(video)
    instances += len(labels)
    for i in range(len(labels)):
      for j in range(i + 1, len(labels)):
        overlap = min(grid[i, 1], grid[j, 1]) - max(grid[i, 0], grid[j, 0])
        if labels[i] == labels[j]:
          assert overlap < -0.5, 'same-class instances must keep a frame apart'
        elif overlap > 0:
          across += 1
  assert 0.05 * instances < across < 0.5 * instances


def test_subset_fractions(dataset, tmp_path):
  out, summary = dataset
  assert summary['videos_per_subset'] == {'training': 30, 'validation': 10}
  subsets = [v['subset'] for v in _database(out).values()]
  assert subsets == ['training'] * 30 + ['validation'] * 10

  summary = synthesize.synthesize_dataset(
    tmp_path,
    num_videos=7,
    subsets=(('train', 0.5), ('val', 0.3), ('test', 0.2)),
    num_classes=2,
    feature_dim=4,
    min_len=32,
    max_len=40,
  )
  assert summary['videos_per_subset'] == {'train': 4, 'val': 2, 'test': 1}
  with pytest.raises(ValueError, match='sum to 1'):
    synthesize.synthesize_dataset(tmp_path, num_videos=4, subsets=(('a', 0.5), ('b', 0.4)))


def test_prototypes_identify_the_class(dataset):
  """Mean features of each part project most onto that class's prototype for that part."""
  _, summary = dataset
  spec = synthesize.SynthesisSpec(**summary['spec'])
  prototypes, _ = synthesize.class_patterns(spec)
  k = spec.num_classes
  sums = np.zeros((k, 3, spec.feature_dim))
  for index in range(NUM_VIDEOS):
    video = synthesize.generate_video(spec, index)
    for g0, parts, label in zip(video.starts, video.part_lengths, video.labels):
      bounds = g0 + np.concatenate([[0], np.cumsum(parts)])
      for p in range(3):
        sums[label, p] += video.features[bounds[p] : bounds[p + 1]].mean(0)
  # projection[k, p, j, q] = <mean of class k part p, prototype of class j part q>.
  projection = np.einsum('kpc,jqc->kpjq', sums, prototypes).reshape(k * 3, k * 3)
  np.testing.assert_array_equal(projection.argmax(-1), np.arange(k * 3))


def _nearest_centroid_accuracy(out: pathlib.Path, k: int) -> float:
  """Validation accuracy of a per-frame nearest-centroid classifier fit on the training frames."""
  database = _database(out)
  split = {'training': ([], []), 'validation': ([], [])}
  for vid, video in database.items():
    feats = np.load(out / 'features' / f'{vid}.npy')
    labels = _frame_labels(video, len(feats), k)
    single = labels.sum(-1) == 1
    split[video['subset']][0].append(feats[single])
    split[video['subset']][1].append(labels[single].argmax(-1))
  x_train, y_train = (np.concatenate(a) for a in split['training'])
  x_val, y_val = (np.concatenate(a) for a in split['validation'])
  centroids = np.stack([x_train[y_train == c].mean(0) for c in range(k)])
  distance = ((x_val[:, None] - centroids[None]) ** 2).sum(-1)
  return float(np.mean(distance.argmin(-1) == y_val))


def test_nearest_centroid_beats_chance_but_is_not_perfect(dataset):
  """A per-frame nearest-centroid classifier (annotations -> frames) learns, but not perfectly."""
  out, _ = dataset
  k = SMALL['num_classes']
  assert 1 / k + 0.25 < _nearest_centroid_accuracy(out, k) < 0.98


def test_hard_demo_variant_reaches_the_generator_and_is_harder(dataset, tmp_path, monkeypatch):
  """configs/demo.py:hard passes its settings to the generator; per-frame evidence is weaker."""

  from asl_jax.configs import demo
  from asl_jax.train import loop

  data = demo.get_config('hard').data
  data.annotation_file = str(tmp_path / 'hard' / 'annotations.json')
  data.feature_dir = str(tmp_path / 'hard' / 'features')
  data.synthetic.num_videos = NUM_VIDEOS
  knobs = ('signal_amplitude', 'weak_frame_prob', 'shared_fraction', 'distractor_amplitude')
  knobs += ('distractor_similarity',)
  seen = {}
  real = synthesize.synthesize_dataset

  def spy(out_dir, **kwargs):
    seen.update(kwargs)
    return real(out_dir, **{**kwargs, **{k: v for k, v in SMALL.items() if k != 'seed'}})

  monkeypatch.setattr(synthesize, 'synthesize_dataset', spy)
  loop.maybe_synthesize(data)
  assert {k: seen[k] for k in knobs} == {k: data.synthetic[k] for k in knobs}
  assert all(seen[k] != getattr(synthesize.SynthesisSpec(), k) for k in knobs)
  k = SMALL['num_classes']
  hard = _nearest_centroid_accuracy(tmp_path / 'hard', k)
  assert hard < _nearest_centroid_accuracy(dataset[0], k) - 0.05


def test_boundaries_are_marked_by_start_and_end_patterns(dataset):
  """Start-part frames lean to the start prototype, end-part frames to the end prototype."""
  _, summary = dataset
  spec = synthesize.SynthesisSpec(**summary['spec'])
  prototypes, _ = synthesize.class_patterns(spec)
  score = np.zeros((3, 3))  # [part painted, prototype part] mean projection.
  count = np.zeros(3)
  for index in range(NUM_VIDEOS):
    video = synthesize.generate_video(spec, index)
    for g0, parts, label in zip(video.starts, video.part_lengths, video.labels):
      bounds = g0 + np.concatenate([[0], np.cumsum(parts)])
      for p in range(3):
        frames = video.features[bounds[p] : bounds[p + 1]]
        score[p] += (frames @ prototypes[label].T).sum(0)
        count[p] += len(frames)
  score /= count[:, None]
  np.testing.assert_array_equal(score.argmax(-1), [0, 1, 2])
  assert np.all(np.diag(score) > score.sum(-1) - np.diag(score))


def test_weak_frames(dataset):
  _, summary = dataset
  spec = synthesize.SynthesisSpec(**summary['spec'])
  inside = weak = 0
  for index in range(NUM_VIDEOS):
    video = synthesize.generate_video(spec, index)
    mask = np.zeros(video.features.shape[0], bool)
    for g0, n in zip(video.starts, video.lengths):
      mask[g0 : g0 + n] = True
    assert not np.any(video.weak & ~mask)
    inside += mask.sum()
    weak += video.weak.sum()
  assert weak / inside == pytest.approx(spec.weak_frame_prob, abs=0.05)


def test_invalid_settings_raise():
  with pytest.raises(ValueError, match='max_len'):
    synthesize.SynthesisSpec(min_len=100, max_len=50)
  with pytest.raises(ValueError, match='overlap_prob'):
    synthesize.SynthesisSpec(overlap_prob=1.5)
  with pytest.raises(ValueError, match='min_instance_len'):
    synthesize.SynthesisSpec(min_len=4, max_len=8, min_instance_len=6)
  with pytest.raises(ValueError, match='num_frames'):
    synthesize.SynthesisSpec(feat_stride=8, num_frames=4)
  with pytest.raises(ValueError, match='seed'):
    synthesize.SynthesisSpec(seed=-1)
  assert dataclasses.asdict(synthesize.SynthesisSpec())['signal_amplitude'] > 0


@pytest.mark.parametrize(
  'feat_stride, num_frames, fps', [(4, 4, 7.0), (16, 16, 25.0), (1, 1, 1.87)]
)
def test_segments_stay_inside_the_video_for_other_geometries(
  tmp_path, feat_stride, num_frames, fps
):
  geometry = dict(feat_stride=feat_stride, num_frames=num_frames, fps=fps)
  synthesize.synthesize_dataset(
    tmp_path, num_videos=8, num_classes=3, feature_dim=4, min_len=32, max_len=64, **geometry
  )
  annotations = load_actionformer_json(tmp_path / 'annotations.json')
  assert annotations.skipped == {}
  spec = synthesize.SynthesisSpec(num_classes=3, feature_dim=4, min_len=32, max_len=64, **geometry)
  for index, record in enumerate(annotations.videos):
    video = synthesize.generate_video(spec, index)
    grid = sec_to_grid(record.segments_sec, **geometry)
    painted = np.stack([video.starts - 0.5, video.starts + video.lengths - 0.5], axis=-1)
    # Up to a millisecond (rounding, or flooring the last end at the duration), in grid steps.
    np.testing.assert_allclose(grid, painted, atol=1e-3 * fps / feat_stride + 1e-9, rtol=0)


def test_cli(tmp_path):
  out = tmp_path / 'cli'
  argv = ['--num_videos=4', '--feature_dim=8', '--min_len=32', '--max_len=48', f'--out={out}']
  done = subprocess.run(
    [sys.executable, '-m', 'asl_jax.cli.synthesize', *argv], capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr
  summary = json.loads((out / 'annotations.json').read_text())
  printed = json.loads(done.stdout)
  assert printed['num_videos'] == 4
  assert printed['num_instances'] == sum(
    len(v['annotations']) for v in summary['database'].values()
  )
  assert printed['videos_per_subset'] == {'training': 3, 'validation': 1}
  assert sorted(os.listdir(out / 'features')) == [f'synth_{i:05d}.npy' for i in range(4)]
  assert load_features(out / 'features' / 'synth_00000.npy', expected_dim=8).shape[1] == 8


def test_two_runs_generating_one_dataset_at_once_write_it_whole(tmp_path):
  """Two runs started together on a missing dataset both write it; files are replaced whole."""
  shared, alone = tmp_path / 'shared', tmp_path / 'alone'
  kwargs = dict(num_videos=12, **SMALL)
  threads = [
    threading.Thread(target=synthesize.synthesize_dataset, args=(shared,), kwargs=kwargs)
    for _ in range(2)
  ]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  synthesize.synthesize_dataset(alone, **kwargs)
  written = sorted(p.relative_to(shared) for p in shared.rglob('*') if p.is_file())
  assert written == sorted(p.relative_to(alone) for p in alone.rglob('*') if p.is_file())
  assert not [p for p in written if '.part-' in p.name]  # No private file is left behind.
  for rel in written:
    assert (shared / rel).read_bytes() == (alone / rel).read_bytes(), rel


def test_a_write_that_fails_leaves_the_old_file(tmp_path):
  path = tmp_path / 'annotations.json'
  path.write_text('old')
  with pytest.raises(RuntimeError, match='disk full'):
    with synthesize._replacing(str(path), 'w') as f:
      f.write('half of the new')
      raise RuntimeError('disk full')
  assert path.read_text() == 'old'
  assert [p.name for p in tmp_path.iterdir()] == ['annotations.json']
