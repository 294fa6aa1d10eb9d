"""Fixtures of the training tests: one tiny synthetic dataset for the whole session."""

import pathlib

import pytest

from tests.train import helpers


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory) -> pathlib.Path:
  """A folder whose ``data/`` holds the tiny synthetic dataset (12 videos, 9 for training)."""
  from asl_jax.train import loop

  root = tmp_path_factory.mktemp('tiny')
  loop.maybe_synthesize(helpers.tiny_config(root).data)
  return root
