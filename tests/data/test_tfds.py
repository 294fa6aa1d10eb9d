"""Tests for the TFDS builder and the tf.data pipeline: round trip, crops, sharding, determinism."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.data import pipeline
from asl_jax.data.annotations import load_actionformer_json
from asl_jax.data.geometry import grid_to_sec
from asl_jax.data.synthetic import synthesize_dataset

tfds_builder = pytest.importorskip('asl_jax.data.tfds_builder')
tf_pipeline = pytest.importorskip('asl_jax.data.tf_pipeline')

from asl_jax.configs import base  # noqa: E402

DIM = 16
TRAIN = dict(max_segments=8, trunc_thresh=0.5, crop_ratio=(0.9, 1.0), seed=3)


def _data_config(root):
  data = base.get_base_config().data
  data.annotation_file = str(root / 'annotations.json')
  data.feature_dir = str(root / 'features')
  data.num_classes = 4
  data.input_dim = DIM
  data.train_subset = 'training'
  data.eval_subset = 'validation'
  return data


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """8 synthetic videos (6 training, 2 validation), T in [64, 128], C = 16; actions <= 0.4 T."""
  root = tmp_path_factory.mktemp('tfds') / 'ds'
  synthesize_dataset(
    root,
    num_videos=8,
    num_classes=4,
    feature_dim=DIM,
    min_len=64,
    max_len=128,
    max_instance_frac=0.4,
  )
  return root


@pytest.fixture(scope='module')
def built(source):
  return tfds_builder.build(_data_config(source), str(source.parent / 'out'))


@pytest.fixture(scope='module')
def built_sharded(source):
  """The same data in 2 shards per split: shard order and interleaving come into play."""
  with pytest.raises(
    ValueError, match=r"num_shards=3 exceeds the videos of split\(s\) \{'validation': 2\}"
  ):
    tfds_builder.build(_data_config(source), str(source.parent / 'out2'), num_shards=3)
  path = tfds_builder.build(_data_config(source), str(source.parent / 'out2'), num_shards=2)
  assert tf_pipeline.open_dataset(path).info.splits['training'].num_shards == 2
  return path


def _features(source, video_id):
  return np.load(source / 'features' / f'{video_id}.npy')


def _train(built, **kwargs):
  args = dict(TRAIN, subsets=['training'], batch_size=2, max_seq_len=64, with_video_ids=True)
  args.update(kwargs)
  return tf_pipeline.TFDSTrainBatches(built, **args)


def test_build_writes_every_field_of_every_video(source, built):
  builder = tf_pipeline.open_dataset(built)
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {
    'training': 6,
    'validation': 2,
  }
  meta = builder.info.metadata
  assert meta['class_names'] == [f'action_{k:02d}' for k in range(4)]
  assert (meta['input_dim'], meta['feat_stride'], meta['num_frames']) == (DIM, 4.0, 16.0)
  records = {v.video_id: v for v in load_actionformer_json(source / 'annotations.json').videos}
  seen = set()
  for ex in builder.as_dataset(split='training+validation').as_numpy_iterator():
    vid = ex['video_id'].decode()
    seen.add(vid)
    rec = records[vid]
    np.testing.assert_array_equal(ex['features'], _features(source, vid))
    assert ex['length'] == len(ex['features'])
    np.testing.assert_array_equal(ex['segments_sec'], rec.segments_sec)
    np.testing.assert_array_equal(ex['labels'], rec.labels)
    grid = (rec.segments_sec * rec.fps - 0.5 * 16.0) / 4.0
    np.testing.assert_allclose(ex['segments'], grid, rtol=1e-6)
    assert (ex['duration'], ex['fps'], ex['subset'].decode()) == (
      rec.duration,
      rec.fps,
      rec.subset,
    )
    assert (ex['feat_stride'], ex['num_frames']) == (4.0, 16.0)
  assert seen == set(records)


def test_build_refuses_bad_data_unless_skip_bad(source, tmp_path):
  root = tmp_path / 'ds'
  shutil.copytree(source, root)
  (root / 'features' / 'synth_00001.npy').unlink()
  data = json.loads((root / 'annotations.json').read_text())
  data['database']['synth_00002']['annotations'][0]['label_id'] = 7
  (root / 'annotations.json').write_text(json.dumps(data))
  config = _data_config(root)
  with pytest.raises(tfds_builder.BuildRefused, match='--skip_bad') as e:
    tfds_builder.build(config, str(tmp_path / 'out'))
  assert set(e.value.report.problems_by_video()) == {'synth_00001', 'synth_00002'}
  assert 'missing_features' in str(e.value) and 'unknown_label' in str(e.value)
  assert not (tmp_path / 'out' / 'asl_features').exists()

  path = tfds_builder.build(config, str(tmp_path / 'out'), skip_bad=True)
  skipped = json.loads((tmp_path / 'out' / 'skipped.json').read_text())
  assert {v: [p['kind'] for p in ps] for v, ps in skipped['videos'].items()} == {
    'synth_00001': ['missing_features'],
    'synth_00002': ['unknown_label'],
  }
  builder = tf_pipeline.open_dataset(path)
  assert builder.info.splits['training'].num_examples == 4
  assert builder.info.metadata['skipped_videos'] == ['synth_00001', 'synth_00002']
  with pytest.raises(FileExistsError, match='overwrite'):
    tfds_builder.build(config, str(tmp_path / 'out'), skip_bad=True)
  (root / 'features' / 'synth_00003.npy').unlink()
  path = tfds_builder.build(config, str(tmp_path / 'out'), skip_bad=True, overwrite=True)
  assert tf_pipeline.open_dataset(path).info.splits['training'].num_examples == 3

  config.eval_subset = 'test'  # A problem of the whole file: --skip_bad cannot help.
  with pytest.raises(tfds_builder.BuildRefused, match="subset 'test' matches no video"):
    tfds_builder.build(config, str(tmp_path / 'out2'), skip_bad=True)


def test_train_batches_have_the_numpy_pipelines_layout(source, built):
  videos, _ = pipeline.load_split_from_config(_data_config(source), ['training'])
  ours = next(_train(built, with_video_ids=False).epoch(0))
  theirs = next(pipeline.TrainBatches(videos, batch_size=2, max_seq_len=64, **TRAIN).epoch(0))
  assert list(ours) == list(theirs) == list(tf_pipeline.TRAIN_KEYS)
  assert {k: (v.shape, v.dtype) for k, v in ours.items()} == {
    k: (v.shape, v.dtype) for k, v in theirs.items()
  }


def test_crops_follow_random_window_and_keep_enough_of_each_action(source, built):
  trunc = TRAIN['trunc_thresh']
  batches = _train(built)
  videos = {
    v.video_id: v for v in pipeline.load_split_from_config(_data_config(source), ['training'])[0]
  }
  checked = 0
  for epoch in range(3):
    for batch in batches.epoch(epoch):
      for row, vid in enumerate(batch['video_id']):
        video = videos[vid]
        rng = np.random.default_rng(tf_pipeline.crop_seed(TRAIN['seed'], epoch, vid))
        start, window, keep, _ = pipeline.random_window(
          len(video.feats),
          video.segments,
          max_seq_len=64,
          trunc_thresh=trunc,
          crop_ratio=TRAIN['crop_ratio'],
          rng=rng,
        )
        assert batch['window_start'][row] == start and batch['mask'][row].sum() == window
        np.testing.assert_array_equal(
          batch['feats'][row, :window], video.feats[start : start + window]
        )
        assert not batch['feats'][row, window:].any()
        n = int(batch['segment_valid'][row].sum())
        assert n == min(keep.sum(), TRAIN['max_segments'])
        # Truncation statistics: each kept action keeps >= trunc_thresh of its length.
        orig = video.segments[keep][:n]
        got = batch['segments'][row, :n] + start
        np.testing.assert_allclose(got[:, 0], np.maximum(orig[:, 0], start), atol=1e-4)
        np.testing.assert_allclose(got[:, 1], np.minimum(orig[:, 1], start + window), atol=1e-4)
        kept_fraction = (got[:, 1] - got[:, 0]) / (orig[:, 1] - orig[:, 0])
        assert (kept_fraction >= trunc - 1e-6).all() and n >= 1
        np.testing.assert_array_equal(batch['labels'][row, :n], video.labels[keep][:n])
        checked += 1
  assert checked == 3 * 6 and batches.stats['fallback_windows'] == 0


def test_round_trip_to_seconds(source, built):
  """Shards -> batches -> grid segments -> seconds equal the annotations (no crop: T <= 128)."""
  records = {v.video_id: v for v in load_actionformer_json(source / 'annotations.json').videos}
  batches = _train(built, max_seq_len=128, crop_ratio=(), max_segments=16)
  seen = []
  for batch in batches.epoch(0):
    for row, vid in enumerate(batch['video_id']):
      rec, n = records[vid], int(batch['segment_valid'][row].sum())
      assert batch['window_start'][row] == 0 and n == len(rec.labels)
      sec = grid_to_sec(batch['segments'][row, :n], fps=rec.fps, feat_stride=4.0, num_frames=16.0)
      # float32 grid values: within 1e-5 grid steps, far below the grid's resolution.
      np.testing.assert_allclose(sec, rec.segments_sec, atol=1e-4)
      seen.append(vid)
  assert sorted(seen) == sorted(v for v, r in records.items() if r.subset == 'training')
  for batch in tf_pipeline.eval_batches(built, subsets=['training'], batch_size=4, max_seq_len=64):
    for video in filter(None, batch.videos):
      rec = records[video.video_id]
      np.testing.assert_array_equal(video.record.segments_sec, rec.segments_sec)
      sec = video.geometry.grid_to_sec(video.segments)
      np.testing.assert_allclose(sec, rec.segments_sec, atol=1e-4)


@pytest.mark.parametrize('dataset', ['built', 'built_sharded'])
def test_deterministic_and_resumable(dataset, request):
  built = request.getfixturevalue(dataset)

  def ids(batches):
    return [list(b['video_id']) for b in batches]

  first, second = _train(built), _train(built)
  epoch0 = list(first.epoch(0))
  again = list(second.epoch(0))
  for a, b in zip(epoch0, again, strict=True):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  epoch1 = list(first.epoch(1))
  assert ids(epoch1) != ids(epoch0)  # A new order every epoch...
  resumed = list(second.epoch(1, start_step=1))  # ... and the same one after a restart.
  assert ids(resumed) == ids(epoch1)[1:]
  np.testing.assert_array_equal(resumed[-1]['feats'], epoch1[-1]['feats'])
  assert ids(_train(built, seed=4).epoch(0)) != ids(epoch0)


@pytest.mark.parametrize('dataset', ['built', 'built_sharded'])
def test_processes_get_disjoint_complete_shares(dataset, request):
  built = request.getfixturevalue(dataset)
  shares = [_train(built, process_index=i, process_count=2) for i in range(2)]
  assert [s.local_batch_size for s in shares] == [1, 1]
  assert shares[0].steps_per_epoch == shares[1].steps_per_epoch == 3
  seen = [{v for b in s.epoch(0) for v in b['video_id']} for s in shares]
  assert not seen[0] & seen[1]
  assert len(seen[0] | seen[1]) == 6
  builder = tf_pipeline.open_dataset(built)
  splits, counts = zip(
    *[tf_pipeline.process_split(builder, ['training', 'Validation'], i, 3) for i in range(3)]
  )
  assert splits[0] == 'training[0:2]' and counts[0] == [2, 3, 3]
  with pytest.raises(ValueError, match='not divisible by 2 processes'):
    _train(built, batch_size=3, process_count=2)
  with pytest.raises(ValueError, match="subset 'test'"):
    _train(built, subsets=['test'])


def test_eval_sees_every_video_once_grouped_by_padded_length(source, built):
  lengths = {
    v.video_id: len(_features(source, v.video_id))
    for v in load_actionformer_json(source / 'annotations.json').videos
  }
  subsets = ['training', 'validation']
  seen = []
  for batch in tf_pipeline.eval_batches(built, subsets=subsets, batch_size=3, max_seq_len=64):
    assert batch.feats.shape[0] == 3 == len(batch.videos)
    for row, video in enumerate(batch.videos):
      if video is None:
        assert not batch.mask[row].any() and not batch.feats[row].any()
        continue
      t = lengths[video.video_id]
      assert batch.feats.shape[1] == pipeline.eval_length(t, 64)
      assert batch.mask[row].sum() == t
      np.testing.assert_array_equal(video.feats, _features(source, video.video_id))
      seen.append(video.video_id)
  assert sorted(seen) == sorted(lengths)
  shares = [
    [
      v.video_id
      for b in tf_pipeline.eval_batches(
        built, subsets=subsets, batch_size=2, max_seq_len=64, process_index=i, process_count=2
      )
      for v in b.videos
      if v is not None
    ]
    for i in range(2)
  ]
  assert not set(shares[0]) & set(shares[1])
  assert sorted(shares[0] + shares[1]) == sorted(lengths)


def test_segments_beyond_max_segments_are_counted(built):
  batches = _train(built, max_seq_len=128, crop_ratio=(), max_segments=2)
  total = sum(int(b['segment_valid'].sum()) for b in batches.epoch(0))
  assert total <= 2 * 6
  assert batches.stats['videos_over_max_segments'] > 0
  assert batches.stats['segments_over_max'] >= batches.stats['videos_over_max_segments']


def test_remote_paths_are_read_through_gfile(source, tmp_path):
  """ram:// sources stand in for gs://: the same tf.io.gfile code path, and no network."""
  import tensorflow as tf

  remote = 'ram://asl_jax_test'
  tf.io.gfile.makedirs(f'{remote}/features')
  for name in (
    'annotations.json',
    *(f'features/{p.name}' for p in (source / 'features').iterdir()),
  ):
    tf.io.gfile.copy(str(source / name), f'{remote}/{name}', overwrite=True)
  config = _data_config(source)
  config.annotation_file = f'{remote}/annotations.json'
  config.feature_dir = f'{remote}/features'
  path = tfds_builder.build(config, str(tmp_path / 'out'))  # TFDS writes through epath.
  batches = list(
    tf_pipeline.eval_batches(path, subsets=['validation'], batch_size=2, max_seq_len=64)
  )
  assert sorted(v.video_id for v in batches[0].videos) == ['synth_00006', 'synth_00007']
  np.testing.assert_array_equal(
    batches[0].videos[0].feats, _features(source, batches[0].videos[0].video_id)
  )


