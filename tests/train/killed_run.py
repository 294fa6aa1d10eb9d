"""Trains the resume-test config and SIGKILLs itself just before a given step runs.

  python -m tests.train.killed_run --root DIR --workdir WORKDIR --kill_at_step 5

Used by test_resume.py to reproduce a hard kill (OOM killer, lost machine): no handler runs, an
asynchronous save in flight may be left as ``<step>.orbax-checkpoint-tmp``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal

import pytest

from asl_jax.train import loop
from tests.train import helpers


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--root', required=True, help='folder holding the tiny data/')
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--kill_at_step', type=int, required=True)
  args = parser.parse_args(argv)

  def kill(step: int, batch: dict) -> None:
    if step == args.kill_at_step:
      os.kill(os.getpid(), signal.SIGKILL)

  helpers.BatchTap(kill).install(pytest.MonkeyPatch())
  loop.train_and_evaluate(helpers.resume_config(pathlib.Path(args.root)), args.workdir)
  raise SystemExit(f'step {args.kill_at_step} was never reached')


if __name__ == '__main__':
  main()
