"""Tests for the ActionFormer annotation loader: real THUMOS14/MultiTHUMOS files, edge cases."""

import collections
import json
import math
import pathlib

import numpy as np
import pytest

from asl_jax.data.annotations import load_actionformer_json


def _walk(path: pathlib.Path) -> dict:
  """Counts taken straight from the JSON, independently of the loader."""
  with open(path) as f:
    database = json.load(f)['database']
  pairs = {(a['label'], a['label_id']) for v in database.values() for a in v['annotations']}
  return {
    'videos': len(database),
    'subsets': collections.Counter(v['subset'] for v in database.values()),
    'pairs': pairs,
    'instances': sum(len(v['annotations']) for v in database.values()),
    'zero_length': sum(
      a['segment'][1] <= a['segment'][0] for v in database.values() for a in v['annotations']
    ),
    'fps': {vid: v['fps'] for vid, v in database.items()},
  }


def _check_against_walk(annotations, walk: dict) -> None:
  assert len(annotations.videos) == walk['videos']
  assert collections.Counter(v.subset for v in annotations.videos) == walk['subsets']
  assert annotations.num_classes == len(walk['pairs'])
  assert {(annotations.class_names[k], k) for _, k in walk['pairs']} == walk['pairs']
  kept = sum(len(v.labels) for v in annotations.videos)
  # Clipped segments are kept; every other skip reason removes one annotation.
  removed = sum(n for reason, n in annotations.skipped.items() if reason != 'segment_clipped')
  assert kept + removed == walk['instances']
  assert annotations.skipped.get('zero_length_segment', 0) == walk['zero_length']
  assert {v.video_id: v.fps for v in annotations.videos} == walk['fps']
  for v in annotations.videos:
    assert v.segments_sec.dtype == np.float64 and v.labels.dtype == np.int32
    assert np.all(v.segments_sec[:, 1] > v.segments_sec[:, 0])
    assert np.all(v.segments_sec >= 0) and np.all(v.segments_sec <= v.duration)


def test_thumos14_counts(annotations_dir):
  path = annotations_dir / 'thumos14.json'
  walk = _walk(path)
  assert walk['subsets'] == {'Validation': 200, 'Test': 212}
  assert len(walk['pairs']) == 20 and walk['instances'] == 6365

  annotations = load_actionformer_json(path)
  _check_against_walk(annotations, walk)
  assert annotations.num_classes == 20
  # THUMOS14's known quirk: 30 annotations start after the video's stated duration.
  assert annotations.skipped == {'segment_after_end': 30}
  assert sum(len(v.labels) for v in annotations.videos) == 6335


def test_multithumos_counts(annotations_dir):
  path = annotations_dir / 'multithumos.json'
  walk = _walk(path)
  assert walk['subsets'] == {'Validation': 200, 'Test': 212}
  assert len(walk['pairs']) == 65 and walk['instances'] == 38668

  annotations = load_actionformer_json(path, num_classes=65)
  _check_against_walk(annotations, walk)
  assert annotations.skipped == {
    'zero_length_segment': 37,
    'segment_after_end': 30,
    'segment_clipped': 5,
  }


def test_subset_selection_is_case_insensitive(annotations_dir):
  annotations = load_actionformer_json(annotations_dir / 'thumos14.json')
  assert len(annotations.subset('validation')) == 200
  assert len(annotations.subset('TEST')) == 212
  assert len(annotations.subset(['Validation', 'test'])) == 412
  with pytest.raises(ValueError, match='training'):
    annotations.subset('training')


def _write(tmp_path: pathlib.Path, database: dict, name: str = 'ann.json') -> pathlib.Path:
  path = tmp_path / name
  path.write_text(json.dumps({'version': 'test', 'database': database}))
  return path


def _video(annotations, *, subset='Validation', duration=10.0, fps=30.0, **extra) -> dict:
  out = {'subset': subset, 'duration': duration, 'fps': fps, 'annotations': annotations}
  out.update(extra)
  return out


def _ann(start, end, label_id, label=None) -> dict:
  return {'segment': [start, end], 'label': label or f'name{label_id}', 'label_id': label_id}


def test_fields_and_path_types(tmp_path):
  path = _write(tmp_path, {'v1': _video([_ann(1.0, 2.0, 1, 'Jump')], fps=25.0)})
  for p in (path, str(path)):
    annotations = load_actionformer_json(p)
    assert annotations.source == str(path)
    (video,) = annotations.videos
    assert (video.video_id, video.subset, video.duration, video.fps) == ('v1', 'Validation', 10, 25)
    np.testing.assert_array_equal(video.segments_sec, [[1.0, 2.0]])
    np.testing.assert_array_equal(video.labels, [1])
    assert annotations.class_names == ['class_0', 'Jump']
    assert annotations.skipped == {}


def test_default_fps_overrides_file_fps(tmp_path):
  path = _write(tmp_path, {'v1': _video([]), 'v2': _video([], fps=None)})
  annotations = load_actionformer_json(path, default_fps=12.5)
  assert [v.fps for v in annotations.videos] == [12.5, 12.5]
  assert annotations.videos[0].segments_sec.shape == (0, 2)


def test_missing_fps_without_default_raises(tmp_path):
  database = {'v1': _video([])}
  del database['v1']['fps']
  with pytest.raises(ValueError, match=r"ann\.json: video 'v1': missing field \"fps\""):
    load_actionformer_json(_write(tmp_path, database))


