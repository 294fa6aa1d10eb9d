"""Tests for the flat, super-event, BSN and ActivityNet schemas and `load_annotations` detection."""

import collections
import csv
import json
import math
import pathlib

import numpy as np
import pytest

from asl_jax.data.annotations import (
  UNKNOWN_FPS,
  detect_schema,
  load_actionformer_json,
  load_annotations,
  load_bsn_json,
  load_flat_json,
  load_superevents_json,
  read_class_names,
)

# Reasons that count something other than one removed annotation.
_NOT_REMOVALS = ('segment_clipped', 'video_without_actions')


def _kept(annotations) -> int:
  return sum(len(v.labels) for v in annotations.videos)


def _removed(annotations) -> int:
  return sum(n for reason, n in annotations.skipped.items() if reason not in _NOT_REMOVALS)


def _check_records(annotations) -> None:
  for v in annotations.videos:
    assert v.segments_sec.dtype == np.float64 and v.labels.dtype == np.int32
    assert np.all(v.labels >= 0) and np.all(v.labels < annotations.num_classes)


def _same_records(a, b) -> None:
  assert a.class_names == b.class_names and a.skipped == b.skipped
  assert len(a.videos) == len(b.videos)
  for x, y in zip(a.videos, b.videos):
    assert (x.video_id, x.subset, x.duration, x.fps) == (y.video_id, y.subset, y.duration, y.fps)
    np.testing.assert_array_equal(x.segments_sec, y.segments_sec)
    np.testing.assert_array_equal(x.labels, y.labels)


# ----------------------------------------------------------------------------------------------
# Real files, against counts taken by a plain walk of the file.


def _walk_superevents(path: pathlib.Path) -> dict:
  with open(path) as f:
    data = json.load(f)
  actions = [(a, v['duration']) for v in data.values() for a in v['actions']]
  nonempty = [(a, d) for a, d in actions if a[2] > a[1]]
  inside = [(a, d) for a, d in nonempty if a[1] < d]
  return {
    'data': data,
    'subsets': collections.Counter(v['subset'] for v in data.values()),
    'classes': {a[0] for a, _ in actions},
    'instances': len(actions),
    'zero_length': len(actions) - len(nonempty),
    'inverted': sum(a[2] < a[1] for a, _ in actions),
    'after_end': len(nonempty) - len(inside),
    'clipped': sum(a[1] < 0 or a[2] > d for a, d in inside),
    'no_actions': sum(not v['actions'] for v in data.values()),
  }


def test_charades_superevents_counts(annotations_dir):
  path = annotations_dir / 'charades_superevents.json'
  walk = _walk_superevents(path)
  assert walk['subsets'] == {'training': 7983, 'testing': 1863}
  assert walk['classes'] == set(range(157)) and walk['instances'] == 66494

  annotations = load_superevents_json(path)
  _check_records(annotations)
  assert len(annotations.videos) == 9846
  assert collections.Counter(v.subset for v in annotations.videos) == walk['subsets']
  assert annotations.class_names == [f'class_{k}' for k in range(157)]
  assert {v.fps for v in annotations.videos} == {UNKNOWN_FPS}
  assert _kept(annotations) + _removed(annotations) == walk['instances']
  skipped = annotations.skipped
  assert skipped.get('zero_length_segment', 0) == walk['zero_length'] == 7
  assert skipped.get('segment_after_end', 0) == walk['after_end'] == 0
  assert skipped.get('segment_clipped', 0) == walk['clipped'] == 19615
  assert skipped['video_without_actions'] == walk['no_actions'] == 223
  assert skipped.get('duplicate_annotation', 0) == 0
  assert _kept(annotations) == 66487
  # Videos without actions are kept, with zero segments.
  assert sum(len(v.labels) == 0 for v in annotations.videos) == 223
  # Charades' label is the class itself (label_offset 0), in file order.
  vid = next(iter(walk['data']))
  first = annotations.videos[0]
  assert first.video_id == vid
  assert first.labels[0] == walk['data'][vid]['actions'][0][0]

  _same_records(load_annotations(path), annotations)
  as_written = load_superevents_json(path, cleaning='none')
  # Charades' seven empty segments are all reversed (end < start): dropped in every mode.
  assert walk['inverted'] == walk['zero_length']
  assert _kept(as_written) == walk['instances'] - walk['inverted']
  assert as_written.skipped == {'video_without_actions': 223, 'inverted_segment': 7}


