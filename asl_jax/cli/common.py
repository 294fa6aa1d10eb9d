"""What every command does around its one library call: environment, logging, errors.

This is the only place that sets process-wide state (environment variables, log levels, the
huge-page re-exec); library modules never do.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
import traceback
from collections.abc import Callable

from absl import app, flags

from asl_jax import compilation_cache, errors

_VERBOSE = flags.DEFINE_bool(
  'verbose', False, 'On an error, print the full traceback as well as the message.'
)
_COMPILATION_CACHE = flags.DEFINE_string(
  'compilation_cache',
  None,
  'Folder of the persistent compilation cache, or "off". Default: $JAX_COMPILATION_CACHE_DIR, '
  'else $XDG_CACHE_HOME/asl_jax, else ~/.cache/asl_jax (JAX_ENABLE_COMPILATION_CACHE=false: off).',
)


def set_environment(hugepages: bool = False) -> None:
  """Before JAX or TensorFlow are imported: quiet TF's C++ logs; optionally huge pages."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if hugepages:
    from asl_jax import hugepages as hp

    hp.reexec_with_hugepages()


def _quiet_libraries() -> None:
  """Our own progress at INFO; the libraries' (orbax, absl) chatter only from WARNING up."""
  logging.getLogger().setLevel(logging.WARNING)
  logging.getLogger('asl_jax').setLevel(logging.INFO)


def _report(exc: BaseException, status: int) -> int:
  if _VERBOSE.present and _VERBOSE.value:
    traceback.print_exception(exc)
  message = str(exc) or type(exc).__name__
  hint = '' if (_VERBOSE.present and _VERBOSE.value) else ' (--verbose prints the traceback)'
  print(f'error: {message}{hint}', file=sys.stderr)
  return status


# Faults the user can fix from the message alone: no traceback unless asked for.
USER_FAULTS: tuple[type[BaseException], ...] = (
  errors.UserError,
  FileNotFoundError,
  NotADirectoryError,
  IsADirectoryError,
  PermissionError,
)


def guarded(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int]:
  """Wraps an absl main: user faults -> one line + EXIT_USAGE, preemption -> EXIT_PREEMPTED."""

  def wrapped(argv: list[str]) -> int:
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    _quiet_libraries()
    compilation_cache.apply(_COMPILATION_CACHE.value)
    try:
      status = main(argv)
    except errors.Preempted as exc:
      print(f'preempted: {exc}', file=sys.stderr)
      return errors.EXIT_PREEMPTED
    except USER_FAULTS as exc:
      return _report(exc, errors.EXIT_USAGE)
    return errors.EXIT_OK if status is None else status

  return wrapped


def _flag_error_message(exc: BaseException) -> str:
  """ml_collections reports a misspelt override as AttributeError("'name'\\nDid you mean ...")."""
  text = str(exc)
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    try:
      text = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      pass
  if isinstance(exc, AttributeError | KeyError):
    field, _, hint = text.partition('\n')
    return f'unknown config field {field}' + (f'. {hint}' if hint else '')
  return text.replace('Error whilst parsing config file:', 'cannot load the config:')


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with every flag or config mistake reported in one line (exit 2)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as exc:
    message = str(exc)
  except USER_FAULTS + (AttributeError, KeyError, TypeError, ValueError, OSError) as exc:
    if '--verbose' in argv or '--verbose=true' in argv:
      traceback.print_exception(exc)
    message = _flag_error_message(exc)
  print(f'error: {message}\nTry --help for the flags.', file=sys.stderr)
  sys.exit(errors.EXIT_USAGE)


def run(main: Callable[[list[str]], int | None], hugepages: bool = False) -> None:
  """The console-script body: environment, then absl's flag parsing, then ``main``."""
  set_environment(hugepages=hugepages)
  app.run(guarded(main), flags_parser=_parse_flags)
