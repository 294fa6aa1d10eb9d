"""Label-assignment coverage: hand-made cases with known reasons; agreement with the batcher."""

import json

import jax.numpy as jnp
import numpy as np

from asl_jax.configs import custom
from asl_jax.data import coverage, pipeline
from asl_jax.data.records import VideoRecord
from asl_jax.ops import assignment
from asl_jax.ops import segments as seg_ops

# Three levels (strides 1, 2, 4) and THUMOS-like ranges.
SETTINGS = coverage.AssignmentSettings(
  regression_ranges=((0, 4), (4, 8), (8, 10000)),
  center_sample_radius=1.5,
  max_seq_len=32,
  trunc_thresh=0.5,
)


def _reasons(segments, length, settings=SETTINGS):
  return coverage.video_reasons(np.array(segments, np.float64), length, settings)


def test_covered_action():
  # [10, 13]: level-0 points 11 and 12 lie in the centre region [10, 13]; max distance 2 <= 4.
  assert _reasons([[10, 13]], 20) == ['']


def test_between_points():
  # No integer point strictly inside [10.2, 10.8].
  assert _reasons([[10.2, 10.8]], 20) == ['between_points']


def test_outside_ranges():
  # Points 11, 12 (level 0) and 12 (levels 1, 2) have max distance 2: in none of the ranges.
  settings = SETTINGS.__class__(
    **{**SETTINGS.__dict__, 'regression_ranges': ((0, 1), (4, 8), (8, 1e4))}
  )
  assert _reasons([[10, 13]], 20, settings) == ['outside_ranges']


def test_centre_sampling():
  # Radius 0.4: level 0's centre region [11.1, 11.9] holds no point; level 1's point 12 and
  # level 2's point 12 are out of range (distance 2). Anywhere inside, points 11 and 12 would do.
  settings = SETTINGS.__class__(**{**SETTINGS.__dict__, 'center_sample_radius': 0.4})
  assert _reasons([[10, 13]], 20, settings) == ['centre_sampling']


def test_hidden_by_shorter():
  # Both are candidates only at 11 and 12 (centre regions [10, 13]); the shorter one wins both.
  assert _reasons([[9.9, 13.1], [9.5, 13.5]], 20) == ['', 'hidden_by_shorter']


def test_equal_segments_with_two_labels_are_both_covered():
  # Tied lengths share the points (multi-hot classification target), as in dense annotations.
  assert _reasons([[10, 13], [10, 13]], 20) == ['', '']


def test_outside_features():
  assert _reasons([[25, 28], [5, 9]], 20) == ['outside_features', '']


def test_cut_by_max_seq_len():
  # T = 100 > 32: an action longer than 32 / 0.5 = 64 steps never keeps half of itself.
  assert _reasons([[5, 80], [5, 60]], 100) == ['cut_by_max_seq_len', '']


def test_cut_by_crop():
  # Crops of at most round(0.3 * 20) = 6 steps keep 6 / 14 < 0.5 of [2, 16].
  settings = SETTINGS.__class__(**{**SETTINGS.__dict__, 'crop_ratio': (0.2, 0.3)})
  assert _reasons([[2, 16], [8, 11]], 20, settings) == ['cut_by_crop', '']


def test_report_tables():
  videos = [
    _video('a', [[10, 13], [10.2, 10.8], [25, 28]], [0, 1, 1], 20),
    _video('b', [[3, 5]], [1], 20),
  ]
  report = coverage.coverage_of_videos(videos, SETTINGS, ['walk', 'run'])
  assert report.num_uncovered == 2 and report.uncovered_fraction == 0.5
  assert report.by_reason() == {'outside_features': 1, 'between_points': 1}
  assert report.by_class() == {
    'walk': {'actions': 1, 'uncovered': 0},
    'run': {'actions': 3, 'uncovered': 2, 'between_points': 1, 'outside_features': 1},
  }
  assert report.by_bucket() == {
    '0-1': {'actions': 1, 'uncovered': 1, 'between_points': 1},
    '2-4': {'actions': 3, 'uncovered': 1, 'outside_features': 1},
  }
  table = report.format_table()
  assert '2 of 4 actions (50.00%)' in table and 'between_points' in table
  assert json.loads(json.dumps(report.to_json()))['uncovered'] == 2


