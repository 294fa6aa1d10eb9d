"""The whole tree passes the project's formatter and linter (ruff, configured in pyproject.toml)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUFF = shutil.which('ruff', path=str(pathlib.Path(sys.executable).parent)) or shutil.which('ruff')


@pytest.mark.skipif(RUFF is None, reason='ruff is not installed')
@pytest.mark.parametrize(
  'args', [['check', '.'], ['format', '--check', '.']], ids=['check', 'format']
)
def test_ruff(args):
  proc = subprocess.run([RUFF, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stdout + proc.stderr
