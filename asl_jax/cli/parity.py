"""asl-parity: our detector against an ActionFormer PyTorch fixture, stage by stage.

  asl-parity --fixture=shared/fixtures/actionformer_tiny_a.npz [--tolerance=1e-4] [--nograds]

Prints a JSON report; exits 1 if any compared tensor differs by more than the tolerance (what
is compared and how: :mod:`asl_jax.tools.parity`). Intermediates the tool has no name for are
listed on stderr as not compared; they do not fail the check.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from asl_jax.cli import common

_FIXTURE = flags.DEFINE_string('fixture', None, 'ActionFormer parity fixture (.npz).')
_TOLERANCE = flags.DEFINE_float('tolerance', 1e-4, 'Allowed max|diff| / max|ref|.')
_GRADS = flags.DEFINE_bool('grads', True, 'Also compare loss gradients (grad/*).')
flags.mark_flags_as_required(['fixture'])


def main(argv: list[str]) -> int:
  del argv
  from asl_jax.tools import parity

  report = parity.run_parity(_FIXTURE.value, tol=_TOLERANCE.value, grads=_GRADS.value)
  json.dump(report, sys.stdout, indent=1)
  sys.stdout.write('\n')
  skipped = parity.not_compared(report)
  if skipped:
    sys.stderr.write('not compared:\n  ' + '\n  '.join(skipped) + '\n')
  failed = parity.failures(report)
  if failed:
    sys.stderr.write('parity FAILED for:\n  ' + '\n  '.join(failed) + '\n')
    return 1
  return 0


def run() -> None:
  common.run(main)


if __name__ == '__main__':
  run()
