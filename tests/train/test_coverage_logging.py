"""Training logs the label-assignment coverage of its training videos before it builds the model."""

import logging

import pytest

from tests.train.helpers import tiny_config


class _Stop(Exception):
  pass


def _stop(*args, **kwargs):
  raise _Stop


def test_training_logs_coverage_and_warns_above_one_percent(tmp_path, monkeypatch, caplog):
  from asl_jax.train import loop

  monkeypatch.setattr(loop, 'create_training', _stop)  # Stop once the data is loaded.
  config = tiny_config(tmp_path)
  with caplog.at_level(logging.INFO, logger='asl_jax'), pytest.raises(_Stop):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  infos = [r for r in caplog.records if 'label-assignment coverage' in r.getMessage()]
  assert len(infos) == 1 and infos[0].levelname == 'INFO'
  assert ' 0 of ' in infos[0].getMessage()

  # Ranges that no demo action fits (max distance <= 0.5 steps): every action is uncovered.
  caplog.clear()
  levels = len(config.model.regression_ranges)
  config.model.regression_ranges = tuple((0.0, 0.5) for _ in range(levels))
  with caplog.at_level(logging.INFO, logger='asl_jax'), pytest.raises(_Stop):
    loop.train_and_evaluate(config, str(tmp_path / 'run2'))
  warnings = [r for r in caplog.records if 'label-assignment coverage' in r.getMessage()]
  assert len(warnings) == 1 and warnings[0].levelname == 'WARNING'
  assert '(100.00%)' in warnings[0].getMessage() and 'outside_ranges' in warnings[0].getMessage()
