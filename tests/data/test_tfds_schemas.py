"""Shards equal file-based loading, for every annotation schema and feature path.

For each case of ``schema_datasets`` (real annotation files cut to a few videos, synthetic
features) the dataset is built into TFDS shards and read back with ``tf_pipeline``; every video
must equal what ``pipeline.load_split_from_config`` gives for the same config: features after the
geometry, grid segments, labels, records (ids, subsets, durations, fps) and the geometry itself.
"""

import csv
import json
import socket

import numpy as np
import pytest

from asl_jax.data import pipeline
from tests.data import schema_datasets

tfds_builder = pytest.importorskip('asl_jax.data.tfds_builder')
tf_pipeline = pytest.importorskip('asl_jax.data.tf_pipeline')
pytest.importorskip('h5py')


@pytest.fixture(scope='module', params=schema_datasets.CASES)
def case(request, annotations_dir, tmp_path_factory):
  """(config.data, shards path, file-loaded videos by id, annotations) of one schema case."""
  root = tmp_path_factory.mktemp(request.param)
  config = schema_datasets.make(request.param, annotations_dir, root / 'data')
  attempts = []

  def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError('network access during a build')

  with pytest.MonkeyPatch.context() as patch:  # Building must not touch the network.
    patch.setattr(socket, 'getaddrinfo', refuse)
    patch.setattr(socket.socket, 'connect', refuse)
    path = tfds_builder.build(config, str(root / 'tfds'))
  assert not attempts
  videos, annotations = pipeline.load_split_from_config(config, schema_datasets.subsets(config))
  return config, path, {v.video_id: v for v in videos}, annotations


def _assert_same_video(got: pipeline.Video, want: pipeline.Video) -> None:
  np.testing.assert_array_equal(got.feats, want.feats)
  assert got.feats.dtype == want.feats.dtype == np.float32
  np.testing.assert_array_equal(got.segments, want.segments)
  assert got.segments.dtype == np.float32
  np.testing.assert_array_equal(got.labels, want.labels)
  np.testing.assert_array_equal(got.record.segments_sec, want.record.segments_sec)
  np.testing.assert_array_equal(got.record.labels, want.record.labels)
  assert (got.record.video_id, got.record.subset) == (want.record.video_id, want.record.subset)
  assert (got.record.duration, got.record.fps) == (want.record.duration, want.record.fps)
  assert got.geometry == want.geometry  # feat_stride, num_frames and resolved fps, exactly.


def test_eval_batches_equal_file_loading(case):
  config, path, expected, _ = case
  seen = {}
  batches = tf_pipeline.eval_batches(
    path, subsets=schema_datasets.subsets(config), batch_size=2, max_seq_len=config.max_seq_len
  )
  for batch in batches:
    for row, video in enumerate(batch.videos):
      if video is None:
        assert not batch.mask[row].any()
        continue
      assert batch.mask[row].sum() == len(video.feats)
      seen[video.video_id] = video
  assert sorted(seen) == sorted(expected)
  for video_id, video in seen.items():
    _assert_same_video(video, expected[video_id])


def test_geometry_was_applied(case):
  """The shards hold the features the model sees, not the files' raw ones."""
  config, path, expected, _ = case
  lengths = {v: len(video.feats) for v, video in expected.items()}
  if config.force_upsampling:
    assert set(lengths.values()) == {config.max_seq_len}
    for video_id, video in expected.items():
      raw = len(np.load(f'{config.feature_dir}/{video_id}.npy'))
      assert raw != config.max_seq_len
      stride = ((raw - 1) * config.feat_stride + config.num_frames) / config.max_seq_len
      assert video.geometry.feat_stride == video.geometry.num_frames == stride
    # Shards resized to one max_seq_len are refused for another: they would not match the config.
    with pytest.raises(ValueError, match=f'built with force_upsampling to max_seq_len={32}'):
      next(tf_pipeline.eval_batches(path, subsets=['validation'], batch_size=1, max_seq_len=64))
  if config.downsample_rate > 1:
    assert all(v.geometry.feat_stride == config.feat_stride * 2 for v in expected.values())
  if ',' in config.feature_dir:
    assert {v.feats.shape[1] for v in expected.values()} == {config.input_dim}
  builder = tf_pipeline.open_dataset(path)
  for ex in builder.as_dataset(split='+'.join(builder.info.splits)).as_numpy_iterator():
    video_id = ex['video_id'].decode()
    if video_id in lengths:
      assert ex['length'] == lengths[video_id] == len(ex['features'])


