"""Huge pages for large allocations: the environment, the restart, and the page faults saved."""

import json
import os
import subprocess
import sys

import pytest

from asl_jax import hugepages

# Allocates and touches 256 MiB with glibc's malloc, prints the minor page faults it took (not
# through numpy, which asks for huge pages on its own).
_FAULTS = """
import ctypes, json, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
size = 256 * 2**20
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ctypes.memset(libc.malloc(size), 1, size)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""

_REEXEC = """
import json, os, sys
from asl_jax import hugepages
hugepages.reexec_with_hugepages()
print(json.dumps([sys.argv[1:], os.environ.get('GLIBC_TUNABLES')]))
"""


def _clean_env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', hugepages.OPT_OUT)}
  return dict(env, **extra)


def _run(code: str, env: dict, *args: str):
  proc = subprocess.run(
    [sys.executable, '-c', code, *args], env=env, capture_output=True, text=True, check=True
  )
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_env_adds_the_tunable_once_and_keeps_others():
  assert hugepages.hugepage_env({})['GLIBC_TUNABLES'] == 'glibc.malloc.hugetlb=1'
  env = hugepages.hugepage_env({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2', 'A': '1'})
  assert env == {'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', 'A': '1'}
  assert hugepages.hugepage_env(env) == env
  user_choice = {'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}
  assert hugepages.hugepage_env(user_choice) == user_choice  # Never overrides the user.


needs_madvise = pytest.mark.skipif(
  not hugepages.supported(),
  reason=f'needs Linux, glibc and THP mode madvise (mode here: {hugepages.thp_mode()})',
)


@needs_madvise
def test_restart_sets_the_tunable_keeps_arguments_and_can_be_turned_off():
  assert _run(_REEXEC, _clean_env(), '--a=1', 'b') == [['--a=1', 'b'], 'glibc.malloc.hugetlb=1']
  assert _run(_REEXEC, _clean_env(**{hugepages.OPT_OUT: '0'}), 'x') == [['x'], None]


@needs_madvise
def test_the_tunable_cuts_page_faults_of_large_allocations():
  """What the restart is for: 256 MiB touched in 2 MiB pages rather than 4 KiB ones."""
  small_pages = _run(_FAULTS, _clean_env())
  huge_pages = _run(_FAULTS, hugepages.hugepage_env(_clean_env()))
  assert small_pages > 60_000  # 65,536 pages of 4 KiB.
  assert huge_pages < small_pages / 10
