"""Summarises a Table 5 sweep (launch/synthetic_study.sh): mean +- std average mAP per row.

Rows may add one of the options beyond the paper (``positives_inside``,
``normalize_sensitivity``) to the full model; every row with two or more seeds gets Welch's t
(unequal variances) against the baseline row (no ASL component), with its degrees of freedom
and two-sided p.

  python -m launch.summarize_study workdirs/study [--out docs/synthetic_study_results.md]

Reads ``ROOT/<config>/table5/<row>/seed<N>/metrics.json`` (written by asl_jax.main) and prints a
Markdown table per config: which components the row keeps, the average mAP of every seed (EMA
weights), their mean and sample standard deviation, and the mean mAP at each tIoU. Rows with
missing seeds are shown with the seeds they have; nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from asl_jax.train import seeds as seeds_lib

# Row directory names (launch/sweep.py: variants joined with '+'; 'asl' = no variant).
COMPONENTS = (
  ('class-level', 'no_class_level'),
  ('instance-level', 'no_instance_level'),
  ('ASCL', 'no_ascl'),
)


# Options beyond the paper that a row may add (configs/ablations.py).
OPTIONS = ('positives_inside', 'normalize_sensitivity')
BASELINE = (False, False, False)


def options_of(row: str) -> tuple[str, ...]:
  """The options beyond the paper that a row adds."""
  return tuple(p for p in row.split('+') if p in OPTIONS)


def components_of(row: str) -> tuple[bool, ...]:
  """Which of the three ASL components a row keeps (True = on)."""
  off = set(row.split('+')) - set(OPTIONS) if row != 'asl' else set()
  unknown = off - {flag for _, flag in COMPONENTS}
  if unknown:
    raise ValueError(f'row {row!r}: not a Table 5 row (unknown parts {sorted(unknown)})')
  return tuple(flag not in off for _, flag in COMPONENTS)


def welch_t(baseline: list[float], other: list[float]) -> tuple[float, float, float] | None:
  """Welch's t of ``other`` against ``baseline`` (unequal variances), its Welch–Satterthwaite
  degrees of freedom and the two-sided p; None with fewer than two values on either side."""
  if len(baseline) < 2 or len(other) < 2:
    return None
  from scipy import stats

  a, b = np.asarray(other, np.float64), np.asarray(baseline, np.float64)
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  if va + vb == 0:
    return None
  t = (a.mean() - b.mean()) / np.sqrt(va + vb)
  df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
  return float(t), float(df), float(2 * stats.t.sf(abs(t), df))


def collect(sweep_dir: pathlib.Path, weights: str = 'ema') -> dict[str, dict[int, dict]]:
  """{row: {seed: metrics of ``weights``}} for every finished run under ``sweep_dir``."""
  runs: dict[str, dict[int, dict]] = {}
  for path in sorted(sweep_dir.glob('*/seed*/metrics.json')):
    row, seed = path.parent.parent.name, int(path.parent.name.removeprefix('seed'))
    metrics = json.loads(path.read_text())
    runs.setdefault(row, {})[seed] = metrics[weights] if weights in metrics else metrics
  return runs


def table(runs: dict[str, dict[int, dict]]) -> tuple[list[str], list[dict]]:
  """Markdown lines, and one record per row (for JSON), ordered by number of components."""
  ordered = sorted(
    runs, key=lambda r: (sum(components_of(r)), components_of(r)[::-1], options_of(r))
  )
  seeds = sorted({s for r in runs.values() for s in r})
  tious = next(iter(next(iter(runs.values())).values()))['tious']
  header = [name for name, _ in COMPONENTS] + [f'seed {s}' for s in seeds]
  header += ['mean ± std', *(f'@{t:g}' for t in tious), 'Welch t vs baseline', 'beyond the paper']
  baseline = next((r for r in runs if components_of(r) == BASELINE and not options_of(r)), None)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  records = []
  for row in ordered:
    per_seed = runs[row]
    stats = seeds_lib.summarize(per_seed)  # The statistics of asl_jax.cli.seeds, in percent.
    mean, std = stats['average_mAP']['mean'], stats['average_mAP']['std']
    cells = ['✓' if on else '–' for on in components_of(row)]
    cells += [f'{per_seed[s]["average_mAP"] * 100:.2f}' if s in per_seed else 'n/a' for s in seeds]
    spread = f'{mean:.2f} ± {std:.2f}' if len(per_seed) > 1 else f'{mean:.2f} (1 seed)'
    cells += [f'**{spread}**', *(f'{v:.2f}' for v in stats['mAP']['mean'])]
    welch = None
    if baseline is not None and row != baseline:
      welch = welch_t(
        seeds_lib.summarize(runs[baseline])['average_mAP']['per_seed'],
        stats['average_mAP']['per_seed'],
      )
    cells.append(
      ''
      if row == baseline
      else 'n/a'
      if welch is None
      else f't = {welch[0]:+.2f} (df {welch[1]:.1f}, p = {welch[2]:.3f})'
    )
    cells.append(', '.join(options_of(row)))
    lines.append('| ' + ' | '.join(cells) + ' |')
    records.append(
      dict(
        row=row,
        seeds=stats['seeds'],
        average_mAP=stats['average_mAP']['per_seed'],
        mean=mean,
        std=std,
        welch_t=None if welch is None else dict(zip(('t', 'df', 'p'), welch)),
      )
    )
  return lines, records


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('root', type=pathlib.Path, help='The study root (workdirs/study).')
  parser.add_argument('--out', type=pathlib.Path, help='Also write the tables here.')
  parser.add_argument('--weights', default='ema', choices=('ema', 'raw'))
  args = parser.parse_args(argv)
  sweeps = sorted(args.root.glob('*/table5'))
  if not sweeps:
    print(f'no */table5 sweeps under {args.root}', file=sys.stderr)
    return 1
  out, summary = [], {}
  for sweep_dir in sweeps:
    runs = collect(sweep_dir, args.weights)
    if not runs:
      continue
    lines, records = table(runs)
    name = sweep_dir.parent.name
    out += [f'### {name} (average mAP %, {args.weights} weights)', '', *lines, '']
    summary[name] = records
  print('\n'.join(out))
  if args.out:
    args.out.write_text('\n'.join(out))
    args.out.with_suffix('.json').write_text(json.dumps(summary, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
