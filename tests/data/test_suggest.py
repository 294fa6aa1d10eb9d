"""Config suggestion: geometry, window length, pyramid and ranges from hand-made videos."""

import ast
import json
import math

import numpy as np
import pytest

from asl_jax.configs import custom
from asl_jax.data import suggest
from asl_jax.data.records import VideoRecord


def _record(i, duration, fps, segments):
  segs = np.array(segments, np.float64).reshape(-1, 2)
  return VideoRecord(f'v{i}', 'training', duration, fps, segs, np.zeros(len(segs), np.int32))


def _extracted(records, fps, stride, window):
  return {r.video_id: int((r.duration * (fps or r.fps) - window) // stride) + 1 for r in records}


def test_stride_and_window_from_the_file_fps():
  # Features every 4 frames of 16 at each video's own fps (24 to 30): THUMOS14's I3D.
  rng = np.random.default_rng(0)
  records = [
    _record(i, float(rng.uniform(30, 300)), float(rng.choice([24.0, 25.0, 30.0])), [[1, 5]])
    for i in range(50)
  ]
  s = suggest.suggest_config(records, _extracted(records, None, 4, 16))
  assert s.values['data.feat_stride'] == 4.0
  assert s.values['data.num_frames'] == 16.0
  assert s.values['data.default_fps'] == -1.0
  assert s.outliers == [] and s.measure == 'frames per feature'


def test_fixed_rate_features_whatever_the_file_fps():
  # ActivityNet-like: the file says 25 / 29.97 / 30 fps but features are 25 fps / 16 frames.
  rng = np.random.default_rng(1)
  records = [
    _record(i, float(rng.uniform(60, 200)), float(rng.choice([25.0, 29.97, 30.0])), [[2, 30]])
    for i in range(60)
  ]
  s = suggest.suggest_config(records, _extracted(records, 25.0, 16, 16))
  assert (s.values['data.default_fps'], s.values['data.feat_stride']) == (25.0, 16.0)


def test_no_fps_in_the_file_and_an_outlier():
  records = [_record(i, 30.0 + i, -1.0, [[1, 9]]) for i in range(20)]
  lengths = {r.video_id: int(3 * r.duration) for r in records}
  lengths['v7'] = int(6 * records[7].duration)  # Twice the rate of the others.
  s = suggest.suggest_config(records, lengths)
  assert (s.values['data.feat_stride'], s.values['data.default_fps']) == (1.0, -1.0)
  assert [v for v, _ in s.outliers] == ['v7']
  assert s.outliers[0][1] == pytest.approx(6.0, rel=0.02)


def test_pyramid_window_and_max_seq_len():
  # 100 videos of T = 100 .. 199 steps (fps 1, stride 1, window 1: T = duration), actions of
  # 40 steps: 40 / 2 = 20 lies in (16, 32) -> 4 levels (stride 8), window 19 (median 40, max 19),
  # max_seq_len = p99(T) = 198.01 rounded up to a multiple of 8 = 200.
  records = [_record(i, 100.0 + i, 1.0, [[10, 50]]) for i in range(100)]
  lengths = {r.video_id: int(r.duration) for r in records}
  s = suggest.suggest_config(records, lengths, num_classes=3, input_dim=64)
  v = s.values
  assert (v['data.feat_stride'], v['data.num_frames']) == (1.0, 1.0)
  assert v['model.arch'] == (2, 2, 3)
  assert v['model.regression_ranges'] == ((0, 4), (4, 8), (8, 16), (16, suggest.LAST_RANGE_END))
  assert v['model.window_size'] == 19
  assert v['data.max_seq_len'] == 200 == 8 * math.ceil(np.percentile(range(100, 200), 99) / 8)
  assert v['data.max_segments'] == 1
  assert (v['data.num_classes'], v['data.input_dim']) == (3, 64)
  assert (
    'actions per level: 0-4: 0, 4-8: 0, 8-16: 0, 16-10000: 100'
    in s.evidence['model.regression_ranges'][0]
  )


def test_short_actions_give_a_small_window_and_few_levels():
  records = [_record(i, 100.0, 1.0, [[10, 14], [20, 25]]) for i in range(10)]
  s = suggest.suggest_config(records, {r.video_id: 100 for r in records})
  # Lengths 4 and 5: median 4.5 -> window 5 (odd); longest 5 -> 2 levels.
  assert s.values['model.window_size'] == 5
  assert s.values['model.arch'] == (2, 2, 1)
  assert s.values['model.regression_ranges'] == ((0, 4), (4, suggest.LAST_RANGE_END))


def test_flags_round_trip_into_a_config():
  records = [_record(i, 100.0 + i, 1.0, [[10, 50]]) for i in range(100)]
  s = suggest.suggest_config(records, {r.video_id: int(r.duration) for r in records})
  config = custom.get_config()
  for flag in s.flags():
    key, _, text = flag.removeprefix('--config.').partition('=')
    section, field = key.split('.')
    config[section][field] = ast.literal_eval(text.strip("'"))
  applied = suggest.apply(custom.get_config(), s)
  for key, value in s.values.items():
    section, field = key.split('.')
    assert config[section][field] == applied[section][field] == value
  text = s.format()
  assert "--config.model.arch='(2,2,3)'" in text and 'As flags:' in text
  assert json.loads(json.dumps(s.to_json()))['values']['model.arch'] == [2, 2, 3]


def test_no_usable_video():
  with pytest.raises(ValueError, match='no video'):
    suggest.suggest_config([_record(0, 10.0, 1.0, [[1, 2]])], {})


def test_after_validation_without_features(tmp_path):
  from asl_jax.data.validation_report import ValidationReport, VideoSummary

  database = {
    'v1': {
      'subset': 'validation',
      'duration': 10.0,
      'fps': 10.0,
      'annotations': [{'segment': [2.0, 4.0], 'label': 'a', 'label_id': 0}],
    }
  }
  (tmp_path / 'ann.json').write_text(json.dumps({'database': database}))
  config = custom.get_config()
  config.data.annotation_file = str(tmp_path / 'ann.json')
  report = ValidationReport(str(tmp_path / 'ann.json'), [VideoSummary('v1')], [], {})
  text, out = suggest.after_validation(config, report, suggest=True)
  assert '0 of 0 actions' in text and '1 videos without features left out' in text
  assert 'no suggestion: no video has both a positive duration and a feature length' in text
  assert out['coverage']['skipped_videos'] == 1 and 'suggestion_error' in out
