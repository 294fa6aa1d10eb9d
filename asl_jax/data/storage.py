"""File access for local paths and URLs (gs://...): the stdlib locally, tf.io.gfile otherwise.

Local paths avoid importing TensorFlow (7-10 s), so the validator and tests stay fast; a path
with a scheme goes through ``tf.io.gfile``, imported on first use.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any


def is_remote(path: str | os.PathLike) -> bool:
  """True for ``scheme://...`` paths (gs://, s3://, ram://), which need ``tf.io.gfile``."""
  return '://' in os.fspath(path)


@functools.cache
def tensorflow() -> Any:
  """TensorFlow, imported quietly with GPUs hidden from it (they belong to JAX; environment.md)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf

  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF was already initialised by someone else; its devices are fixed.
    pass
  return tf


def gfile() -> Any:
  return tensorflow().io.gfile


def join(path: str | os.PathLike, *parts: str) -> str:
  path = os.fspath(path)
  if is_remote(path):
    return '/'.join([path.rstrip('/'), *parts])
  return os.path.join(path, *parts)


def exists(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isfile(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  if is_remote(path):
    return gfile().exists(path) and not gfile().isdir(path)
  return os.path.isfile(path)


def open_file(path: str | os.PathLike, mode: str = 'r') -> IO:
  path = os.fspath(path)
  return gfile().GFile(path, mode) if is_remote(path) else open(path, mode)


def makedirs(path: str | os.PathLike) -> None:
  path = os.fspath(path)
  if is_remote(path):
    gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def local_copy(path: str | os.PathLike) -> Iterator[str]:
  """Yields a local path holding ``path``'s bytes: ``path`` itself, or a temporary copy of a URL.

  For readers that only take local files (``np.load`` of a path, h5py, the annotation loader).
  """
  path = os.fspath(path)
  if not is_remote(path):
    yield path
    return
  folder = tempfile.mkdtemp(prefix='asl_jax_')
  try:
    local = os.path.join(folder, os.path.basename(path.rstrip('/')))
    with gfile().GFile(path, 'rb') as src, open(local, 'wb') as dst:
      shutil.copyfileobj(src, dst, length=16 << 20)
    yield local
  finally:
    shutil.rmtree(folder, ignore_errors=True)
