"""Tests for the dataset validator: one case per kind of problem, the report and the CLI."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.data import validation
from asl_jax.data.feature_formats import FeatureReader, parse_sources
from asl_jax.data.synthetic import synthesize_dataset

REPO = pathlib.Path(__file__).resolve().parents[2]
NUM_CLASSES = 4
DIM = 16
GEOMETRY = dict(feat_stride=4.0, num_frames=16.0)


@pytest.fixture
def dataset(tmp_path):
  """8 clean synthetic videos (6 training, 2 validation), T in [64, 128], C = 16."""
  summary = synthesize_dataset(
    tmp_path / 'ds',
    num_videos=8,
    num_classes=NUM_CLASSES,
    feature_dim=DIM,
    min_len=64,
    max_len=128,
    max_instance_frac=0.4,
  )
  return pathlib.Path(summary['path'])


def _validate(root, **kwargs):
  reader = FeatureReader(parse_sources(str(root / 'features')), input_dim=DIM)
  kwargs.setdefault('subsets', ('training', 'validation'))
  num_classes = kwargs.pop('num_classes_override', NUM_CLASSES)
  return validation.validate_dataset(
    str(root / 'annotations.json'), reader, num_classes=num_classes, **GEOMETRY, **kwargs
  )


def _edit_json(root, edit):
  path = root / 'annotations.json'
  data = json.loads(path.read_text())
  edit(data['database'])
  path.write_text(json.dumps(data))


def _only(report, video_id):
  """The (kind, field) pairs reported, all of which must concern ``video_id``."""
  assert {p.video_id for p in report.problems} == {video_id}, report.format_table()
  return {(p.kind, p.field) for p in report.problems}


def test_clean_dataset_passes(dataset):
  report = _validate(dataset)
  assert report.ok, report.format_table()
  assert len(report.videos) == 8
  assert all(v.length == round(v.expected_length) and v.dim == DIM for v in report.videos)
  assert '8 videos checked, 0 with problems' in report.format_table()


def test_missing_feature_file(dataset):
  os.remove(dataset / 'features' / 'synth_00001.npy')
  report = _validate(dataset)
  assert _only(report, 'synth_00001') == {('missing_features', 'features')}
  assert "video 'synth_00001' (" in report.problems[0].message
  assert 'synth_00001.npy): file does not exist' in report.problems[0].message


def test_transposed_features_are_called_out(dataset):
  path = dataset / 'features' / 'synth_00002.npy'
  feats = np.load(path)
  np.save(path, feats.T)
  report = _validate(dataset)
  assert _only(report, 'synth_00002') == {('transposed_features', 'features')}
  assert 'looks like [C, T]' in report.problems[0].message
  assert report.videos[2].length == len(feats)  # T is still shown, un-transposed.


def test_wrong_dim(dataset):
  path = dataset / 'features' / 'synth_00003.npy'
  np.save(path, np.load(path)[:, :8])
  report = _validate(dataset)
  assert _only(report, 'synth_00003') == {('wrong_dim', 'features')}
  assert 'channel dimension is 8, expected 16' in report.problems[0].message


def test_nan_and_inf(dataset):
  path = dataset / 'features' / 'synth_00004.npy'
  feats = np.load(path)
  feats[3, 2], feats[5, 1], feats[6, 0] = np.nan, np.inf, -np.inf
  np.save(path, feats)
  report = _validate(dataset)
  assert _only(report, 'synth_00004') == {('non_finite', 'features')}
  assert '3 non-finite values (1 NaN, 2 Inf)' in report.problems[0].message


def test_unreadable_and_bad_shape_features(dataset):
  (dataset / 'features' / 'synth_00005.npy').write_bytes(b'garbage')
  np.save(dataset / 'features' / 'synth_00006.npy', np.zeros((3, 4, DIM), np.float32))
  kinds = {(p.video_id, p.kind) for p in _validate(dataset).problems}
  assert kinds == {('synth_00005', 'unreadable_features'), ('synth_00006', 'bad_shape')}


def _warned(report, video_id):
  """The (kind, field) warnings, all of which must concern ``video_id``; no problems."""
  assert report.ok, report.format_table()
  assert {p.video_id for p in report.warnings} == {video_id}, report.format_table()
  return {(p.kind, p.field) for p in report.warnings}


def test_segment_outside_duration_is_a_warning_unless_strict(dataset):
  """The loader clips such segments (real files have many: Charades), so they warn by default."""

  def edit(db):
    video = db['synth_00000']
    video['annotations'][0]['segment'][1] = video['duration'] + 5.0
    video['annotations'][1]['segment'][0] = -1.0

  _edit_json(dataset, edit)
  expected = {
    ('segment_outside_duration', 'annotations[0].segment'),
    ('segment_outside_duration', 'annotations[1].segment'),
  }
  report = _validate(dataset)
  assert _warned(report, 'synth_00000') == expected
  table = report.format_table()
  assert 'field: message' not in table  # No table: no video has a problem.
  assert 'segment_outside_duration: 2 in 1 videos, e.g.' in table
  assert '0 with problems, 1 with warnings' in table
  assert 'synth_00000' in report.format_table(show_warnings=True)
  assert report.to_json()['warning_counts'] == {'segment_outside_duration': 2}
  assert _only(_validate(dataset, strict=True), 'synth_00000') == expected


def test_zero_and_negative_length_segments(dataset):
  def edit(db):
    anns = db['synth_00001']['annotations']
    anns[0]['segment'] = [5.0, 5.0]
    anns[1]['segment'] = [6.0, 4.0]

  _edit_json(dataset, edit)
  expected = {
    ('zero_length_segment', 'annotations[0].segment'),
    ('zero_length_segment', 'annotations[1].segment'),
  }
  assert _warned(_validate(dataset), 'synth_00001') == expected
  assert _only(_validate(dataset, strict=True), 'synth_00001') == expected


def test_unknown_labels(dataset):
  def edit(db):
    anns = db['synth_00002']['annotations']
    anns[0]['label_id'] = NUM_CLASSES  # One past the last class.
    anns[1]['label_id'] = -1
    anns[2]['label_id'] = 1.5

  _edit_json(dataset, edit)
  report = _validate(dataset)
  assert _only(report, 'synth_00002') == {
    ('unknown_label', f'annotations[{i}].label_id') for i in range(3)
  }
  assert 'is not an integer in [0, 4)' in report.problems[0].message


def test_conflicting_label_names(dataset):
  def edit(db):
    db['synth_00003']['annotations'][0]['label'] = 'a new name'

  _edit_json(dataset, edit)
  assert _only(_validate(dataset), 'synth_00003') == {('label_conflict', 'annotations[0].label')}


def test_subset_names_matching_nothing(dataset):
  report = _validate(dataset, subsets=('Training', 'test'))  # Matching is case-insensitive.
  assert [(p.video_id, p.kind) for p in report.problems] == [(validation.DATASET, 'unknown_subset')]
  assert "subset 'test' matches no video; subsets in the file: ['training', 'validation']" in (
    report.problems[0].message
  )


def test_length_inconsistent_with_duration(dataset):
  def edit(db):
    db['synth_00004']['duration'] *= 2  # As if the fps or stride were off by a factor of 2.

  _edit_json(dataset, edit)
  report = _validate(dataset)
  assert _only(report, 'synth_00004') == {('length_mismatch', 'features')}
  assert 'wrong fps, stride or file?' in report.problems[0].message
  # The stated tolerance: max(steps, fraction of expected). A tiny shift passes.
  _edit_json(
    dataset, lambda db: db['synth_00004'].update(duration=db['synth_00004']['duration'] / 2 + 0.2)
  )
  assert _validate(dataset).ok
  assert not _validate(dataset, length_tol=0.0, length_tol_steps=1.0).ok


def test_name_labelled_file_without_fps_is_accepted(dataset):
  def edit(db):  # ActivityNet's official layout: labels by name, no label_id, no fps.
    for video in db.values():
      del video['fps']
      for ann in video['annotations']:
        del ann['label_id']

  _edit_json(dataset, edit)
  report = _validate(dataset)
  assert report.ok, report.format_table()
  assert all(v.expected_length is None for v in report.videos)
  assert [p.kind for p in _validate(dataset, num_classes_override=2).problems] == ['unknown_label']


def test_malformed_entries_and_file(dataset):
  def edit(db):
    del db['synth_00005']['duration']
    db['synth_00006']['fps'] = 'thirty'
    db['synth_00007']['annotations'][0]['segment'] = [1.0]

  _edit_json(dataset, edit)
  report = _validate(dataset)
  assert {(p.video_id, p.kind, p.field) for p in report.problems} == {
    ('synth_00005', 'bad_annotation', 'duration'),
    ('synth_00006', 'bad_annotation', 'fps'),
    ('synth_00007', 'bad_annotation', 'annotations[0].segment'),
  }
  (dataset / 'annotations.json').write_text('{not json')
  report = _validate(dataset)
  assert [p.kind for p in report.problems] == ['bad_annotation_file']


def test_report_table_and_json(dataset):
  os.remove(dataset / 'features' / 'synth_00001.npy')
  report = _validate(dataset)
  table = report.format_table()
  assert 'synth_00001' in table and 'missing_features' in table and 'synth_00002' not in table
  assert 'synth_00002' in report.format_table(all_videos=True)
  assert 'length tolerance: max(2.0 steps, 10% of expected)' in table
  data = report.to_json()
  assert data['counts'] == {'missing_features': 1}
  assert list(data['videos']) == ['synth_00001']


def _cli(root, *extra):
  args = [
    sys.executable,
    '-m',
    'asl_jax.cli.validate',
    '--config=configs/custom.py',
    f'--config.data.annotation_file={root / "annotations.json"}',
    f'--config.data.feature_dir={root / "features"}',
    f'--config.data.num_classes={NUM_CLASSES}',
    f'--config.data.input_dim={DIM}',
    '--config.data.train_subset=training',
    '--config.data.eval_subset=validation',
    *extra,
  ]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cli_exit_status_and_table(dataset, tmp_path):
  ok = _cli(dataset)
  assert ok.returncode == 0, ok.stderr
  assert '8 videos checked, 0 with problems' in ok.stdout
  np.save(dataset / 'features' / 'synth_00003.npy', np.zeros((70, 8), np.float32))
  bad = _cli(dataset, f'--json={tmp_path / "report.json"}')
  assert bad.returncode == 1
  assert 'synth_00003' in bad.stdout and 'wrong_dim' in bad.stdout
  assert json.loads((tmp_path / 'report.json').read_text())['counts'] == {'wrong_dim': 1}