def test_shards_of_an_older_version_are_refused(built, tmp_path):
  """Shards of 1.0.0 held raw features (no geometry): reading them as if current would be wrong."""
  old = tmp_path / 'out' / 'asl_features' / '1.0.0'
  shutil.copytree(built, old)
  with pytest.raises(FileNotFoundError, match=r"version\(s\) \['1.0.0'\].*--overwrite"):
    tf_pipeline.open_dataset(str(tmp_path / 'out'))
  info = json.loads((old / 'dataset_info.json').read_text())
  info['version'] = '1.0.0'
  (old / 'dataset_info.json').write_text(json.dumps(info))
  with pytest.raises(ValueError, match='dataset version 1.0.0 was built by another asl-jax'):
    tf_pipeline.open_dataset(str(old))


def test_remote_hdf5_is_read_in_place(tmp_path):
  h5py = pytest.importorskip('h5py')
  import tensorflow as tf

  from asl_jax.data.feature_formats import HDF5Features

  feats = np.arange(6, dtype=np.float32).reshape(3, 2)
  with h5py.File(tmp_path / 'rgb.h5', 'w') as f:
    f['v_1'] = feats
  tf.io.gfile.copy(str(tmp_path / 'rgb.h5'), 'ram://asl_jax_h5/rgb.h5', overwrite=True)
  with HDF5Features('ram://asl_jax_h5/rgb.h5') as h5:
    np.testing.assert_array_equal(h5.load('1', key='v_1', expected_dim=2), feats)


def test_build_cli(source, tmp_path):
  root = tmp_path / 'ds'
  shutil.copytree(source, root)
  np.save(root / 'features' / 'synth_00004.npy', np.zeros((80, DIM), np.float32) + np.nan)
  args = [
    sys.executable,
    '-m',
    'asl_jax.cli.build_dataset',
    '--config=configs/custom.py',
    f'--config.data.annotation_file={root / "annotations.json"}',
    f'--config.data.feature_dir={root / "features"}',
    '--config.data.num_classes=4',
    f'--config.data.input_dim={DIM}',
    '--config.data.train_subset=training',
    '--config.data.eval_subset=validation',
    '--skip_bad',
  ]
  repo = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, PYTHONPATH=str(repo))
  run = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  assert f'built {root / "tfds" / "asl_features" / tfds_builder.VERSION}' in run.stdout
  assert 'splits: training: 5, validation: 2' in run.stdout and 'skipped videos: 1' in run.stdout
  skipped = json.loads((root / 'tfds' / 'skipped.json').read_text())
  assert list(skipped['videos']) == ['synth_00004']
  assert skipped['videos']['synth_00004'][0]['kind'] == 'non_finite'
