"""Numpy batching: windows keep actions, padding/masks, unknown fps, eval completeness."""

import pathlib

import numpy as np
import pytest

from asl_jax.data import pipeline
from asl_jax.data.records import AnnotationSet, VideoRecord
from tests.data import schema_datasets


def _annotations(tmp_path, fps: float, t: int = 50):
  (tmp_path / 'f').mkdir(exist_ok=True)
  np.save(tmp_path / 'f' / 'v.npy', np.ones((t, 3), np.float32))
  rec = VideoRecord('v', 'train', 10.0, fps, np.array([[2.0, 4.0]]), np.array([0], np.int32))
  return AnnotationSet('mem', [rec], ['a'])


def test_unknown_fps_is_the_feature_rate(tmp_path):
  # 50 features over 10 s with stride 1 -> 5 features per second; 2 s -> grid (2*5 - 0.5)/1.
  videos = pipeline.load_videos(
    _annotations(tmp_path, -1.0),
    ['train'],
    feature_dir=str(tmp_path / 'f'),
    input_dim=3,
    feat_stride=1.0,
    num_frames=1.0,
  )
  assert videos[0].geometry.fps == pytest.approx(5.0)
  np.testing.assert_allclose(videos[0].segments, [[9.5, 19.5]])


def test_known_fps_is_kept(tmp_path):
  videos = pipeline.load_videos(
    _annotations(tmp_path, 30.0),
    ['train'],
    feature_dir=str(tmp_path / 'f'),
    input_dim=3,
    feat_stride=4.0,
    num_frames=16.0,
  )
  np.testing.assert_allclose(videos[0].segments, [[(2 * 30 - 8) / 4, (4 * 30 - 8) / 4]])


def test_random_window_keeps_enough_of_an_action():
  rng = np.random.default_rng(0)
  segs = np.array([[10.0, 30.0], [200.0, 260.0], [500.0, 505.0]], np.float32)
  for _ in range(200):
    start, window, keep, _ = pipeline.random_window(
      600, segs, max_seq_len=128, trunc_thresh=0.5, crop_ratio=(0.9, 1.0), rng=rng
    )
    assert window == 128 and 0 <= start <= 600 - 128 and keep.any()
    inter = np.clip(np.minimum(start + window, segs[:, 1]) - np.maximum(start, segs[:, 0]), 0, None)
    frac = inter / (segs[:, 1] - segs[:, 0])
    assert (frac[keep] >= 0.5).all() and (frac[~keep] < 0.5).all()


def test_fallback_window_when_no_crop_keeps_an_action():
  # One action longer than the window: no window can hold half of it; the fallback keeps it.
  segs = np.array([[0.0, 400.0]], np.float32)
  start, window, keep, fallback = pipeline.random_window(
    500, segs, max_seq_len=64, trunc_thresh=0.5, crop_ratio=(), rng=np.random.default_rng(1)
  )
  assert fallback and keep.all() and window == 64


def test_eval_batches_cover_every_video_once_and_bound_shapes():
  rng = np.random.default_rng(0)
  videos = []
  for i, t in enumerate([30, 64, 65, 200, 20, 128]):
    rec = VideoRecord(f'v{i}', 'test', 1.0, 30.0, np.zeros((0, 2)), np.zeros(0, np.int32))
    videos.append(
      pipeline.Video(
        rec,
        rng.normal(size=(t, 2)).astype(np.float32),
        None,
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.int32),
      )
    )
  seen, shapes = [], set()
  for batch in pipeline.eval_batches(videos, batch_size=4, max_seq_len=64):
    shapes.add(batch.feats.shape)
    for row, v in enumerate(batch.videos):
      if v is None:
        assert not batch.mask[row].any()
        continue
      seen.append(v.video_id)
      assert batch.mask[row].sum() == len(v.feats)
      np.testing.assert_array_equal(batch.feats[row, : len(v.feats)], v.feats)
  assert sorted(seen) == sorted(v.video_id for v in videos)
  assert {s[1] for s in shapes} == {64, 128, 256}


def _data_config(**fields):
  from asl_jax.configs import base as mod

  data = mod.get_base_config().data
  data.update(fields)
  return data