def test_superevents_converted_to_flat_loads_the_same(annotations_dir, tmp_path):
  """ASL's converter (convert_gt_annotations_as_ego4d.py) turns super-events into flat files."""
  walk = _walk_superevents(annotations_dir / 'charades_superevents.json')
  flat = {
    vid: {
      'subset': v['subset'],
      'duration': v['duration'],
      'fps': -1,
      'annotations': [{'segment': [s, e], 'label_id': c} for c, s, e in v['actions']],
    }
    for vid, v in walk['data'].items()
  }
  path = tmp_path / 'charades_flat.json'
  path.write_text(json.dumps(flat))
  from_flat = load_flat_json(path)
  from_superevents = load_superevents_json(annotations_dir / 'charades_superevents.json')
  assert detect_schema(flat) == 'flat'
  from_superevents.skipped.pop('video_without_actions')
  _same_records(from_flat, from_superevents)
  _same_records(load_annotations(path), from_flat)


def test_multithumos_through_load_annotations(annotations_dir):
  path = annotations_dir / 'multithumos.json'
  with open(path) as f:
    database = json.load(f)['database']
  instances = sum(len(v['annotations']) for v in database.values())
  annotations = load_annotations(path)
  _same_records(annotations, load_actionformer_json(path))
  assert annotations.num_classes == 65 and len(annotations.videos) == 412
  assert _kept(annotations) + _removed(annotations) == instances == 38668
  assert {v.video_id: v.fps for v in annotations.videos} == {
    vid: v['fps'] for vid, v in database.items()
  }


