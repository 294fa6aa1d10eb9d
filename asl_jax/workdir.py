"""What a training workdir holds besides checkpoints: its resolved config and its class names.

A workdir is self-contained: ``predict``, ``export`` and ``visualize`` need nothing else (not the
training annotation file, not the feature folder, not the config file it was launched with).
Checkpoints are :mod:`asl_jax.train.checkpoint`'s.
"""

from __future__ import annotations

import json
import logging
import os

import ml_collections
from etils import epath

from asl_jax import configuration

logger = logging.getLogger(__name__)

CONFIG_FILE = 'config.json'
CLASS_NAMES_FILE = 'class_names.json'


def _tuples(value):
  """JSON lists -> tuples, recursively (configs hold tuples; ConfigDict keeps them as given)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def load_config_json(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """A config written by ``ConfigDict.to_json`` -> ConfigDict, over ``configs/base.py``.

  Fields added to the base config after the file was written keep their defaults, so an older
  workdir still builds today's model; unknown fields are reported by ``validate_config``.
  """
  path = epath.Path(path)
  try:
    values = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise configuration.ConfigError(f'cannot read config JSON {path}: {e}') from e
  config = configuration._base_config()  # The defaults every config derives from.
  with config.ignore_type():
    config.update(_tuples(values))
  configuration.validate_config(config)
  return config


def read_config(
  workdir: str | os.PathLike, config: ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
  """``config`` if given, else the ``config.json`` the training run left in ``workdir``."""
  if config is not None:
    configuration.validate_config(config)
    return config
  path = epath.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(
      f'{path} not found: is {workdir} a training workdir? (else pass --config, the config the '
      'run was trained with)'
    )
  return load_config_json(path)


def find_workdir(path: str | os.PathLike) -> epath.Path | None:
  """The workdir a checkpoint path belongs to (itself, ``checkpoints/`` or a step folder)."""
  path = epath.Path(path)
  for candidate in (path, path.parent, path.parent.parent):
    if (candidate / CONFIG_FILE).is_file() or (candidate / CLASS_NAMES_FILE).is_file():
      return candidate
  return None


def write_class_names(workdir: str | os.PathLike, class_names: list[str]) -> None:
  """Saved at the start of training so that the workdir alone names the classes."""
  (epath.Path(workdir) / CLASS_NAMES_FILE).write_text(json.dumps(list(class_names), indent=1))


def read_class_names(
  workdir: str | os.PathLike | None, config: ml_collections.ConfigDict
) -> list[str]:
  """The workdir's ``class_names.json``; else the config's annotation file; else ``class_<i>``."""
  data = config.data
  if workdir is not None:
    path = epath.Path(workdir) / CLASS_NAMES_FILE
    if path.is_file():
      names = json.loads(path.read_text())
      if len(names) != data.num_classes:
        raise configuration.ConfigError(
          f'{path} names {len(names)} classes but data.num_classes is {data.num_classes}'
        )
      return names
  fallback = [f'class_{i}' for i in range(data.num_classes)]
  if not data.annotation_file or not epath.Path(data.annotation_file).is_file():
    logger.warning(
      'no %s in the workdir and no annotation file %r: classes are named class_<i>',
      CLASS_NAMES_FILE,
      data.annotation_file,
    )
    return fallback
  from asl_jax.data import annotations as annotations_lib

  try:
    annotations = annotations_lib.load_actionformer_json(
      data.annotation_file,
      default_fps=data.default_fps if data.default_fps > 0 else None,
      num_classes=data.num_classes,
    )
  except ValueError as e:
    logger.warning('cannot read class names (%s): classes are named class_<i>', e)
    return fallback
  return list(annotations.class_names)
