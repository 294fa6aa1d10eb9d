"""The class Gaussians' mu and sigma per class over training, and the sensitivity diagnostics."""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from asl_jax.visualization import render
from asl_jax.visualization.training_curves import History

_PER_CLASS = re.compile(r'^sensitivity/(?P<task>[a-z0-9]+)_(?P<param>mu|sigma)/(?P<cls>\d+)$')
_SUMMARY = (
  ('mean p and q at positive points', ('p_cls_pos', 'p_loc_pos', 'q_cls_pos', 'q_loc_pos')),
  ('max / min of p within an instance', ('p_cls_ratio', 'p_loc_ratio')),
)


def has_trajectories(history: History | None) -> bool:
  """Whether ``history`` holds any sensitivity scalar (ASL runs log them; the baseline does not)."""
  return bool(history) and any(k.startswith('sensitivity/') for k in history)


def plot_sensitivity_trajectories(history: History, class_names=None) -> Figure:
  """One panel per sub-task and parameter (mu, effective sigma) with a line per class, then the
  diagnostics: mean p and q at positives and the within-instance max/min ratio of p."""
  per_task: dict[tuple[str, str], dict[int, str]] = {}
  for key in history:
    match = _PER_CLASS.match(key)
    if match:
      per_task.setdefault((match['task'], match['param']), {})[int(match['cls'])] = key
  order = {'cls': 0, 'cls2': 1, 'start': 2, 'loc': 2, 'end': 3}
  panels = sorted(per_task, key=lambda tp: (tp[1] != 'mu', order.get(tp[0], 9), tp[0]))
  summary = [
    (title, [f'sensitivity/{n}' for n in names if f'sensitivity/{n}' in history])
    for title, names in _SUMMARY
  ]
  summary = [(t, keys) for t, keys in summary if keys]
  count = len(panels) + len(summary)
  ncols = 4
  nrows = max(1, -(-count // ncols))
  fig = render.new_figure(4.0 * ncols, 2.8 * nrows + 0.6)
  axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
  for ax, (task, param) in zip(axes, panels):
    classes = per_task[task, param]
    for k in sorted(classes):
      steps, values = history[classes[k]]
      label = class_names[k] if class_names is not None and k < len(class_names) else str(k)
      ax.plot(steps, values, lw=1, label=label if len(classes) <= 10 else None)
    name = 'sigma (|sigma| clamped)' if param == 'sigma' else 'mu'
    ax.set_title(f'{task}: {name}', fontsize=10)
    if len(classes) <= 10:
      ax.legend(fontsize=6, ncols=2)
  for ax, (title, keys) in zip(axes[len(panels) :], summary):
    for key in keys:
      steps, values = history[key]
      ax.plot(steps, values, label=key.split('/', 1)[1])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
  for ax in axes[:count]:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  for ax in axes[count:]:
    ax.set_axis_off()
  if not count:
    render.no_data(axes[0], 'no sensitivity scalars logged')
  fig.suptitle('Action sensitivity over training (class Gaussians per class; diagnostics)')
  return fig


def final_values(history: History) -> dict[str, float]:
  """The last logged value of every sensitivity scalar (for summaries and tests)."""
  return {
    k: float(np.asarray(v[1])[-1]) for k, v in history.items() if k.startswith('sensitivity/')
  }
