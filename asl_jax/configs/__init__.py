"""The configs, one ``get_config()`` file per dataset and feature set, over ``base.py``.

They ship inside the package. On the command line a config is named by its file name
(``--config=demo.py:tiny`` or ``--config=demo:tiny``), by its path in a checkout
(``--config=configs/demo.py``, the spelling of earlier releases, or ``demo.py``)
or by the path of any config file of your own; :func:`resolve` turns each into a file path.
"""

from __future__ import annotations

import os
import pathlib

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_NOT_CONFIGS = ('__init__', 'base', 'paper_common', 'ablations')


def names() -> list[str]:
  """The launchable packaged configs (helpers such as ``base`` left out)."""
  return sorted(p.stem for p in PACKAGE_DIR.glob('*.py') if p.stem not in _NOT_CONFIGS)


def resolve(spec: str) -> str:
  """'demo:tiny' / 'configs/demo.py:tiny' / 'my/cfg.py' -> 'PATH[:ARG]' of a config file.

  A path that exists wins; otherwise a bare name (after an optional ``configs/`` or
  ``asl_jax/configs/`` prefix) names a packaged config. Raises FileNotFoundError naming what
  was tried and the packaged configs.
  """
  path, sep, arg = spec.partition(':')
  if os.path.isfile(path):
    return spec
  name = path
  for prefix in ('asl_jax/configs/', 'configs/', './configs/'):
    name = name.removeprefix(prefix)
  if name and '/' not in name:
    packaged = PACKAGE_DIR / (name if name.endswith('.py') else name + '.py')
    if packaged.is_file():
      return f'{packaged}{sep}{arg}'
  raise FileNotFoundError(
    f'config file {path!r} not found (nor a packaged config of that name); packaged configs: '
    f'{", ".join(names())} (e.g. --config=demo.py:tiny)'
  )