def test_annotations_from_config_picks_the_schema(annotations_dir):
  charades = _data_config(
    annotation_file=str(annotations_dir / 'charades_superevents.json'), num_classes=157
  )
  ann = pipeline.annotations_from_config(charades)
  assert ann.num_classes == 157 and len(ann.subset('testing')) == 1863
  bsn = _data_config(
    annotation_file=str(annotations_dir / 'anet_bsn_anno_action.json'),
    video_info_csv=str(annotations_dir / 'anet_bsn_video_info.csv'),
    num_classes=1,
  )
  ann = pipeline.annotations_from_config(bsn)
  assert ann.class_names == ['action'] and len(ann.subset('validation')) == 4728
  wrong = _data_config(annotation_file=charades.annotation_file, annotation_format='bsn')
  with pytest.raises(ValueError, match="annotation_format='bsn'"):
    pipeline.annotations_from_config(wrong)


@pytest.mark.parametrize('case', schema_datasets.CASES)
def test_exclude_leaves_videos_out_whatever_the_schema(case, annotations_dir, tmp_path):
  """What build_dataset --skip_bad relies on: the rest loads as before, sources unchanged."""
  pytest.importorskip('h5py')
  config = schema_datasets.make(case, annotations_dir, tmp_path)
  full = pipeline.annotations_from_config(config)
  drop = full.videos[0].video_id
  less = pipeline.annotations_from_config(config, exclude={drop, 'no_such_video'})
  assert [v.video_id for v in less.videos] == [v.video_id for v in full.videos[1:]]
  # Names the dropped video alone gave (id-labelled files) become class_<id>; the count stays.
  assert (less.source, less.num_classes) == (full.source, full.num_classes)
  for a, b in zip(less.videos, full.videos[1:]):
    np.testing.assert_array_equal(a.segments_sec, b.segments_sec)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_load_split_from_config_is_load_videos_with_a_reader(annotations_dir, tmp_path):
  config = schema_datasets.make('thumos_database', annotations_dir, tmp_path)
  videos, annotations = pipeline.load_split_from_config(config, ['Test'])
  direct = pipeline.load_videos(
    annotations,
    ['Test'],
    feature_dir=config.feature_dir,
    input_dim=config.input_dim,
    feat_stride=config.feat_stride,
    num_frames=config.num_frames,
    downsample_rate=config.downsample_rate,
  )
  assert [v.video_id for v in videos] == [v.video_id for v in direct]
  for a, b in zip(videos, direct):
    np.testing.assert_array_equal(a.feats, b.feats)
    np.testing.assert_array_equal(a.segments, b.segments)
    assert a.geometry == b.geometry and a.geometry.feat_stride == 8.0  # downsample_rate 2.


def test_annotation_files_may_be_urls(annotations_dir, tmp_path):
  """ram:// stands in for gs://: BSN's JSON and CSV read through tf.io.gfile; errors and
  ``source`` name the URLs, not the local copies."""
  tf = pytest.importorskip('tensorflow')
  config = schema_datasets.make('anet_bsn', annotations_dir, tmp_path)
  local = pipeline.annotations_from_config(config)
  remote = config.copy_and_resolve_references()
  for field in ('annotation_file', 'video_info_csv'):
    url = f'ram://asl_jax_pipeline/{field}_{pathlib.Path(config[field]).name}'
    tf.io.gfile.copy(config[field], url, overwrite=True)
    remote[field] = url
  loaded = pipeline.annotations_from_config(remote)
  assert loaded.source == f'{remote.annotation_file} + {remote.video_info_csv}'
  assert [v.video_id for v in loaded.videos] == [v.video_id for v in local.videos]
  assert loaded.class_names == local.class_names == ['action']
  less = pipeline.annotations_from_config(remote, exclude={local.videos[0].video_id})
  assert less.source == loaded.source and len(less.videos) == len(local.videos) - 1
  tf.io.gfile.remove(remote.annotation_file)  # ram:// does not truncate on 'w'.
  with tf.io.gfile.GFile(remote.annotation_file, 'w') as f:
    f.write('{"v_x": {"duration_second": 5.0, "annotations": []}}')
  with pytest.raises(ValueError, match=f"{remote.annotation_file}: video 'v_x' has no row in"):
    pipeline.annotations_from_config(remote)
  tf.io.gfile.remove(remote.annotation_file)
  with tf.io.gfile.GFile(remote.annotation_file, 'w') as f:
    f.write('{"v_x": ')
  with pytest.raises(ValueError, match=f'{remote.annotation_file}: not a valid JSON file'):
    pipeline.annotations_from_config(remote)
