"""The validator on every annotation schema: clean data passes, each schema's bad inputs are named.

The cases are the real annotation files cut to a few videos (``schema_datasets``); the synthetic
``test_validation`` covers each problem kind on the ActionFormer schema in depth.
"""

import csv
import json

import numpy as np
import pytest

from asl_jax.data import validation
from asl_jax.data.validation import DATASET
from tests.data import schema_datasets

pytest.importorskip('h5py')


def _case(name, annotations_dir, tmp_path, **fields):
  config = schema_datasets.make(name, annotations_dir, tmp_path / name)
  config.update(fields)
  return config


def _with(config, **fields):
  out = config.copy_and_resolve_references()
  out.update(fields)
  return out


def _kinds(report):
  return {(p.video_id, p.kind, p.field) for p in report.problems}


def _edit_json(path, edit):
  data = json.loads(open(path).read())
  edit(data)
  with open(path, 'w') as f:
    json.dump(data, f)


@pytest.mark.parametrize('name', schema_datasets.CASES)
def test_every_schema_validates_clean(name, annotations_dir, tmp_path):
  config = _case(name, annotations_dir, tmp_path)
  report = validation.validate_from_config(config)
  assert report.ok, report.format_table()
  schema = {'bsn': 'bsn', 'superevents': 'superevents', 'flat': 'flat'}.get(
    config.annotation_format, 'database'
  )
  assert report.settings['schema'] == schema
  assert len(report.videos) == 4 if name != 'multithumos_flat_hdf5' else 3
  assert all(v.length and v.dim == config.input_dim for v in report.videos)
  known_fps = name in ('thumos_database', 'anet_bsn')  # Flat (-1) and super-events: unknown.
  assert all((v.expected_length is not None) == known_fps for v in report.videos)
  if report.warnings:  # Charades: actions ending after the video, which the loader clips.
    assert set(report.warning_counts()) <= {'segment_outside_duration', 'zero_length_segment'}
    assert not validation.validate_from_config(config, strict=True).ok


def test_database_settings_that_cannot_apply(annotations_dir, tmp_path):
  config = _case('thumos_database', annotations_dir, tmp_path)
  names = tmp_path / 'names.csv'
  names.write_text('name\n' + '\n'.join(f'c{k}' for k in range(19)) + '\n')
  cases = [
    (dict(annotation_format='superevents'), 'annotation_format', "but the file is 'database'"),
    (dict(class_names_file=str(names)), 'class_names_file', '19 class names but num_classes=20'),
    (dict(force_upsampling=True, max_seq_len=0), 'geometry', 'force_upsampling needs max_seq_len'),
    (dict(downsample_rate=0), 'geometry', 'downsample_rate must be >= 1'),
  ]
  for fields, field, message in cases:
    report = validation.validate_from_config(_with(config, **fields))
    problems = report.dataset_problems
    assert [(p.kind, p.field) for p in problems] == [('bad_config', field)], fields
    assert message in problems[0].message


def test_database_label_name_that_is_not_a_string(annotations_dir, tmp_path):
  config = _case('thumos_database', annotations_dir, tmp_path)
  video = {}

  def edit(data):
    video['id'] = vid = next(iter(data['database']))
    data['database'][vid]['annotations'][0]['label'] = 5

  _edit_json(config.annotation_file, edit)
  report = validation.validate_from_config(config)
  assert _kinds(report) == {(video['id'], 'bad_annotation', 'annotations[0].label')}


def test_flat_schema_problems(annotations_dir, tmp_path):
  import h5py

  config = _case('multithumos_flat_hdf5', annotations_dir, tmp_path)
  ids = list(json.loads(open(config.annotation_file).read()))

  def edit(data):
    data[ids[0]]['annotations'][0]['label_id'] = 65
    del data[ids[0]]['subset']
    data[ids[1]]['fps'] = 'thirty'

  _edit_json(config.annotation_file, edit)
  with h5py.File(config.feature_dir, 'a') as f:
    del f[ids[1]]
  report = validation.validate_from_config(config)
  assert _kinds(report) == {
    (ids[0], 'unknown_label', 'annotations[0].label_id'),
    (ids[1], 'bad_annotation', 'fps'),
    (ids[1], 'missing_features', 'features'),
    (ids[0], 'bad_annotation', 'subset'),
  }
  missing = next(p for p in report.problems if p.kind == 'missing_features')
  assert f"no dataset '{ids[1]}' in HDF5 file {config.feature_dir}" in missing.message
  # label_offset applies to flat files: ids 1..65 -> 0..64 make 65 valid and 0 invalid.
  config.label_offset = -1
  offset = validation.validate_from_config(config)
  assert (ids[0], 'unknown_label', 'annotations[0].label_id') not in _kinds(offset)


