"""The persistent compilation cache: its folder, the opt-outs, and a second process reading it."""

import os
import pathlib
import subprocess
import sys

import pytest

from asl_jax import compilation_cache as cc

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_default_folder_follows_xdg(tmp_path):
  env = {'XDG_CACHE_HOME': str(tmp_path / 'xdg')}
  assert cc.resolve(environ=env) == str(tmp_path / 'xdg' / 'asl_jax')


def test_default_folder_without_xdg_is_in_home(monkeypatch, tmp_path):
  monkeypatch.setenv('HOME', str(tmp_path))
  expected = str(tmp_path / '.cache' / 'asl_jax')
  assert cc.resolve(environ={}) == expected
  assert cc.resolve(environ={'XDG_CACHE_HOME': 'relative/dir'}) == expected  # Invalid: ignored.


def test_jax_variables_are_respected(tmp_path):
  env = {'XDG_CACHE_HOME': str(tmp_path), 'JAX_COMPILATION_CACHE_DIR': '/elsewhere'}
  assert cc.resolve(environ=env) == '/elsewhere'
  for value in ('false', 'False', '0'):
    assert cc.resolve(environ=dict(env, JAX_ENABLE_COMPILATION_CACHE=value)) is None
  assert cc.resolve(environ=dict(env, JAX_ENABLE_COMPILATION_CACHE='true')) == '/elsewhere'


def test_flag_moves_or_disables(tmp_path):
  env = {'JAX_COMPILATION_CACHE_DIR': '/elsewhere', 'JAX_ENABLE_COMPILATION_CACHE': 'false'}
  assert cc.resolve(str(tmp_path), environ=env) == str(tmp_path)  # The flag wins.
  for value in ('off', 'OFF', 'none', 'false'):
    assert cc.resolve(value, environ={}) is None
  assert cc.resolve('~/c', environ={}) == os.path.expanduser('~/c')


def test_apply_sets_jax_config(tmp_path):
  import jax

  before = (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir)
  try:
    assert cc.apply(str(tmp_path)) == str(tmp_path)
    assert jax.config.jax_enable_compilation_cache
    assert jax.config.jax_compilation_cache_dir == str(tmp_path)
    assert cc.apply('off') is None
    assert not jax.config.jax_enable_compilation_cache
  finally:
    jax.config.update('jax_enable_compilation_cache', before[0])
    jax.config.update('jax_compilation_cache_dir', before[1])


# A command run through asl_jax.cli.common (as every entry point is): compiles one function and
# prints how many compilations the persistent cache answered.
_COMMAND = """
from asl_jax.cli import common

def main(argv):
  import jax, jax.numpy as jnp
  hits = []
  jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith('/cache_hits') else None)
  jax.jit(lambda x: jnp.sin(x) @ x.T + 1.0)(jnp.ones((8, 8))).block_until_ready()
  print('HITS', len(hits), jax.config.jax_compilation_cache_dir)

common.run(main)
"""


def _run_command(tmp_path, *flags, **env_overrides) -> int:
  env = {k: v for k, v in os.environ.items() if not k.startswith('JAX_')}
  env.update(
    XDG_CACHE_HOME=str(tmp_path / 'xdg'),
    JAX_PLATFORMS='cpu',
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',  # The tiny function compiles in ms.
    PYTHONPATH=str(REPO_ROOT),
    **env_overrides,
  )
  proc = subprocess.run(
    [sys.executable, '-c', _COMMAND, *flags],
    env=env,
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  line = next(x for x in proc.stdout.splitlines() if x.startswith('HITS'))
  return int(line.split()[1])


def _entries(folder: pathlib.Path) -> list[pathlib.Path]:
  return [p for p in folder.rglob('*-cache')] if folder.exists() else []


def test_second_process_reads_the_cache(tmp_path):
  folder = tmp_path / 'xdg' / 'asl_jax'
  assert _run_command(tmp_path) == 0
  written = _entries(folder)
  assert written, f'nothing written to {folder}'
  assert _run_command(tmp_path) >= 1
  assert _entries(folder) == written  # Read back, not written again.


@pytest.mark.parametrize(
  'flags, env',
  [(('--compilation_cache=off',), {}), ((), {'JAX_ENABLE_COMPILATION_CACHE': 'false'})],
  ids=['flag', 'env'],
)
def test_opt_out_writes_nothing(tmp_path, flags, env):
  assert _run_command(tmp_path, *flags, **env) == 0
  assert _run_command(tmp_path, *flags, **env) == 0
  assert not _entries(tmp_path / 'xdg')


def test_flag_moves_the_folder(tmp_path):
  moved = tmp_path / 'moved'
  _run_command(tmp_path, f'--compilation_cache={moved}')
  assert _entries(moved) and not _entries(tmp_path / 'xdg')
