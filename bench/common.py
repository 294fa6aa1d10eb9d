"""What every benchmark records the same way: peak memory, the process's machine, the JSON file."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_machine(load_before: tuple[float, ...]) -> dict:
  """Platform, cores and the load average before and after a benchmark (noise indicator)."""
  return {
    'platform': platform.platform(),
    'python': platform.python_version(),
    'cpu_count': os.cpu_count(),
    # Huge pages for large allocations (asl_jax.hugepages): set for every process of a run.
    'glibc_tunables': os.environ.get('GLIBC_TUNABLES'),
    'load_average_before': load_before,
    'load_average_after': os.getloadavg(),
  }


def write_result(result: dict, out: str | None, *, announce: bool = False) -> None:
  """Writes ``result`` as JSON to ``out`` when one is given."""
  if not out:
    return
  with open(out, 'w') as f:
    json.dump(result, f, indent=1)
  if announce:
    print(f'wrote {out}', file=sys.stderr)
