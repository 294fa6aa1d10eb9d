"""asl-fetch-assets: download and verify a benchmark's public files from its manifest.

  asl-fetch-assets NAME [--out=DIR] [--verify_only]

NAME: thumos14, multithumos, charades, activitynet13, ego4d, epic100, or a manifest's path
(what each asset is and where it goes: :mod:`asl_jax.tools.fetch_assets`). Exits 1 when a file is
missing, fails its checksum or cannot be downloaded; assets to fetch by hand are listed only.
"""

from __future__ import annotations

from absl import app, flags

from asl_jax.cli import common

_OUT = flags.DEFINE_string('out', None, 'Destination folder (default data/NAME).')
_VERIFY_ONLY = flags.DEFINE_bool('verify_only', False, 'Check the files; download nothing.')


def main(argv: list[str]) -> int:
  from asl_jax.tools import fetch_assets

  if len(argv) != 2:
    raise app.UsageError('name one manifest: asl-fetch-assets NAME [--out=DIR] [--verify_only]')
  reports = fetch_assets.fetch(argv[1], _OUT.value, verify_only=_VERIFY_ONLY.value)
  for r in reports:
    head, *rest = r.message.split('\n')
    print(f'{r.status.upper():8s} {r.file}: {head}')
    for line in rest:
      print(f'{"":9s}{line}')
  counts = {s: sum(r.status == s for r in reports) for s in ('ok', 'fetched', 'present')}
  manual = sum(r.status == 'manual' for r in reports)
  failed = [r.file for r in reports if r.failed]
  summary = ', '.join(f'{n} {s}' for s, n in counts.items() if n)
  print(f'{summary or "nothing in place"}; {manual} to fetch by hand; {len(failed)} missing or bad')
  return 1 if failed else 0


def run() -> None:
  common.run(main, positional=True)


if __name__ == '__main__':
  run()
