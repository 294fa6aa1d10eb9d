"""File access for local paths and URLs (gs://...): the stdlib locally, tf.io.gfile otherwise.

Local paths avoid importing TensorFlow (7-10 s), so the validator and tests stay fast; a path
with a scheme goes through ``tf.io.gfile``, imported on first use. TensorFlow is the package's
``tf`` extra (``pip install "asl-jax[tf]"``): without it, local data trains as before and a
``gs://`` path or TFDS shards end the command with one line saying what to install.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from asl_jax.errors import UserError


def is_remote(path: str | os.PathLike) -> bool:
  """True for ``scheme://...`` paths (gs://, s3://, ram://), which need ``tf.io.gfile``."""
  return '://' in os.fspath(path)


TF_EXTRA = 'pip install "asl-jax[tf]"'
TFDS_USE = 'TFDS shards (asl-build-dataset, data.tfds_dir)'


def tensorflow(needed_for: str = 'paths with a scheme (gs://...)') -> Any:
  """TensorFlow, imported quietly with GPUs hidden from it (they belong to JAX; environment.md).

  Raises :class:`asl_jax.errors.UserError` naming ``needed_for`` and the extra when it is not
  installed, rather than a ModuleNotFoundError from deep inside a data module.
  """
  try:
    return _import_tensorflow()
  except ModuleNotFoundError as e:
    if e.name is None or e.name.split('.')[0] != 'tensorflow':
      raise
    message = f'TensorFlow is needed for {needed_for} but is not installed: {TF_EXTRA}'
    raise UserError(message) from e


@functools.cache
def _import_tensorflow() -> Any:
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf

  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF was already initialised by someone else; its devices are fixed.
    pass
  return tf


def gfile() -> Any:
  return tensorflow().io.gfile


def tensorflow_datasets(needed_for: str) -> Any:
  """TFDS (after TensorFlow, so TF starts with GPUs hidden), or a UserError naming the extra."""
  tensorflow(needed_for)
  try:
    import tensorflow_datasets as tfds
  except ModuleNotFoundError as e:
    if e.name is None or e.name.split('.')[0] != 'tensorflow_datasets':
      raise
    raise UserError(
      f'TensorFlow Datasets is needed for {needed_for} but is not installed: {TF_EXTRA}'
    ) from e
  return tfds


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