def test_missing_duration_raises(tmp_path):
  database = {'vid_a': _video([])}
  del database['vid_a']['duration']
  with pytest.raises(ValueError, match=r"vid_a.*'duration'"):
    load_actionformer_json(_write(tmp_path, database))


def test_missing_database_raises(tmp_path):
  path = tmp_path / 'flat.json'
  path.write_text(json.dumps({'v1': _video([])}))
  with pytest.raises(ValueError, match=r'flat\.json.*"database"'):
    load_actionformer_json(path)


def test_missing_file_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.json'):
    load_actionformer_json(tmp_path / 'nope.json')


@pytest.mark.parametrize(
  'video, field',
  [
    (_video([_ann(math.nan, 2.0, 0)]), 'segment'),
    (_video([_ann(1.0, math.inf, 0)]), 'segment'),
    (_video([], duration=math.inf), 'duration'),
    (_video([], fps=math.nan), 'fps'),
    (_video([], fps='30'), 'fps'),
  ],
)
def test_non_finite_numbers_raise(tmp_path, video, field):
  with pytest.raises(ValueError, match=rf"ann\.json: video 'bad'.*'{field}'"):
    load_actionformer_json(_write(tmp_path, {'bad': video}))


def test_bad_label_id_raises(tmp_path):
  with pytest.raises(ValueError, match=r"'v1' annotation 0.*label_id"):
    load_actionformer_json(_write(tmp_path, {'v1': _video([_ann(1.0, 2.0, 1.5)])}))
  with pytest.raises(ValueError, match=r'label_id.*>= 0'):
    load_actionformer_json(_write(tmp_path, {'v1': _video([_ann(1.0, 2.0, -1)])}))


def test_same_id_two_names_raises(tmp_path):
  database = {
    'v1': _video([_ann(1.0, 2.0, 3, 'Jump')]),
    'v2': _video([_ann(1.0, 2.0, 3, 'Run')]),
  }
  with pytest.raises(
    ValueError, match=r"ann\.json: video 'v2' annotation 0: field \"label\" 'Run'"
  ):
    load_actionformer_json(_write(tmp_path, database))


def test_same_name_two_ids_raises(tmp_path):
  database = {'v1': _video([_ann(1.0, 2.0, 3, 'Jump'), _ann(4.0, 5.0, 4, 'Jump')])}
  with pytest.raises(ValueError, match=r"'v1' annotation 1: field \"label_id\" 4"):
    load_actionformer_json(_write(tmp_path, database))


def test_num_classes_bounds_ids_and_names_unseen_classes(tmp_path):
  path = _write(tmp_path, {'v1': _video([_ann(1.0, 2.0, 2, 'Jump')])})
  annotations = load_actionformer_json(path, num_classes=4)
  assert annotations.class_names == ['class_0', 'class_1', 'Jump', 'class_3']
  with pytest.raises(ValueError, match=r"'v1' annotation 0.*label_id.*num_classes=2"):
    load_actionformer_json(path, num_classes=2)


def test_duplicates_are_removed_and_counted(tmp_path):
  anns = [_ann(1.0, 2.0, 0), _ann(1.0005, 1.9995, 0), _ann(1.0, 2.0, 1), _ann(1.0, 2.01, 0)]
  annotations = load_actionformer_json(_write(tmp_path, {'v1': _video(anns)}))
  (video,) = annotations.videos
  np.testing.assert_array_equal(video.labels, [0, 1, 0])
  np.testing.assert_allclose(video.segments_sec, [[1.0, 2.0], [1.0, 2.0], [1.0, 2.01]])
  assert annotations.skipped == {'duplicate_annotation': 1}


def test_zero_length_and_late_segments_are_dropped_and_counted(tmp_path):
  anns = [
    _ann(3.0, 3.0, 0),  # Zero length.
    _ann(4.0, 3.5, 0),  # Reversed.
    _ann(10.0, 11.0, 0),  # Starts at the end.
    _ann(12.0, 13.0, 1),  # Starts after the end.
    _ann(9.0, 12.0, 1),  # Runs past the end: clipped.
    _ann(-0.5, 1.0, 1),  # Starts before 0: clipped.
    _ann(5.0, 6.0, 0),
  ]
  annotations = load_actionformer_json(_write(tmp_path, {'v1': _video(anns, duration=10.0)}))
  (video,) = annotations.videos
  np.testing.assert_allclose(video.segments_sec, [[9.0, 10.0], [0.0, 1.0], [5.0, 6.0]])
  np.testing.assert_array_equal(video.labels, [1, 1, 0])
  assert annotations.skipped == {
    'zero_length_segment': 2,
    'segment_after_end': 2,
    'segment_clipped': 2,
  }


def test_annotation_without_label_name_gets_a_generated_name(tmp_path):
  ann = {'segment': [1.0, 2.0], 'label_id': 1}
  annotations = load_actionformer_json(_write(tmp_path, {'v1': _video([ann])}))
  assert annotations.class_names == ['class_0', 'class_1']


def test_subset_selection_on_small_file(tmp_path):
  path = _write(tmp_path, {'a': _video([], subset='Training'), 'b': _video([], subset='test')})
  annotations = load_actionformer_json(path)
  assert [v.video_id for v in annotations.subset('training')] == ['a']
  assert [v.video_id for v in annotations.subset(('TEST', 'training'))] == ['a', 'b']
  with pytest.raises(ValueError, match=r"ann\.json.*\['validation'\]"):
    annotations.subset('validation')
