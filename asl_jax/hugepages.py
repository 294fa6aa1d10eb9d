"""Transparent huge pages for XLA's buffers on Linux: set before the process starts, so by re-exec.

XLA's CPU runtime allocates each step's temporaries afresh (gigabytes at the paper configs) and
frees them after, so with 4 KiB pages every step pays for some 500,000 page faults: about 1 s of
system time per THUMOS14 training step on 2 cores, 10% of the step's CPU time. glibc (2.35+) can
ask for transparent huge pages on its large allocations (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``),
which cuts the faults ~60x and the step's wall time ~5% where the kernel's THP mode is
``madvise`` (many distributions' default; with ``always`` it changes nothing, with ``never`` it
cannot help). glibc reads tunables only at start-up, so the entry points restart themselves once
with the setting; ``ASL_JAX_HUGEPAGES=0`` turns this off. Older glibc ignores the tunable.
"""

from __future__ import annotations

import os
import pathlib
import platform
import sys
from collections.abc import Mapping

TUNABLE = 'glibc.malloc.hugetlb'
SETTING = f'{TUNABLE}=1'
OPT_OUT = 'ASL_JAX_HUGEPAGES'  # '0' disables.
THP_MODE_FILE = pathlib.Path('/sys/kernel/mm/transparent_hugepage/enabled')


def hugepage_env(env: Mapping[str, str]) -> dict[str, str]:
  """``env`` with glibc's huge-page tunable added to any tunables already there (kept as is)."""
  out = dict(env)
  tunables = out.get('GLIBC_TUNABLES', '')
  if TUNABLE not in tunables:
    out['GLIBC_TUNABLES'] = ':'.join(t for t in (tunables, SETTING) if t)
  return out


def thp_mode() -> str | None:
  """The kernel's transparent-huge-page mode (``always`` / ``madvise`` / ``never``), if known."""
  try:
    text = THP_MODE_FILE.read_text()
  except OSError:
    return None
  start, end = text.find('['), text.find(']')
  return text[start + 1 : end] if 0 <= start < end else None


def supported() -> bool:
  """Whether the tunable can act here: Linux, glibc, and THP given on request (``madvise``)."""
  return sys.platform == 'linux' and platform.libc_ver()[0] == 'glibc' and thp_mode() == 'madvise'


def applies() -> bool:
  """Whether a restart could help: :func:`supported` and not turned off."""
  return supported() and os.environ.get(OPT_OUT, '1') != '0'


def reexec_with_hugepages() -> None:
  """Restarts this process with :func:`hugepage_env` once; returns at once when set or moot.

  Call first thing in a ``__main__`` block, before any thread or large allocation exists.
  """
  if not applies() or TUNABLE in os.environ.get('GLIBC_TUNABLES', ''):
    return
  sys.stdout.flush()
  sys.stderr.flush()
  # orig_argv keeps the interpreter's own options and ``-m module``; argv[0] would lose them.
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], hugepage_env(os.environ))
