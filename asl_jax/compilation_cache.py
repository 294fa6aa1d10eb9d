"""JAX's persistent compilation cache for every command: where it lives and how to turn it off.

Compiling the THUMOS14 training step takes ~17 s on a CPU and 75 s on an H200; with the cache, a
relaunch (after preemption, a rerun while debugging, ``--mode=eval``, ``predict``) reads the
compiled programs back instead. The cache lives in the user's cache folder, not in the workdir,
so every run of every config shares it:

  1. ``--compilation_cache=PATH`` (any command) moves it; ``--compilation_cache=off`` disables it;
  2. otherwise ``JAX_ENABLE_COMPILATION_CACHE=false`` disables it and ``JAX_COMPILATION_CACHE_DIR``
     moves it (JAX's own variables, read as JAX reads them);
  3. otherwise ``$XDG_CACHE_HOME/asl_jax``, else ``~/.cache/asl_jax``.

Several processes may share one folder (see docs/design.md, "Compilation cache"): JAX writes an
entry once under a key that hashes the program, the compile options, the devices and the JAX
version; in a ``jax.distributed`` run only process 0 writes; a half-written or unreadable entry
is a warning and a recompile, never a wrong program.

Nothing here runs at import: :func:`apply` is called by the entry points (``asl_jax.cli.common``).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

ENV_DIR = 'JAX_COMPILATION_CACHE_DIR'
ENV_ENABLE = 'JAX_ENABLE_COMPILATION_CACHE'
OFF = ('off', 'none', 'false', '0', 'no')
_FALSE = ('false', '0', 'no', 'off')


def default_directory(environ: Mapping[str, str] | None = None) -> pathlib.Path:
  """``$XDG_CACHE_HOME/asl_jax``, else ``~/.cache/asl_jax`` (the XDG base-directory rule)."""
  environ = os.environ if environ is None else environ
  base = environ.get('XDG_CACHE_HOME') or ''
  # XDG: a relative XDG_CACHE_HOME is invalid and must be ignored.
  root = pathlib.Path(base) if os.path.isabs(base) else pathlib.Path.home() / '.cache'
  return root / 'asl_jax'


def resolve(setting: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
  """The cache folder to use, or None for no cache.

  Args:
    setting: the ``--compilation_cache`` flag: a path, one of ``OFF`` (``off``, ``none``, ...) to
      disable, or None / '' for the environment's choice.
    environ: the environment (default ``os.environ``).
  """
  environ = os.environ if environ is None else environ
  if setting:
    if setting.strip().lower() in OFF:
      return None
    return os.path.expanduser(setting)
  if environ.get(ENV_ENABLE, '').strip().lower() in _FALSE:
    return None
  if environ.get(ENV_DIR):
    return environ[ENV_DIR]
  return os.fspath(default_directory(environ))


def apply(setting: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
  """Points JAX's persistent cache at :func:`resolve`'s folder (or turns it off); returns it.

  Call once, before the first compilation (JAX fixes the cache on first use). Entries that took
  under ``jax_persistent_cache_min_compile_time_secs`` (JAX's default 1 s, or the user's
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``) to compile are not written.
  """
  import jax

  directory = resolve(setting, environ)
  if directory is None:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', directory)
  return directory
