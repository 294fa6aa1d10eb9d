"""Exceptions that end a command with a known exit status, and those statuses.

The command-line layer (:mod:`asl_jax.cli.common`) turns them into one short message and the
status below; anything else is a bug and prints its traceback.
"""

from __future__ import annotations

EXIT_OK = 0  # Finished: every artefact the command promises is written.
EXIT_ERROR = 1  # An unexpected error (a bug, or a fault we do not recognise): traceback printed.
EXIT_USAGE = 2  # A user mistake (flags, config, data, workdir): one message says what to change.
EXIT_PREEMPTED = 75  # Preempted or a peer process lost: relaunch the same command to resume.


class UserError(Exception):
  """A mistake the user can fix; its message says what is wrong and what to do."""


class Preempted(Exception):
  """Training stopped early at a checkpoint every process agreed on; relaunching resumes."""


class PeerLost(Preempted):
  """Another process of a multi-process run stopped answering; relaunching resumes."""
