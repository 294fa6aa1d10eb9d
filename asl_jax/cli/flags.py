"""Flags shared by the commands, spelled one way everywhere."""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from asl_jax import configs


class _ConfigParser(config_flags.config_flags.ConfigFileFlagParser):
  """Resolves packaged config names (``demo.py:tiny``) before loading the file."""

  def parse(self, path):
    return super().parse(configs.resolve(path))


def define_config(
  name: str = 'config', default: str | None = None, help_string: str | None = None
) -> flags.FlagHolder:
  """A config flag with ``--config.a.b=value`` overrides; accepts packaged config names."""
  help_string = help_string or (
    'Config: a packaged name (demo.py[:tiny], thumos14_i3d.py, custom.py:small, ...) or the path '
    'of a config file; --config.a.b=value overrides a field.'
  )
  parser = _ConfigParser(name=name, lock_config=True)
  flag = config_flags.config_flags._ConfigFlag(  # The documented factory has no parser hook.
    parser=parser,
    serializer=flags.ArgumentSerializer(),
    name=name,
    default=default,
    help_string=help_string,
    flag_values=flags.FLAGS,
    accept_new_attributes=False,
    sys_argv=None,
  )
  return flags.DEFINE_flag(flag, flags.FLAGS)
