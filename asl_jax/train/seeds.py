"""One config, N seeds: the runs in sequence and their mAP as mean ± std per tIoU and on average.

Each seed trains in ``<root>/seed<N>`` (a finished run, one with ``metrics.json``, is not run
again; an interrupted one resumes from its checkpoint). :func:`summarize` is also what
``launch/summarize_study.py`` uses for its tables, so the two report the same statistics: the
mean and the sample standard deviation (``ddof=1``) over seeds, in percent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from etils import epath

logger = logging.getLogger(__name__)


def summarize(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
  """Mean ± std over seeds of ``{seed: metrics}`` (``metrics``: ``tious``, ``mAP`` [T] and
  ``average_mAP``, fractions as metrics.json holds them), in percent; std is NaN for one seed."""
  seeds = sorted(per_seed)
  if not seeds:
    raise ValueError('no finished seed to summarize')
  tious = list(per_seed[seeds[0]]['tious'])
  for s in seeds:
    if list(per_seed[s]['tious']) != tious:
      raise ValueError(f'seed {s}: tIoUs {per_seed[s]["tious"]} differ from seed {seeds[0]}')
  avg = np.array([per_seed[s]['average_mAP'] for s in seeds], np.float64) * 100
  at = np.array([per_seed[s]['mAP'] for s in seeds], np.float64) * 100  # [S, T]
  ddof = 1 if len(seeds) > 1 else 0
  nan = np.full(len(tious), np.nan)
  return {
    'seeds': seeds,
    'tious': tious,
    'average_mAP': {
      'per_seed': avg.tolist(),
      'mean': float(avg.mean()),
      'std': float(avg.std(ddof=1)) if len(seeds) > 1 else float('nan'),
    },
    'mAP': {
      'per_seed': at.tolist(),
      'mean': at.mean(axis=0).tolist(),
      'std': (at.std(axis=0, ddof=ddof) if ddof else nan).tolist(),
    },
  }


def format_table(summary: Mapping[str, Any]) -> str:
  """Markdown: one column per tIoU and the average, one row per seed, then mean ± std."""
  tious = summary['tious']
  header = ['seed', *(f'mAP@{t:g}' for t in tious), 'average']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for i, seed in enumerate(summary['seeds']):
    cells = [*summary['mAP']['per_seed'][i], summary['average_mAP']['per_seed'][i]]
    lines.append(f'| {seed} | ' + ' | '.join(f'{v:.2f}' for v in cells) + ' |')
  means = [*summary['mAP']['mean'], summary['average_mAP']['mean']]
  stds = [*summary['mAP']['std'], summary['average_mAP']['std']]
  lines.append(
    '| mean ± std | ' + ' | '.join(f'**{m:.2f} ± {s:.2f}**' for m, s in zip(means, stds)) + ' |'
  )
  return '\n'.join(lines)


def collect(root: str, weights: str = 'ema') -> dict[int, dict]:
  """``{seed: metrics of weights}`` of the finished runs ``root/seed<N>/metrics.json``."""
  runs = {}
  for path in sorted(epath.Path(root).glob('seed*/metrics.json')):
    name = path.parent.name.removeprefix('seed')
    if name.isdigit():
      metrics = json.loads(path.read_text())
      runs[int(name)] = metrics[weights] if weights in metrics else metrics
  return runs


def run_seeds(
  config: ml_collections.ConfigDict,
  root: str,
  seeds: Sequence[int],
  *,
  weights: str = 'ema',
  train: bool = True,
) -> dict[str, Any]:
  """Trains ``config`` once per seed in sequence (``train=False``: only collects), then writes
  ``root/seeds.json`` and ``root/seeds.md`` with :func:`summarize` of the seeds asked for."""
  from asl_jax.train import loop  # Imported here: collecting needs no TensorFlow.

  root_path = epath.Path(root)
  for seed in seeds if train else ():
    workdir = root_path / f'seed{seed}'
    if (workdir / 'metrics.json').exists():
      logger.info('seed %d: %s/metrics.json exists, not run again', seed, workdir)
      continue
    run_config = config.copy_and_resolve_references()
    run_config.seed = int(seed)
    logger.info('seed %d: training in %s', seed, workdir)
    result = loop.train_and_evaluate(run_config, str(workdir))
    if 'interrupted_at_step' in result:
      raise InterruptedError(f'seed {seed} was interrupted; run the same command to resume')
  finished = collect(root, weights)
  missing = sorted(set(seeds) - set(finished))
  if missing:
    logger.warning('seeds without results (not summarized): %s', missing)
  summary = summarize({s: finished[s] for s in seeds if s in finished})
  summary['weights'] = weights
  root_path.mkdir(parents=True, exist_ok=True)
  (root_path / 'seeds.json').write_text(json.dumps(summary, indent=1))
  (root_path / 'seeds.md').write_text(format_table(summary) + '\n')
  return summary
