"""Local paths never touch TensorFlow; without it, remote paths and shards name the extra."""

import sys

import pytest

from asl_jax.data import storage
from asl_jax.errors import UserError


def _no_tensorflow(monkeypatch, missing: str):
  def fail():
    raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)

  monkeypatch.setattr(storage, '_import_tensorflow', fail)


def test_local_paths_work_without_tensorflow(tmp_path, monkeypatch):
  _no_tensorflow(monkeypatch, 'tensorflow')
  path = tmp_path / 'a' / 'b.txt'
  storage.makedirs(path.parent)
  with storage.open_file(path, 'w') as f:
    f.write('x')
  assert storage.exists(path) and storage.isfile(path)
  assert not storage.isfile(tmp_path / 'a')


def test_remote_path_without_tensorflow_names_the_extra(monkeypatch):
  _no_tensorflow(monkeypatch, 'tensorflow')
  with pytest.raises(UserError) as e:
    storage.exists('gs://bucket/annotations.json')
  assert str(e.value) == (
    'TensorFlow is needed for paths with a scheme (gs://...) but is not installed: '
    'pip install "asl-jax[tf]"'
  )


def test_shards_without_tfds_name_the_extra(monkeypatch):
  monkeypatch.setattr(storage, '_import_tensorflow', lambda: object())
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # `import` raises, as if absent.
  with pytest.raises(UserError, match=r'TensorFlow Datasets is needed for TFDS shards .*\[tf\]'):
    storage.tensorflow_datasets(storage.TFDS_USE)


def test_other_missing_modules_are_not_blamed_on_the_extra(monkeypatch):
  _no_tensorflow(monkeypatch, 'some_dependency_of_tensorflow')
  with pytest.raises(ModuleNotFoundError):
    storage.tensorflow()
