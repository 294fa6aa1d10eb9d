"""Where the PyTorch reference lives and whether it can run here (our side, no torch).

``ASL_TORCH_REFERENCE`` names an ActionFormer checkout and ``ASL_TORCH_PYTHON`` an interpreter
with torch; ``bench/torch_reference.py`` is run under that interpreter as a file. The benchmarks
that only need to know whether the reference is there (``bench_model`` adds its baseline rows
then) ask this module, so they do not import the reference's runner, which imports them for its
inputs.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = pathlib.Path(__file__).resolve().with_name('torch_reference.py')
ENV_REPO = 'ASL_TORCH_REFERENCE'
ENV_PYTHON = 'ASL_TORCH_PYTHON'


def interpreter() -> str:
  return os.environ.get(ENV_PYTHON) or 'python3'


def git_commit(repo: pathlib.Path) -> str | None:
  """The checkout's commit; None when it is not the top of a git work tree (a plain copy inside
  another repository would otherwise report that repository's commit)."""
  try:
    proc = subprocess.run(
      ['git', '-C', str(repo), 'rev-parse', '--show-toplevel', 'HEAD'],
      capture_output=True,
      text=True,
      timeout=10,
    )
  except (OSError, subprocess.SubprocessError):
    return None
  lines = proc.stdout.split()
  if proc.returncode != 0 or len(lines) != 2:
    return None
  top, commit = lines
  return commit if pathlib.Path(top).resolve() == repo.resolve() else None


def run_child(args: list[str], timeout: float) -> dict:
  """Runs the reference's runner under the torch interpreter; its last stdout line is JSON."""
  cmd = [interpreter(), str(RUNNER), *args]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f'exit code {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}')
  return json.loads(lines[-1])


def status(timeout: float = 120) -> dict:
  """Whether the reference can run here: ``available`` and, if not, ``reason``; never raises."""
  repo = os.environ.get(ENV_REPO)
  if not repo:
    return {'available': False, 'reason': f'{ENV_REPO} is not set'}
  path = pathlib.Path(repo)
  out = {'repo': str(path), 'python': interpreter(), 'commit': None}
  if not (path / 'libs' / 'modeling' / 'meta_archs.py').is_file():
    return dict(out, available=False, reason=f'{path} is not an ActionFormer checkout')
  if shutil.which(out['python']) is None and not os.access(out['python'], os.X_OK):
    return dict(out, available=False, reason=f'interpreter {out["python"]} not found')
  try:
    probe = run_child(['--probe', '--repo', str(path)], timeout)
  except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as e:
    reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return dict(out, available=False, reason=f'{out["python"]} cannot run it: {reason}')
  return dict(out, available=True, commit=git_commit(path), **probe)
