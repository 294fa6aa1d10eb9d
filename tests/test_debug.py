"""``--config.debug=True``: what it shrinks, that every config still validates, main's wiring."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax import configuration, debug
from tests.test_configs import CONFIG_DIR, LAUNCHABLE, load


@pytest.fixture
def restore_jax_flags():
  """apply_debug_mode switches JAX to eager, NaN-checked execution: the next tests must not be."""
  saved = jax.config.jax_debug_nans, jax.config.jax_disable_jit
  yield
  jax.config.update('jax_debug_nans', saved[0])
  jax.config.update('jax_disable_jit', saved[1])


@pytest.mark.parametrize('name', LAUNCHABLE + ['demo.py:tiny'])
def test_debug_values_shrink_every_config_to_a_valid_one(name):
  config = load(name)
  if not config.data.annotation_file:  # custom.py leaves the data paths to the user.
    config.data.annotation_file, config.data.feature_dir = 'a.json', 'feats'
  ranges = tuple(tuple(r) for r in config.model.regression_ranges)
  for field, value in debug.debug_values(config, num_devices=8).items():
    section, key = field.split('.')
    config[section][key] = value
  configuration.validate_config(config)
  model = config.model
  levels = model.arch[2] + 1
  assert levels == min(len(ranges), debug.MAX_LEVELS)
  assert model.embed_dim == model.fpn_dim == model.head_dim == debug.WIDTH
  # The first levels keep their ranges; the last takes every longer action.
  assert model.regression_ranges[:-1] == ranges[: levels - 1]
  assert model.regression_ranges[-1] == (ranges[levels - 1][0], ranges[-1][1])
  assert config.data.max_videos == debug.MAX_VIDEOS and config.data.tfds_dir == ''
  assert config.train.batch_size == 8 and config.train.num_epochs == 1


def test_apply_debug_mode_keeps_overrides_logs_and_checks_nans(caplog, restore_jax_flags):
  config = load('thumos14_i3d.py')
  config.train.num_epochs = 3  # As --config.train.num_epochs=3 would have set it.
  with caplog.at_level(logging.WARNING, logger='asl_jax.debug'):
    changed = debug.apply_debug_mode(config, keep={'train.num_epochs'})
  assert config.train.num_epochs == 3 and 'train.num_epochs' not in changed
  assert changed['model.arch'] == ((2, 2, 5), (1, 1, 2))
  assert changed['data.max_videos'] == (0, debug.MAX_VIDEOS)
  assert config.train.batch_size == max(2, jax.device_count())
  for name, (old, new) in changed.items():
    assert f'{name}: {old!r} -> {new!r}' in caplog.text
  assert 'kept from the command line: train.num_epochs' in caplog.text
  assert jax.config.jax_debug_nans and jax.config.jax_disable_jit
  # Eager and NaN-checked: jit is bypassed and the first op that makes a NaN raises.
  calls = []

  def log_of(x):
    calls.append(type(x).__name__)
    return jnp.log(x)

  with pytest.raises(FloatingPointError, match='nan'):
    jax.jit(log_of)(jnp.float32(-1.0))
  assert calls == ['ArrayImpl']  # A concrete array, not a tracer: pdb and print work.


def test_nan_checks_survive_a_local_debug_nans_false_block(restore_jax_flags):
  ok, bad = jnp.ones(4), jnp.asarray(np.array([np.nan, 1, 1, 1], np.float32))
  jax.config.update('jax_debug_nans', True)  # What JAX_DEBUG_NANS=True or debug mode set.
  double = jax.jit(lambda x: x * 2.0)
  double(ok)
  with jax.debug_nans(False):  # As JAX itself does inside some operations.
    pass
  # jax 0.10.2 lets the NaN through the cached call now; if this fails, JAX fixed it and
  # debug.nan_checks is no longer needed.
  assert np.isnan(np.asarray(double(bad))[0])
  with debug.nan_checks():
    with jax.debug_nans(False):
      pass
    with pytest.raises(FloatingPointError, match='nan'):
      double(bad)
  jax.config.update('jax_debug_nans', False)
  with debug.nan_checks():
    assert np.isnan(np.asarray(double(bad))[0])  # Off: nan_checks adds nothing.


_MAIN_WITHOUT_TRAINING = """
import json, sys, jax, jax.numpy as jnp
from absl import app
from asl_jax import configuration
from asl_jax.cli import train as main
from asl_jax.train import loop

def report(config, workdir, train, **kwargs):
  configuration.validate_config(config)
  log = jax.jit(jnp.log)
  ones = jnp.ones(2)
  log(ones)
  with jax.debug_nans(False):
    pass
  try:
    log(-ones)
    nan_checked = False
  except FloatingPointError:
    nan_checked = True
  print('REPORT ' + json.dumps({
    'config': json.loads(config.to_json_best_effort()),
    'debug_nans': jax.config.jax_debug_nans,
    'disable_jit': jax.config.jax_disable_jit,
    'nan_checked': nan_checked,
  }))

loop.train_and_evaluate = report
app.run(main.main)
"""


def test_main_applies_debug_after_the_command_line_overrides():
  proc = subprocess.run(
    [
      sys.executable,
      '-c',
      _MAIN_WITHOUT_TRAINING,
      '--config=configs/thumos14_i3d.py',
      '--workdir=/tmp/unused',
      '--config.debug=True',
      '--config.train.num_epochs=3',
      '--config.data.annotation_file=a.json',
    ],
    cwd=CONFIG_DIR.parents[1],
    capture_output=True,
    text=True,
    timeout=180,
    env=dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2'),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(x for x in proc.stdout.splitlines() if x.startswith('REPORT '))
  report = json.loads(line.removeprefix('REPORT '))
  config = report['config']
  assert config['debug'] is True and report['debug_nans'] and report['disable_jit']
  assert report['nan_checked'], 'main must run the loop inside debug.nan_checks()'
  assert config['model']['embed_dim'] == debug.WIDTH and config['model']['arch'] == [1, 1, 2]
  assert config['data']['max_videos'] == debug.MAX_VIDEOS
  assert config['train']['num_epochs'] == 3  # The command line wins over debug mode.
  assert 'debug mode (config.debug=True) changed' in proc.stderr


def test_max_videos_is_validated_and_every_cap_is_logged(caplog):
  import types

  from asl_jax.train import loop

  config = load('thumos14_i3d.py')
  config.data.max_videos = -1
  with pytest.raises(configuration.ConfigError, match='max_videos must be >= 0'):
    configuration.validate_config(config)
  config.data.max_videos, config.data.tfds_dir = 4, 'gs://bucket/tfds'
  with pytest.raises(configuration.ConfigError, match='cannot cap the TFDS shards'):
    configuration.validate_config(config)

  videos = [types.SimpleNamespace(video_id=v) for v in ('c', 'a', 'd', 'b')]
  assert loop.cap_videos(videos, 0, split='training') is videos
  with caplog.at_level(logging.WARNING, logger='asl_jax.train.loop'):
    kept = loop.cap_videos(videos, 2, split='training')
    assert [v.video_id for v in kept] == ['a', 'b']
    assert 'data.max_videos=2: using 2 of the 4 videos of' in caplog.text
    caplog.clear()
    assert len(loop.cap_videos(videos, 8, split='validation')) == 4
    assert "using 4 of the 4 videos of 'validation'" in caplog.text  # Never silent.
