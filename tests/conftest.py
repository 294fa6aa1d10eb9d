"""Test-session setup: quiet TF, a persistent compilation cache, shared paths and fixtures."""

import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared'

# Tests compare against independent implementations and references in float32: on GPUs and TPUs
# the default matmul precision would run them in TF32/bf16 passes (no effect on CPUs).
jax.config.update('jax_default_matmul_precision', 'highest')
jax.config.update('jax_compilation_cache_dir', str(REPO_ROOT / '.jax_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)


@pytest.fixture(scope='session')
def shared_dir() -> pathlib.Path:
  """The project's shared folder (annotations, fixtures); tests needing it skip when absent."""
  if not SHARED.is_dir():
    pytest.skip(f'shared data folder not found at {SHARED}')
  return SHARED


@pytest.fixture(scope='session')
def annotations_dir(shared_dir) -> pathlib.Path:
  return shared_dir / 'data' / 'annotations'


@pytest.fixture(scope='session')
def fixture_path(shared_dir) -> pathlib.Path:
  return shared_dir / 'fixtures' / 'actionformer_tiny_a.npz'
