"""Training curves from a workdir's ``metrics.jsonl``: every loss term, learning rate, gradients."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from etils import epath
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from asl_jax.visualization import render

History = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (steps [n], values [n]).


def read_metrics_jsonl(path: str | os.PathLike) -> History:
  """Scalars per name, by step; a step logged twice (a resumed run) keeps its last record."""
  records: dict[int, dict] = {}
  for n, line in enumerate(epath.Path(path).read_text().splitlines(), 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}:{n}: not a JSON object ({e})') from e
    records[int(record['step'])] = record
  names = sorted({k for r in records.values() for k in r if k != 'step'})
  history = {}
  for name in names:
    steps = np.array(sorted(s for s, r in records.items() if name in r), np.int64)
    history[name] = (steps, np.array([records[s][name] for s in steps], np.float64))
  return history


def _panels(history: History) -> list[tuple[str, list[str], bool]]:
  """(title, metric names, log scale) per panel: each loss term alone, then the training state."""
  losses = [k for k in history if k == 'loss' or k.endswith('_loss')]
  losses.sort(key=lambda k: (k != 'loss', k))
  panels = [(name.replace('_', ' '), [name], False) for name in losses]
  if 'learning_rate' in history:
    panels.append(('learning rate', ['learning_rate'], False))
  if 'grad_norm' in history:
    panels.append(('gradient norm (before clipping)', ['grad_norm'], True))
  gaussians = [k for k in history if k.startswith('gaussians/')]
  if gaussians:
    panels.append(('class Gaussians (mean over classes)', gaussians, False))
  if 'num_pos' in history:
    panels.append(('positive points per batch', ['num_pos'], False))
  return panels


def plot_training_curves(history: History, *, title: str = 'Training curves') -> Figure:
  """One panel per loss term (total first), then learning rate, gradient norm and Gaussians."""
  panels = _panels(history)
  ncols = 3
  nrows = max(1, math.ceil(len(panels) / ncols))
  fig = render.new_figure(4.2 * ncols, 2.9 * nrows + 0.5)
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax, (name, keys, log) in zip(axes.flat, panels):
    for key in keys:
      steps, values = history[key]
      label = key.split('/', 1)[-1].removesuffix('_mean') if len(keys) > 1 else None
      ax.plot(steps, values, marker='.' if len(steps) < 30 else None, label=label)
    values = np.concatenate([history[k][1] for k in keys])
    if log and np.all(values > 0) and values.max() > 20 * values.min():
      ax.set_yscale('log')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(name, fontsize=10)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    if len(keys) > 1:
      ax.legend(fontsize=7, ncols=2)
  for ax in list(axes.flat)[len(panels) :]:
    ax.set_axis_off()
  if not panels:
    render.no_data(axes[0, 0], 'no scalars logged yet')
  fig.suptitle(title)
  return fig
