"""Every config loads and validates; bad configs fail with messages a user can act on."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

from asl_jax import configuration

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'asl_jax' / 'configs'
# Every file but the shared helpers (base.py: defaults, ablations.py: variants and sweeps,
# paper_common.py: what the paper configs share).
HELPERS = ('__init__.py', 'base.py', 'ablations.py', 'paper_common.py')
LAUNCHABLE = sorted(p.name for p in CONFIG_DIR.glob('*.py') if p.name not in HELPERS)


def load(name: str):
  path = str(CONFIG_DIR / name.split(':')[0])
  arg = name.split(':', 1)[1] if ':' in name else None
  spec = importlib.util.spec_from_file_location(f'cfg_{abs(hash(name))}', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _valid_custom():
  config = load('custom.py')
  config.data.annotation_file = 'a.json'
  config.data.feature_dir = 'feats'
  return config


@pytest.mark.parametrize('name', LAUNCHABLE + [f'{n}:small' for n in LAUNCHABLE])
def test_every_config_and_small_variant_validates(name):
  config = load(name)
  if not config.data.annotation_file:  # custom.py leaves the data paths to the user.
    config.data.annotation_file, config.data.feature_dir = 'a.json', 'feats'
  configuration.validate_config(config)


def test_small_variant_keeps_data_and_shrinks_model():
  full, small = load('custom.py'), load('custom.py:small')
  assert small.data.to_dict() == full.data.to_dict()
  assert small.model.embed_dim < full.model.embed_dim
  assert small.train.num_epochs <= full.train.num_epochs


def test_unknown_variant_is_rejected():
  with pytest.raises(ValueError, match='unknown variant'):
    load('demo.py:huge')


def test_max_seq_len_not_divisible_by_pyramid_stride():
  config = _valid_custom()
  config.data.max_seq_len = 1000
  with pytest.raises(
    configuration.ConfigError, match=r'max_seq_len=1000 is not divisible .* 32; try 992'
  ):
    configuration.validate_config(config)


def test_regression_ranges_must_match_levels():
  config = _valid_custom()
  config.model.regression_ranges = ((0, 4), (4, 10000))
  with pytest.raises(configuration.ConfigError, match='has 2 ranges but the pyramid has 6 levels'):
    configuration.validate_config(config)


def test_unknown_key_with_suggestion():
  config = _valid_custom()
  config.train.learnig_rate = 1e-3
  with pytest.raises(
    configuration.ConfigError,
    match=r"unknown key 'train.learnig_rate' \(did you mean 'train.learning_rate'",
  ):
    configuration.validate_config(config)


def test_all_problems_reported_at_once():
  config = _valid_custom()
  config.model.num_heads = 3
  config.model.window_size = 4
  config.test.nms_method = 'fast'
  with pytest.raises(configuration.ConfigError) as err:
    configuration.validate_config(config)
  msg = str(err.value)
  assert 'not divisible by model.num_heads=3' in msg and 'window_size 4' in msg and "'fast'" in msg


def test_input_dim_mismatch_names_file_and_video(tmp_path):
  """input_dim is checked against the features when they are read."""
  import json

  import numpy as np

  from asl_jax.data import pipeline

  (tmp_path / 'f').mkdir()
  np.save(tmp_path / 'f' / 'vid1.npy', np.zeros((10, 8), np.float32))
  ann = {
    'database': {
      'vid1': {
        'subset': 'train',
        'duration': 2.0,
        'fps': 30.0,
        'annotations': [{'segment': [0.5, 1.0], 'label': 'a', 'label_id': 0}],
      }
    }
  }
  (tmp_path / 'a.json').write_text(json.dumps(ann))
  config = _valid_custom()
  config.data.annotation_file = str(tmp_path / 'a.json')
  config.data.feature_dir = str(tmp_path / 'f')
  config.data.num_classes = 1
  config.data.input_dim = 16
  with pytest.raises(ValueError, match=r'vid1') as err:
    pipeline.load_split_from_config(config.data, ('train',))
  assert 'vid1.npy' in str(err.value) and '16' in str(err.value)


def test_cli_override_of_unknown_field_fails_cleanly():
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.main',
      '--config=configs/demo.py',
      '--workdir=/tmp/unused',
      '--config.train.no_such_field=1',
    ],
    cwd=CONFIG_DIR.parents[1],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode != 0
  assert 'no_such_field' in proc.stderr
