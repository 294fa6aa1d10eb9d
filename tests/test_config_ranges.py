"""Values out of range are rejected when the config is loaded, each error naming field and range."""

import subprocess
import sys
import types

import pytest

from asl_jax import configuration
from asl_jax.configs import demo
from tests.train.helpers import REPO_ROOT


def _problems(**overrides) -> list[str]:
  config = demo.get_config('tiny')
  for field, value in overrides.items():
    section, name = field.split('__')
    config[section][name] = value
  with pytest.raises(configuration.ConfigError) as error:
    configuration.validate_config(config)
  return str(error.value).splitlines()[1:]


@pytest.mark.parametrize(
  'field, value, expected',
  [
    ('train.learning_rate', -0.001, 'train.learning_rate must be > 0 (peak AdamW learning rate)'),
    ('train.learning_rate', 0.0, 'train.learning_rate must be > 0'),
    ('train.warmup_epochs', -1, 'train.warmup_epochs must be >= 0 (warm-up epochs), got -1'),
    ('model.channel_theta', 1.5, 'model.channel_theta must be in [0, 1] (theta of the channel'),
    ('train.contrastive_weight', -0.3, 'train.contrastive_weight must be >= 0 (lambda'),
    ('train.contrastive_delta', 0.0, 'train.contrastive_delta must be in (0, 1) (delta'),
    ('train.contrastive_delta', 1.0, 'train.contrastive_delta must be in (0, 1)'),
    ('train.ema_decay', 1.0, 'train.ema_decay must be in [0, 1) (EMA decay), got 1.0'),
    ('model.cls_prior_prob', 0.0, 'model.cls_prior_prob must be in (0, 1)'),
    ('test.pre_nms_thresh', 1.5, 'test.pre_nms_thresh must be in [0, 1] (a probability)'),
    ('test.iou_threshold', -0.1, 'test.iou_threshold must be in [0, 1] (an IoU)'),
    ('train.keep_checkpoints', 0, 'train.keep_checkpoints must be >= 1 (checkpoints kept), got 0'),
  ],
)
def test_out_of_range_value_names_field_and_range(field, value, expected):
  problems = _problems(**{field.replace('.', '__'): value})
  assert len(problems) == 1, problems
  assert problems[0].startswith(f'  - {expected}'), problems[0]


def test_boundaries_that_are_allowed():
  config = demo.get_config('tiny')
  config.train.warmup_epochs = 0
  config.model.channel_theta = 1.0
  config.train.contrastive_weight = 0.0
  config.test.tiou_thresholds = (1.0,)
  configuration.validate_config(config)  # Raises nothing.


def test_no_epochs_at_all_and_other_shapes_are_reported_together():
  problems = _problems(
    train__num_epochs=0,
    train__warmup_epochs=0,
    test__tiou_thresholds=(0.0, 0.5),
    model__window_size=4,
  )
  text = '\n'.join(problems)
  assert 'train.num_epochs + train.warmup_epochs must be >= 1' in text
  assert 'test.tiou_thresholds must be non-empty values in (0, 1]' in text
  assert 'model.window_size 4 must be an odd positive number or -1' in text


def test_batch_size_must_split_over_the_devices():
  from asl_jax import parallel

  mesh = types.SimpleNamespace(size=8)  # Only the device count is read.
  with pytest.raises(configuration.ConfigError) as error:
    parallel.check_batch_size(12, mesh)
  assert str(error.value) == (
    'train.batch_size=12 must be divisible by the device count 8; use a multiple of 8 '
    '(--config.train.batch_size=8)'
  )
  parallel.check_batch_size(16, mesh)


def test_negative_learning_rate_stops_the_command_in_one_line():
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.main',
      '--config=demo.py:tiny',
      '--workdir=/nonexistent/never_created',
      '--config.train.learning_rate=-0.001',
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2, proc.stderr
  assert 'Traceback' not in proc.stderr
  assert proc.stderr.startswith('error: invalid config:\n')
  assert '  - train.learning_rate must be > 0 (peak AdamW learning rate), got -0.001' in proc.stderr