def test_log_warns_above_one_percent(caplog):
  settings = SETTINGS
  videos = [_video('a', [[10.2, 10.8]] + [[i, i + 3] for i in range(0, 8, 4)], [0, 0, 0], 20)]
  with caplog.at_level('INFO', logger='asl_jax.data.coverage'):
    coverage.log_coverage(coverage.coverage_of_videos(videos, settings))
  assert [r.levelname for r in caplog.records] == ['WARNING']
  caplog.clear()
  videos = [_video('a', [[0, 3]], [0], 20)]
  with caplog.at_level('INFO', logger='asl_jax.data.coverage'):
    coverage.log_coverage(coverage.coverage_of_videos(videos, settings))
  assert [r.levelname for r in caplog.records] == ['INFO']


def _video(video_id, segments, labels, length):
  record = VideoRecord(
    video_id, 'training', length, 1.0, np.array(segments, float), np.array(labels, np.int32)
  )
  return pipeline.Video(
    record,
    np.zeros((length, 1), np.float32),
    None,
    np.array(segments, np.float32),
    np.array(labels, np.int32),
  )


def test_agrees_with_the_training_batches():
  """Covered = the action wins a valid positive point in a real training batch (no crop, random
  continuous segments, so no exact ties), over many random videos."""
  rng = np.random.default_rng(0)
  settings = SETTINGS
  points = jnp.asarray(seg_ops.make_points(settings.max_seq_len, settings.regression_ranges))
  checked = uncovered = 0
  for i in range(40):
    length = int(rng.integers(8, 33))
    n = int(rng.integers(1, 6))
    starts = rng.uniform(-2, length, n)
    segs = np.stack([starts, starts + rng.exponential(3.0, n) + 0.05], 1).astype(np.float32)
    video = _video(f'v{i}', segs, np.zeros(n, np.int32), length)
    batches = pipeline.TrainBatches(
      [video],
      batch_size=1,
      max_seq_len=settings.max_seq_len,
      max_segments=8,
      trunc_thresh=settings.trunc_thresh,
      crop_ratio=(),
      seed=0,
    )
    batch = next(batches.epoch(0))
    targets = assignment.assign_batch(
      points,
      jnp.asarray(batch['segments']),
      jnp.asarray(batch['labels']),
      jnp.asarray(batch['segment_valid']),
      num_classes=1,
    )
    valid = batch['mask'][0][np.asarray(points[:, 0]).astype(int)]
    winners = np.asarray(targets['assigned'][0])[np.asarray(targets['positive'][0]) & valid]
    # A video seen whole keeps every action, in order.
    expected = set(winners.tolist())
    reasons = coverage.video_reasons(segs, length, settings)
    assert {k for k, r in enumerate(reasons) if not r} == expected, (segs, length, reasons)
    checked += n
    uncovered += sum(1 for r in reasons if r)
  assert uncovered > 5 and checked - uncovered > 20  # Both outcomes were exercised.


def test_from_config_with_lengths(tmp_path):
  database = {
    'v1': {
      'subset': 'training',
      'duration': 10.0,
      'fps': 10.0,
      'annotations': [
        {'segment': [2.0, 4.0], 'label': 'a', 'label_id': 0},
        {'segment': [5.0, 5.05], 'label': 'b', 'label_id': 1},
      ],
    },
  }
  path = tmp_path / 'ann.json'
  path.write_text(json.dumps({'database': database}))
  config = custom.get_config()
  config.data.annotation_file = str(path)
  config.data.num_classes = 2
  config.data.train_subset = 'training'
  config.data.feat_stride, config.data.num_frames = 1.0, 1.0
  config.data.max_seq_len = 64
  report = coverage.coverage_from_config(config, lengths={'v1': 100})
  # 2 s = 20 steps: covered; 0.05 s = half a step between two points.
  assert [a.reason for a in report.actions] == ['', 'between_points']
  assert report.class_names == ['a', 'b']
  empty = coverage.coverage_from_config(config, lengths={})
  assert empty.actions == [] and empty.skipped_videos == 1