def _walk_bsn(annotations_dir: pathlib.Path) -> dict:
  with open(annotations_dir / 'anet_bsn_anno_action.json') as f:
    data = json.load(f)
  with open(annotations_dir / 'anet_bsn_video_info.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  with open(annotations_dir / 'anet_bsn_action_name.csv') as f:
    names = [line.strip() for line in f][1:]
  anns = [(a, v['duration_second']) for v in data.values() for a in v['annotations']]
  return {
    'data': data,
    'rows': rows,
    'names': names,
    'subsets': collections.Counter(r['subset'] for r in rows),
    'labels': {a['label'] for a, _ in anns},
    'instances': len(anns),
    'zero_length': sum(a['segment'][1] <= a['segment'][0] for a, _ in anns),
    'clipped': sum(a['segment'][1] > d or a['segment'][0] < 0 for a, d in anns),
  }


@pytest.fixture(scope='module')
def bsn_walk(annotations_dir) -> dict:
  return _walk_bsn(annotations_dir)


def test_bsn_activitynet_counts(annotations_dir, bsn_walk):
  walk = bsn_walk
  assert walk['subsets'] == {'training': 9649, 'validation': 4728, 'testing': 4851}
  assert len(walk['labels']) == 200 and sorted(walk['names']) == sorted(walk['labels'])
  assert walk['instances'] == 22152

  annotations = load_bsn_json(
    annotations_dir / 'anet_bsn_anno_action.json',
    video_info_csv=annotations_dir / 'anet_bsn_video_info.csv',
    action_names_csv=annotations_dir / 'anet_bsn_action_name.csv',
  )
  _check_records(annotations)
  assert annotations.class_names == walk['names']
  assert [v.video_id for v in annotations.videos] == [r['video'] for r in walk['rows']]
  assert collections.Counter(v.subset for v in annotations.videos) == walk['subsets']
  assert [v.fps for v in annotations.videos] == [float(r['fps']) for r in walk['rows']]
  assert all(len(v.labels) == 0 for v in annotations.subset('testing'))
  assert _kept(annotations) + _removed(annotations) == walk['instances']
  assert annotations.skipped == {
    'zero_length_segment': walk['zero_length'],
    'segment_clipped': walk['clipped'],
    'duplicate_annotation': 50,
  }
  assert (walk['zero_length'], walk['clipped'], _kept(annotations)) == (12, 215, 22090)
  # Labels index the names file; the first annotation of the first video, checked by hand.
  vid, entry = next((k, v) for k, v in walk['data'].items() if v['annotations'])
  record = next(v for v in annotations.videos if v.video_id == vid)
  assert annotations.class_names[record.labels[0]] == entry['annotations'][0]['label']


def test_bsn_sorted_names_class_agnostic_and_as_written(annotations_dir, bsn_walk):
  json_path = annotations_dir / 'anet_bsn_anno_action.json'
  info = annotations_dir / 'anet_bsn_video_info.csv'
  sorted_names = load_annotations(json_path, video_info_csv=info)
  assert sorted_names.class_names == sorted(bsn_walk['labels'])

  agnostic = load_bsn_json(json_path, video_info_csv=info, class_agnostic=True)
  assert agnostic.class_names == ['action']
  assert all(np.all(v.labels == 0) for v in agnostic.videos)
  # Coinciding segments of two classes become duplicates once the classes are merged.
  assert agnostic.skipped['duplicate_annotation'] >= sorted_names.skipped['duplicate_annotation']

  as_written = load_bsn_json(json_path, video_info_csv=info, cleaning='none')
  assert as_written.skipped == {} and _kept(as_written) == bsn_walk['instances']
  dedup = load_bsn_json(json_path, video_info_csv=info, cleaning='duplicates')
  assert dedup.skipped == {'duplicate_annotation': 50}


def test_read_class_names(annotations_dir, tmp_path):
  names = read_class_names(annotations_dir / 'anet_bsn_action_name.csv')
  assert len(names) == 200 and names[0] == 'Applying sunscreen'
  path = tmp_path / 'names.csv'
  path.write_text('action\nJump\n\n"Run, fast"\n')
  assert read_class_names(path) == ['Jump', 'Run, fast']
  path.write_text('action\nJump,Run\n')
  with pytest.raises(ValueError, match=r'names\.csv: line 2'):
    read_class_names(path)
  path.write_text('action\n')
  with pytest.raises(ValueError, match='no class names'):
    read_class_names(path)


# ----------------------------------------------------------------------------------------------
# Small synthetic files: each schema's rules and error paths.


def _write_json(tmp_path: pathlib.Path, data, name: str = 'ann.json') -> pathlib.Path:
  path = tmp_path / name
  path.write_text(json.dumps(data))
  return path


def _flat_video(annotations, *, subset='train', duration=10.0, **extra) -> dict:
  return {'subset': subset, 'duration': duration, 'annotations': annotations, **extra}


def test_flat_fps_unknown_default_and_offset(tmp_path):
  path = _write_json(
    tmp_path,
    {
      'a': _flat_video([{'segment': [1.0, 2.0], 'label_id': 3}], fps=-1),
      'b': _flat_video([], fps=1.8741513727840071, clip_id='x', parent_start_sec=4.0),
      'c': _flat_video([{'segment': [3.0, 4.0], 'label_id': 1, 'label': 'Run'}]),
    },
  )
  annotations = load_flat_json(path)
  assert [v.fps for v in annotations.videos] == [UNKNOWN_FPS, 1.8741513727840071, UNKNOWN_FPS]
  assert annotations.class_names == ['class_0', 'Run', 'class_2', 'class_3']
  assert [v.fps for v in load_flat_json(path, default_fps=30.0).videos] == [30.0] * 3
  shifted = load_flat_json(path, label_offset=-1, num_classes=3)
  assert [v.labels.tolist() for v in shifted.videos] == [[2], [], [0]]
  assert shifted.class_names == ['Run', 'class_1', 'class_2']
  with pytest.raises(ValueError, match=r"video 'c' annotation 0.*label_id.*label_offset -2"):
    load_flat_json(path, label_offset=-2)


@pytest.mark.parametrize(
  'video, message',
  [
    (_flat_video([], fps=0), r"video 'v'.*\"fps\" must be positive"),
    (_flat_video([], fps=-2), r"video 'v'.*\"fps\" must be positive"),
    (_flat_video([], fps=math.nan), r"video 'v'.*'fps'"),
    (_flat_video([{'segment': [1.0, 2.0]}]), r"video 'v' annotation 0.*\"label_id\""),
    (_flat_video([{'segment': [1.0], 'label_id': 0}]), r"video 'v' annotation 0.*\"segment\""),
    (_flat_video([], duration=0), r"video 'v'.*\"duration\" must be positive"),
    ({'duration': 3.0, 'annotations': []}, r"video 'v'.*'subset'"),
  ],
)
def test_flat_errors_name_file_video_and_field(tmp_path, video, message):
  path = _write_json(tmp_path, {'v': video})
  with pytest.raises(ValueError, match=r'ann\.json: ' + message):
    load_flat_json(path)


def test_superevents_offset_and_videos_without_actions(tmp_path):
  data = {
    'a': {'subset': 'training', 'duration': 10.0, 'actions': [[1, 1.0, 2.0], [65, 3.0, 4.0]]},
    'b': {'subset': 'testing', 'duration': 5.0, 'actions': []},
  }
  path = _write_json(tmp_path, data)
  annotations = load_superevents_json(path, label_offset=-1, num_classes=65)
  assert annotations.num_classes == 65
  assert [v.labels.tolist() for v in annotations.videos] == [[0, 64], []]
  assert annotations.skipped == {'video_without_actions': 1}
  with pytest.raises(ValueError, match=r"video 'a' action 1: field \"class\" 65 is >= num_class"):
    load_superevents_json(path, num_classes=65)
  names = [f'c{k}' for k in range(66)]
  assert load_superevents_json(path, class_names=names).class_names == names


@pytest.mark.parametrize(
  'actions, message',
  [
    ([[1, 2.0]], r'action 0: field "actions" entries must be \[class, start, end\]'),
    ([[1.5, 1.0, 2.0]], r'action 0: field "class" must be an integer'),
    ([[0, 'x', 2.0]], r"action 0: field 'start' must be a number"),
    ([[0, 1.0, math.inf]], r"action 0: field 'end' is not finite"),
    ([[0, 1.0, 2.0], [-1, 1.0, 2.0]], r'action 1: field "class" must be >= 0'),
    ('none', r'field "actions" must be a list'),
  ],
)
def test_superevents_errors(tmp_path, actions, message):
  path = _write_json(
    tmp_path, {'vid': {'subset': 'training', 'duration': 10.0, 'actions': actions}}
  )
  with pytest.raises(ValueError, match=r"ann\.json: video 'vid'.*" + message):
    load_superevents_json(path)


def _write_bsn(
  tmp_path,
  data: dict,
  rows: list[str],
  header='video,numFrame,seconds,fps,rfps,subset,featureFrame',
):
  json_path = _write_json(tmp_path, data, 'bsn.json')
  csv_path = tmp_path / 'info.csv'
  csv_path.write_text('\n'.join([header, *rows]) + '\n')
  return json_path, csv_path


def _bsn_video(annotations, duration=20.0) -> dict:
  return {
    'duration_second': duration,
    'duration_frame': 500,
    'feature_frame': 496,
    'annotations': annotations,
  }


def test_bsn_small(tmp_path):
  data = {
    'v_a': _bsn_video(
      [{'segment': [1.0, 2.0], 'label': 'Run'}, {'segment': [3.0, 25.0], 'label': 'Jump'}]
    ),
    'v_b': _bsn_video([]),
  }
  rows = [
    'v_a,500,20.0,25.0,25.0,training,496',
    'v_b,500,20.0,30.0,30.0,validation,496',
    'v_c,90,3.0,30.0,30.0,testing,96',
  ]
  json_path, csv_path = _write_bsn(tmp_path, data, rows)
  annotations = load_bsn_json(json_path, video_info_csv=csv_path)
  assert annotations.class_names == ['Jump', 'Run']
  assert [(v.video_id, v.subset, v.fps, v.duration) for v in annotations.videos] == [
    ('v_a', 'training', 25.0, 20.0),
    ('v_b', 'validation', 30.0, 20.0),
    ('v_c', 'testing', 30.0, 3.0),  # In the CSV only: kept, duration from the CSV.
  ]
  np.testing.assert_array_equal(annotations.videos[0].labels, [1, 0])
  np.testing.assert_allclose(annotations.videos[0].segments_sec, [[1.0, 2.0], [3.0, 20.0]])
  assert annotations.skipped == {'segment_clipped': 1}
  assert detect_schema(data) == 'bsn'
  with pytest.raises(ValueError, match=r'bsn\.json.*not one of the 1 class names'):
    load_bsn_json(json_path, video_info_csv=csv_path, class_names=['Run'])
  with pytest.raises(ValueError, match='not both'):
    load_bsn_json(
      json_path, video_info_csv=csv_path, class_names=['Run'], action_names_csv=csv_path
    )


@pytest.mark.parametrize(
  'data, rows, header, message',
  [
    (
      {'v_x': _bsn_video([])},
      ['v_a,1,2.0,25,25,training,1'],
      None,
      r"bsn\.json: video 'v_x' has no row in .*info\.csv",
    ),
    (
      {},
      ['v_a,1,2.0,25'],
      'video,numFrame,seconds,fps',
      r"info\.csv: missing column\(s\) \['subset'\]",
    ),
    (
      {},
      ['v_a,1,2.0,abc,25,training,1'],
      None,
      r"info\.csv: line 2 \(video 'v_a'\): field 'fps' must be a number",
    ),
    (
      {},
      ['v_a,1,2.0,0,25,training,1'],
      None,
      r"info\.csv: line 2 \(video 'v_a'\): field 'fps' must be positive",
    ),
    (
      {},
      ['v_a,1,2.0,25,25,training,1', 'v_a,1,2.0,25,25,training,1'],
      None,
      r"line 3 \(video 'v_a'\).*repeated",
    ),
    (
      {'v_a': _bsn_video([{'segment': [1.0, 2.0]}])},
      ['v_a,1,2.0,25,25,training,1'],
      None,
      r"video 'v_a' annotation 0: expected .*\"label\"",
    ),
    (
      {'v_a': _bsn_video([{'segment': [1.0, 2.0], 'label': 3}])},
      ['v_a,1,2.0,25,25,training,1'],
      None,
      r"video 'v_a' annotation 0: field \"label\" must be a string",
    ),
    (
      {'v_a': {'annotations': []}},
      ['v_a,1,2.0,25,25,training,1'],
      None,
      r"video 'v_a': missing field \"duration_second\"",
    ),
  ],
)
def test_bsn_errors(tmp_path, data, rows, header, message):
  kwargs = {} if header is None else {'header': header}
  json_path, csv_path = _write_bsn(tmp_path, data, rows, **kwargs)
  with pytest.raises(ValueError, match=message):
    load_bsn_json(json_path, video_info_csv=csv_path)


def test_activitynet_official_format(tmp_path):
  """ActivityNet's own file: "database" with name-only labels and no fps."""
  database = {
    'a1': {
      'subset': 'validation',
      'duration': 30.0,
      'url': 'u',
      'annotations': [
        {'segment': [1.0, 5.0], 'label': 'Surfing'},
        {'segment': [6.0, 8.0], 'label': 'Archery'},
      ],
    },
    'a2': {'subset': 'testing', 'duration': 20.0, 'annotations': []},
  }
  path = _write_json(tmp_path, {'version': 'VERSION 1.3', 'taxonomy': [], 'database': database})
  annotations = load_annotations(path)
  assert annotations.class_names == ['Archery', 'Surfing']
  assert [v.fps for v in annotations.videos] == [UNKNOWN_FPS, UNKNOWN_FPS]
  assert annotations.videos[0].labels.tolist() == [1, 0]
  assert [v.fps for v in load_annotations(path, default_fps=25.0).videos] == [25.0, 25.0]
  given = load_actionformer_json(path, class_names=['Surfing', 'Archery', 'Diving'])
  assert given.class_names == ['Surfing', 'Archery', 'Diving']
  assert given.videos[0].labels.tolist() == [0, 1]
  with pytest.raises(
    ValueError, match=r"ann\.json: video 'a1' annotation 1: field \"label\" 'Archery' is not one"
  ):
    load_actionformer_json(path, class_names=['Surfing'])


def test_cleaning_modes(tmp_path):
  anns = [
    {'segment': [1.0, 2.0], 'label_id': 0},
    {'segment': [1.0005, 2.0], 'label_id': 0},  # Duplicate.
    {'segment': [3.0, 3.0], 'label_id': 0},  # Zero length.
    {'segment': [5.0, 4.0], 'label_id': 0},  # Inverted.
    {'segment': [9.0, 12.0], 'label_id': 1},  # Past the end.
  ]
  path = _write_json(tmp_path, {'database': {'v': _flat_video(anns, fps=30.0)}})
  full = load_actionformer_json(path)
  assert _kept(full) == 2
  assert full.skipped == {'duplicate_annotation': 1, 'zero_length_segment': 2, 'segment_clipped': 1}
  dedup = load_actionformer_json(path, cleaning='duplicates')
  np.testing.assert_allclose(dedup.videos[0].segments_sec, [[1.0, 2.0], [3.0, 3.0], [9.0, 12.0]])
  assert dedup.skipped == {'duplicate_annotation': 1, 'inverted_segment': 1}
  none = load_actionformer_json(path, cleaning='none')
  assert _kept(none) == 4 and none.skipped == {'inverted_segment': 1}
  with pytest.raises(ValueError, match='cleaning must be one of'):
    load_actionformer_json(path, cleaning='some')


def test_detect_schema_and_options(tmp_path):
  assert detect_schema({'database': {}}) == 'database'
  assert detect_schema({'v': {'subset': 's', 'duration': 1.0, 'actions': []}}) == 'superevents'
  assert detect_schema({'v_a': {'duration_second': 1.0, 'annotations': []}}) == 'bsn'
  assert detect_schema({'v': _flat_video([])}) == 'flat'
  assert detect_schema({}) == 'flat'

  superevents = _write_json(
    tmp_path, {'v': {'subset': 's', 'duration': 1.0, 'actions': []}}, 's.json'
  )
  with pytest.raises(
    ValueError, match=r"s\.json: option\(s\) \['video_info_csv'\] do not apply.*superevents"
  ):
    load_annotations(superevents, video_info_csv='x.csv')
  assert load_annotations(superevents, video_info_csv=None).skipped == {'video_without_actions': 1}
  bsn = _write_json(tmp_path, {'v_a': _bsn_video([])}, 'b.json')
  with pytest.raises(ValueError, match=r'b\.json: BSN-format annotations need video_info_csv'):
    load_annotations(bsn)


def test_unreadable_files(tmp_path):
  bad = tmp_path / 'broken.json'
  bad.write_text('{"database": ')
  for loader in (load_annotations, load_flat_json, load_superevents_json, load_actionformer_json):
    with pytest.raises(ValueError, match=r'broken\.json: not a valid JSON file'):
      loader(bad)
  with pytest.raises(FileNotFoundError, match='missing.json'):
    load_annotations(tmp_path / 'missing.json')
  with pytest.raises(ValueError, match=r'list\.json: expected a top-level object'):
    load_flat_json(_write_json(tmp_path, [1, 2], 'list.json'))
