"""Video ids that differ only in case: reported by the validator (an error with --strict), and
training warns; a missing feature folder is one error for the folder; a non-NumPy .npy is named."""

import json
import logging
import shutil

import numpy as np
import pytest

from asl_jax import errors
from asl_jax.data import annotations_common, features
from asl_jax.data.feature_formats import FeatureReader, parse_sources
from tests.data.test_validation import DIM, _validate, dataset  # noqa: F401 - a fixture


def test_case_collisions_groups_ids_equal_but_for_case():
  ids = ['Video_A', 'b', 'video_a', 'B', 'c', 'VIDEO_A', 'b']
  assert annotations_common.case_collisions(ids) == [('Video_A', 'video_a', 'VIDEO_A'), ('b', 'B')]
  assert annotations_common.case_collisions(['a', 'b', 'c']) == []


def _rename_with_case_twin(root):
  """synth_00007 (validation) becomes SYNTH_00000, the case twin of synth_00000 (training)."""
  path = root / 'annotations.json'
  data = json.loads(path.read_text())
  database = data['database']
  assert database['synth_00000']['subset'] != database['synth_00007']['subset']
  database['SYNTH_00000'] = database.pop('synth_00007')
  path.write_text(json.dumps(data))
  shutil.move(root / 'features' / 'synth_00007.npy', root / 'features' / 'SYNTH_00000.npy')


def test_validator_warns_about_case_twins_and_strict_rejects_them(dataset):  # noqa: F811
  _rename_with_case_twin(dataset)
  report = _validate(dataset)
  assert report.ok, report.format_table()  # A warning by default ...
  assert {(w.video_id, w.kind) for w in report.warnings} == {
    ('synth_00000', 'video_id_case'),
    ('SYNTH_00000', 'video_id_case'),
  }
  assert (
    "video ids 'synth_00000' (training), 'SYNTH_00000' (validation) differ only in letter case"
  ) in report.warnings[0].message
  strict = _validate(dataset, strict=True)  # ... and a problem with --strict.
  assert not strict.ok
  assert {(p.video_id, p.kind) for p in strict.problems} == {
    ('synth_00000', 'video_id_case'),
    ('SYNTH_00000', 'video_id_case'),
  }


class _Stop(Exception):
  pass


def test_training_warns_about_case_twins(dataset, monkeypatch, caplog):  # noqa: F811
  from asl_jax.train import loop
  from tests.train import helpers

  _rename_with_case_twin(dataset)
  config = helpers.tiny_config(dataset.parent)
  config.data.annotation_file = str(dataset / 'annotations.json')
  config.data.feature_dir = str(dataset / 'features')
  config.data.num_classes = 4
  config.data.train_subset, config.data.eval_subset = 'training', 'validation'

  def stop(*args, **kwargs):  # Right after the data section: nothing is built or written.
    raise _Stop

  monkeypatch.setattr(loop, '_train_batches', stop)
  with caplog.at_level(logging.WARNING, logger='asl_jax.train.loop'), pytest.raises(_Stop):
    loop.train_and_evaluate(config, str(dataset.parent / 'workdir'))
  assert (
    "video ids ['synth_00000', 'SYNTH_00000'] differ only in letter case (subsets ['training', "
    "'validation']): on a case-insensitive file system they read one feature file"
  ) in caplog.text


def test_a_missing_feature_folder_is_one_error_for_the_folder(dataset, tmp_path):  # noqa: F811
  reader = FeatureReader(parse_sources(str(tmp_path / 'nowhere')), input_dim=DIM)
  with pytest.raises(features.FeatureFolderMissing) as error:
    reader.load('synth_00000')
  assert str(error.value) == (
    f'feature folder {tmp_path / "nowhere"} does not exist: check data.feature_dir (or --features)'
  )
  assert isinstance(error.value, errors.UserError)  # One line and exit 2 from every command.
  with pytest.raises(features.FeatureFolderMissing):  # Not one problem per video.
    _validate_with_folder(dataset, tmp_path)


def _validate_with_folder(root, tmp_path):
  from asl_jax.data import validation

  reader = FeatureReader(parse_sources(str(tmp_path / 'nowhere')), input_dim=DIM)
  return validation.validate_dataset(
    str(root / 'annotations.json'),
    reader,
    num_classes=4,
    feat_stride=4.0,
    num_frames=16.0,
    subsets=('training', 'validation'),
  )


@pytest.mark.parametrize(
  'name, content, expected',
  [
    ('text.npy', b'start,end\n1,2\n', "not a NumPy .npy file (it starts with b'start,'"),
    ('pickle.npz', b'\x80\x04\x95', "not a NumPy .npz (zip) file (it starts with b'\\x80\\x04'"),
    ('short.npy', b'', "not a NumPy .npy file (it starts with b''"),
  ],
)
def test_a_file_that_is_not_numpy_is_called_so(tmp_path, name, content, expected):
  (tmp_path / name).write_bytes(content)
  with pytest.raises(features.FeatureError) as error:
    features.load_features(tmp_path / name)
  assert expected in str(error.value) and 'pickled' not in str(error.value)
  np.save(tmp_path / 'real.npy', np.zeros((3, 2), np.float32))  # A real one still loads.
  assert features.load_features(tmp_path / 'real.npy').shape == (3, 2)
