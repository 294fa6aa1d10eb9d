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
  _ignore_closed_loop_callbacks()
  logging.getLogger('asyncio').addFilter(_unread_checkpoint_read_errors)


def _ignore_closed_loop_callbacks() -> None:
  """Drops the "Event loop is closed" reports of checkpoint reads that outlive a failed restore.

  orbax reads a checkpoint's arrays concurrently on a private event loop and closes it when one
  read fails (a damaged file); the others finish later and their callbacks find the loop closed.
  They change nothing, but Python would print a traceback for each after the one-line error.
  """
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    exc = unraisable.exc_value
    if not (isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed'):
      previous(unraisable)

  sys.unraisablehook = hook


def _unread_checkpoint_read_errors(record: logging.LogRecord) -> bool:
  """False for asyncio's "Task exception was never retrieved" of those same orbax reads: the
  restore already failed on the first one and the command reports it (the rest is a dump of
  tensorstore specs, one per array)."""
  message = record.getMessage()
  if not message.startswith(('Task exception was never retrieved', 'Future exception was never')):
    return True
  details = message
  if record.exc_info:
    details += ''.join(traceback.format_exception(*record.exc_info))
  return not any(name in details for name in ('orbax', 'tensorstore'))


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


def guarded(
  main: Callable[[list[str]], int | None], positional: bool = False
) -> Callable[[list[str]], int]:
  """Wraps an absl main: user faults -> one line + EXIT_USAGE, preemption -> EXIT_PREEMPTED."""

  def wrapped(argv: list[str]) -> int:
    if len(argv) > 1 and not positional:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    _quiet_libraries()
    compilation_cache.apply(_COMPILATION_CACHE.value)
    try:
      status = main(argv)
    except errors.Preempted as exc:
      print(f'preempted: {exc}', file=sys.stderr)
      return errors.EXIT_PREEMPTED
    except USER_FAULTS as exc:
      _report(exc, errors.EXIT_USAGE)
      # Leave at once: background reads of a failed restore (orbax, tensorstore) would otherwise
      # print their late errors during interpreter teardown, after the one-line answer.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(errors.EXIT_USAGE)
    except app.UsageError as exc:
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


def run(
  main: Callable[[list[str]], int | None], hugepages: bool = False, positional: bool = False
) -> None:
  """The console-script body: environment, then absl's flag parsing, then ``main``.

  ``positional``: ``main`` takes arguments besides the flags (else they are a usage error).
  """
  set_environment(hugepages=hugepages)
  _help_for_console_script(main)
  app.run(guarded(main, positional=positional), flags_parser=_parse_flags)


def _help_for_console_script(main: Callable[[list[str]], int | None]) -> None:
  """``asl-train --help`` shows what ``python -m asl_jax.cli.train --help`` does.

  absl's --help lists the flags and docstring of ``__main__``; under a console script that is
  pip's wrapper, which defines neither. The flags of asl_jax.cli (one command per process) become
  key flags of ``sys.argv[0]``, and the command's docstring the wrapper's.
  """
  for module_name, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module_name.startswith('asl_jax.cli'):
      for flag in module_flags:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  wrapper = sys.modules['__main__']
  if not wrapper.__doc__:
    wrapper.__doc__ = sys.modules[main.__module__].__doc__
