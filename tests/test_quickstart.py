"""docs/quickstart.ipynb runs top to bottom: its code cells, in order, in a fresh interpreter.

A small executor instead of a Jupyter kernel: the cells are plain Python (no magics, no shell
escapes), so running them in one namespace is what a kernel would do, without the dependency.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / 'docs' / 'quickstart.ipynb'

# Runs in the child: each cell compiled under its own name, so a traceback says which cell failed.
_EXECUTOR = """
import json, sys
cells = json.load(open(sys.argv[1]))['cells']
namespace = {'__name__': '__main__'}
for i, cell in enumerate(c for c in cells if c['cell_type'] == 'code'):
  print(f'--- code cell {i}', flush=True)
  exec(compile(''.join(cell['source']), f'<quickstart code cell {i}>', 'exec'), namespace)
"""


def _code_cells() -> list[str]:
  cells = json.loads(NOTEBOOK.read_text())['cells']
  return [''.join(c['source']) for c in cells if c['cell_type'] == 'code']


def test_notebook_is_plain_python_without_stored_outputs():
  cells = json.loads(NOTEBOOK.read_text())['cells']
  code = [c for c in cells if c['cell_type'] == 'code']
  assert len(code) >= 6
  for cell in code:
    assert cell['outputs'] == [] and cell['execution_count'] is None  # Outputs would go stale.
    for line in ''.join(cell['source']).splitlines():
      assert not line.lstrip().startswith(('!', '%')), f'magic or shell escape: {line!r}'
    compile(''.join(cell['source']), 'cell', 'exec')


@pytest.mark.slow
def test_notebook_runs(tmp_path):
  env = {
    **os.environ,
    'PYTHONPATH': str(REPO_ROOT),
    'MPLBACKEND': 'Agg',
    'TF_CPP_MIN_LOG_LEVEL': '2',
    'JAX_COMPILATION_CACHE_DIR': str(REPO_ROOT / '.jax_cache'),
    'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
  }
  run = subprocess.run(
    [sys.executable, '-c', _EXECUTOR, NOTEBOOK],
    cwd=tmp_path,  # The notebook writes under ./quickstart, as next to a user's notebook.
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
  assert run.stdout.count('--- code cell') == len(_code_cells())
  bundle = tmp_path / 'quickstart' / 'bundle'
  assert (bundle / 'manifest.json').is_file() and list(bundle.glob('detector_L*.jaxexport'))
  assert list((tmp_path / 'quickstart' / 'run' / 'figures').glob('sensitivity_*.png'))