def test_superevents_schema_problems(annotations_dir, tmp_path):
  config = _case('charades_superevents_two_sets', annotations_dir, tmp_path)
  ids = list(json.loads(open(config.annotation_file).read()))

  def edit(data):
    data[ids[0]]['actions'][0][0] = 157
    data[ids[1]]['actions'][1] = [3, 2.0]
    data[ids[2]]['actions'] = 'none'

  _edit_json(config.annotation_file, edit)
  rgb, flow = config.feature_dir.split(',')
  np.save(f'{flow}/{ids[3]}.npy', np.zeros((30, schema_datasets.DIM + 1), np.float32))
  report = validation.validate_from_config(config)
  assert _kinds(report) == {
    (ids[0], 'unknown_label', 'actions[0][0]'),
    (ids[1], 'bad_annotation', 'actions[1]'),
    (ids[2], 'bad_annotation', 'actions'),
    (ids[3], 'wrong_dim', 'features'),
  }
  wrong = next(p for p in report.problems if p.kind == 'wrong_dim')
  assert f'{flow}/{ids[3]}.npy' in wrong.message and 'expected 8' in wrong.message
  assert '157 is not an integer in [0, 157)' in report.problems[0].message


def test_two_sets_of_unequal_length_under_policy_error(annotations_dir, tmp_path):
  config = _case('charades_superevents_two_sets', annotations_dir, tmp_path)
  config.feature_policy = 'error'
  report = validation.validate_from_config(config)
  assert {p.kind for p in report.problems} == {'bad_shape'}
  assert 'feature sets differ in length' in report.problems[0].message
  assert len(report.problems_by_video()) == 4


def _bsn_rows(config):
  with open(config.video_info_csv, newline='') as f:
    return list(csv.DictReader(f))


def test_bsn_schema_problems(annotations_dir, tmp_path):
  config = _case('anet_bsn', annotations_dir, tmp_path)
  rows = _bsn_rows(config)
  ids = [r['video'] for r in rows]
  testing = next(r['video'] for r in rows if r['subset'] == 'testing')

  def edit(data):
    data[ids[0]]['annotations'][0]['label'] = 'Juggling chainsaws'
    data[ids[1]]['duration_second'] = -3
    data['v_not_in_the_csv'] = {'duration_second': 10.0, 'annotations': []}

  _edit_json(config.annotation_file, edit)
  (tmp_path / 'anet_bsn' / 'features' / f'{testing}.npy').unlink()
  report = validation.validate_from_config(config)
  assert _kinds(report) == {
    (ids[0], 'unknown_label', 'annotations[0].label'),
    (ids[1], 'bad_annotation', 'duration_second'),
    ('v_not_in_the_csv', 'bad_annotation', 'video_info_csv'),
    ('v_not_in_the_csv', 'missing_features', 'features'),
    (testing, 'missing_features', 'features'),
  }
  assert "'Juggling chainsaws' is not one of the 200 names" in report.problems[0].message
  assert next(v for v in report.videos if v.video_id == testing).subset == 'testing'


def test_bsn_labels_and_files(annotations_dir, tmp_path):
  config = _case('anet_bsn', annotations_dir, tmp_path)
  # 200 classes (not class-agnostic) validate too; 5 cannot hold the file's 200 names.
  assert validation.validate_from_config(_with(config, num_classes=200)).ok
  few = validation.validate_from_config(_with(config, num_classes=5))
  assert [(p.video_id, p.kind) for p in few.problems] == [(DATASET, 'unknown_label')]
  assert '200 label names but num_classes=5' in few.problems[0].message
  # A wrong fps shows as feature lengths off by a factor.
  fast = validation.validate_from_config(_with(config, default_fps=50.0))
  assert {p.kind for p in fast.problems} == {'length_mismatch'}
  assert len(fast.problems_by_video()) == 4
  # No video_info.csv: the subsets and fps are unknown.
  none = validation.validate_from_config(_with(config, video_info_csv=''))
  assert [(p.kind, p.field) for p in none.problems] == [('bad_config', 'video_info_csv')]
  # A CSV the loader refuses (a repeated video) is a problem of the whole dataset.
  rows = _bsn_rows(config)
  with open(config.video_info_csv, 'a', newline='') as f:
    csv.DictWriter(f, fieldnames=list(rows[0])).writerow(rows[0])
  repeated = validation.validate_from_config(config)
  assert [(p.kind, p.field) for p in repeated.problems] == [
    ('bad_annotation_file', 'video_info_csv')
  ]
  assert 'field "video" is empty or repeated' in repeated.problems[0].message


def test_what_only_the_loader_refuses_is_still_reported(annotations_dir, tmp_path):
  """The final check runs the real loader: a rule the per-video checks lack still fails."""
  config = _case('anet_bsn', annotations_dir, tmp_path)
  names = tmp_path / 'names.csv'
  with open(config.class_names_file) as f:
    lines = f.read().splitlines()
  names.write_text('\n'.join([*lines, lines[1]]) + '\n')  # One name twice.
  config.class_names_file = str(names)
  report = validation.validate_from_config(config)
  assert [(p.video_id, p.kind) for p in report.problems] == [(DATASET, 'bad_annotation_file')]
  assert 'the loader refuses it' in report.problems[0].message
  assert 'duplicates' in report.problems[0].message


def test_missing_remote_files_are_reported_not_raised(annotations_dir, tmp_path):
  """URLs fail with tf.errors (not OSError): still one problem of the file, not a crash."""
  pytest.importorskip('tensorflow')
  config = _case('anet_bsn', annotations_dir, tmp_path)
  for field, report_field in (('video_info_csv', 'video_info_csv'), ('annotation_file', 'file')):
    report = validation.validate_from_config(_with(config, **{field: 'ram://asl_jax_none/x.json'}))
    assert [(p.kind, p.field) for p in report.problems] == [('bad_annotation_file', report_field)]