def test_metadata_describes_the_build(case):
  config, path, _, annotations = case
  meta = tf_pipeline.open_dataset(path).info.metadata
  assert meta['class_names'] == annotations.class_names
  assert meta['num_classes'] == annotations.num_classes
  assert (
    meta['annotation_schema']
    == {
      'bsn': 'bsn',
      'superevents': 'superevents',
      'flat': 'flat',
      'auto': 'database',
    }[config.annotation_format]
  )
  assert (meta['force_upsampling'], meta['downsample_rate']) == (
    config.force_upsampling,
    config.downsample_rate,
  )
  assert meta['input_dim'] == config.input_dim
  if config.num_classes == 1:
    assert meta['class_names'] == ['action']  # BSN's class-agnostic mode.


def test_train_windows_come_from_the_file_loaded_videos(case):
  config, path, expected, _ = case
  train_subsets = [s for s in config.train_subset.split(',') if s]
  batches = tf_pipeline.TFDSTrainBatches(
    path,
    subsets=train_subsets,
    batch_size=2,
    max_seq_len=config.max_seq_len,
    max_segments=config.max_segments,
    trunc_thresh=config.trunc_thresh,
    crop_ratio=config.crop_ratio,
    seed=5,
    with_video_ids=True,
  )
  rows = 0
  for batch in batches.epoch(0):
    for row, video_id in enumerate(batch['video_id']):
      video = expected[video_id]
      rng = np.random.default_rng(tf_pipeline.crop_seed(5, 0, video_id))
      start, window, keep, _ = pipeline.random_window(
        len(video.feats),
        video.segments,
        max_seq_len=config.max_seq_len,
        trunc_thresh=config.trunc_thresh,
        crop_ratio=config.crop_ratio,
        rng=rng,
      )
      assert batch['window_start'][row] == start and batch['mask'][row].sum() == window
      np.testing.assert_array_equal(
        batch['feats'][row, :window], video.feats[start : start + window]
      )
      assert not batch['feats'][row, window:].any()
      n = int(batch['segment_valid'][row].sum())
      assert n == min(int(keep.sum()), config.max_segments)
      np.testing.assert_array_equal(batch['labels'][row, :n], video.labels[keep][:n])
      rows += 1
  assert rows == 2 * batches.steps_per_epoch > 0


def test_skip_bad_leaves_a_video_out_of_every_bsn_file(annotations_dir, tmp_path):
  """--skip_bad with BSN: the video goes from the JSON and from video_info.csv (which lists it)."""
  config = schema_datasets.make('anet_bsn', annotations_dir, tmp_path / 'data')
  with open(config.video_info_csv, newline='') as f:
    ids = [r['video'] for r in csv.DictReader(f)]
  data = json.loads(open(config.annotation_file).read())
  data[ids[0]]['annotations'][0]['label'] = 'Juggling chainsaws'
  with open(config.annotation_file, 'w') as f:
    json.dump(data, f)
  out = str(tmp_path / 'tfds')
  with pytest.raises(tfds_builder.BuildRefused, match='--skip_bad'):
    tfds_builder.build(config, out)
  builder = tf_pipeline.open_dataset(tfds_builder.build(config, out, skip_bad=True))
  assert builder.info.metadata['skipped_videos'] == [ids[0]]
  built = [
    ex['video_id'].decode()
    for ex in builder.as_dataset(split='+'.join(builder.info.splits)).as_numpy_iterator()
  ]
  assert sorted(built) == sorted(ids[1:])
  skipped = json.loads((tmp_path / 'tfds' / 'skipped.json').read_text())
  assert [p['kind'] for p in skipped['videos'][ids[0]]] == ['unknown_label']

  config.default_fps = 50.0  # Every video's length disagrees: nothing would be left.
  with pytest.raises(tfds_builder.BuildRefused, match='every video has problems'):
    tfds_builder.build(config, str(tmp_path / 'tfds2'), skip_bad=True)
