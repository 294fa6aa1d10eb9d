"""Action sensitivity pictures (ASL paper Fig. 4): p and q along actions, the class Gaussians."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from asl_jax.data.geometry import FeatureGeometry
from asl_jax.ops import sensitivity as sens_ops
from asl_jax.visualization import render

# Named class-level Gaussians -> legend text; the names follow ``named_gaussians``.
GAUSSIAN_LABELS = {
  'cls': r'$p^{cls}$ classification',
  'start': r'$p^{sot}$ start',
  'end': r'$p^{eot}$ end',
  'loc': r'$p^{loc}$ localisation',
}
GAUSSIAN_STYLES = {
  'cls': dict(color='tab:blue', ls='-'),
  'start': dict(color='tab:green', ls='--'),
  'end': dict(color='tab:red', ls='-.'),
  'loc': dict(color='tab:purple', ls='--'),
}
# Instance-level curves (model outputs at pyramid level 0) -> legend text and style.
INSTANCE_LABELS = {
  'q_cls': r'$q^{cls}$ (instance evaluator)',
  'q_loc': r'$q^{loc}$ (instance evaluator)',
  'score': 'class score (sigmoid of the GT-class logit)',
}
INSTANCE_STYLES = {
  'q_cls': dict(color='tab:blue', ls='-'),
  'q_loc': dict(color='tab:orange', ls='--'),
  'score': dict(color='0.45', ls=':'),
}


def named_gaussians(gaussians: Mapping) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The detector's ``gaussians`` output -> ``{'cls'|'start'|'end'|'loc': (mu [K], sigma [K])}``.

  ``sigma`` is the effective one (absolute value, clamped as the loss uses it).
  """
  pairs = {}
  if gaussians.get('cls') is not None:
    pairs['cls'] = gaussians['cls']
  loc = list(gaussians.get('loc') or [])
  if len(loc) == 2:
    pairs['start'], pairs['end'] = loc
  elif len(loc) == 1:
    pairs['loc'] = loc[0]
  return {
    name: (np.asarray(mu, np.float64), np.asarray(sens_ops.effective_sigma(sigma), np.float64))
    for name, (mu, sigma) in pairs.items()
  }


@dataclasses.dataclass(frozen=True)
class InstanceCurves:
  """Sensitivities over one ground-truth action and its surroundings, per feature."""

  video_id: str
  class_name: str
  segment_sec: tuple[float, float]  # The action, seconds.
  times_sec: np.ndarray  # [n] centre of each feature's window, seconds.
  class_level: dict[str, np.ndarray]  # Gaussian name -> [n] p(t) of the action's class.
  instance_level: dict[str, np.ndarray]  # 'q_cls' / 'q_loc' / 'score' -> [n].


def instance_curves(
  *,
  video_id: str,
  segment_grid: Sequence[float],
  label: int,
  class_name: str,
  geometry: FeatureGeometry,
  gaussians: Mapping[str, tuple[np.ndarray, np.ndarray]],
  level0: Mapping[str, np.ndarray],
  margin: float = 0.5,
) -> InstanceCurves:
  """Curves over ``[s - margin N, e + margin N]`` (clipped to the video) of one action.

  ``p(t) = exp(-(d - mu_c)^2 / (2 sigma_c^2))`` with ``d = (t - centre) / N`` in grid units
  (``N`` the action length), as the training losses weight the points (paper eq. 3-4).

  Args:
    segment_grid: the action ``(s, e)`` in grid units; label its class id.
    gaussians: from :func:`named_gaussians`.
    level0: per-feature ``[T]`` arrays of the video (``q_cls``, ``q_loc``, ``score``); missing
      keys are left out of the picture.
  """
  s, e = float(segment_grid[0]), float(segment_grid[1])
  length = max(e - s, 1e-6)
  num = len(next(iter(level0.values()))) if level0 else int(math.ceil(e)) + 1
  lo = max(0, int(math.floor(s - margin * length)))
  hi = min(num - 1, int(math.ceil(e + margin * length)))
  t = np.arange(lo, hi + 1, dtype=np.float64)
  d = (t - 0.5 * (s + e)) / length
  class_level = {
    name: np.asarray(sens_ops.gaussian(d, mu[label], sigma[label]), np.float64)
    for name, (mu, sigma) in gaussians.items()
  }
  instance_level = {k: np.asarray(v, np.float64)[lo : hi + 1] for k, v in level0.items()}
  seg_sec = geometry.grid_to_sec(np.array([s, e]))
  return InstanceCurves(
    video_id=video_id,
    class_name=class_name,
    segment_sec=(float(seg_sec[0]), float(seg_sec[1])),
    times_sec=geometry.grid_to_sec(t),
    class_level=class_level,
    instance_level=instance_level,
  )


def plot_action_sensitivity(instances: Sequence[InstanceCurves], *, columns: int = 0) -> Figure:
  """One column per action: class-level p on top, instance-level q (model outputs) below.

  ``columns`` fixes the number of columns (so that figures of several videos share a size);
  by default one per instance.
  """
  columns = max(columns, len(instances), 1)
  fig = render.new_figure(4.6 * columns, 6.2)
  axes = fig.subplots(2, columns, squeeze=False, sharey='row')
  for col in range(columns):
    top, bottom = axes[0, col], axes[1, col]
    if col >= len(instances):
      top.set_axis_off()
      bottom.set_axis_off()
      continue
    inst = instances[col]
    for ax in (top, bottom):
      ax.axvspan(*inst.segment_sec, color='0.88', zorder=0, label='ground truth')
      ax.set_ylim(-0.02, 1.05)
      ax.set_xlim(inst.times_sec[0], inst.times_sec[-1])
      ax.grid(alpha=0.3)
    for name, values in inst.class_level.items():
      top.plot(inst.times_sec, values, label=GAUSSIAN_LABELS[name], **GAUSSIAN_STYLES[name])
    if not inst.class_level:
      render.no_data(top, 'no class-level Gaussians in this model')
    for name, values in inst.instance_level.items():
      bottom.plot(inst.times_sec, values, label=INSTANCE_LABELS[name], **INSTANCE_STYLES[name])
    s, e = inst.segment_sec
    top.set_title(f'{inst.video_id}: {inst.class_name}\n[{s:.1f} s, {e:.1f} s]', fontsize=10)
    bottom.set_xlabel('time (s)')
  axes[0, 0].set_ylabel('class-level sensitivity p')
  axes[1, 0].set_ylabel('instance-level q / score')
  if instances:
    # One legend per row, outside the panels: the curves fill the whole plotting area.
    for row, where in ((0, 'outside right upper'), (1, 'outside right lower')):
      handles, labels = axes[row, 0].get_legend_handles_labels()
      fig.legend(
        handles, labels, loc=where, fontsize=8, title=('class level', 'instance level')[row]
      )
  else:
    render.no_data(axes[0, 0], 'no ground-truth action to show')
  fig.suptitle('Action sensitivity along ground-truth actions (shaded) and around them')
  return fig


def plot_class_gaussians(
  gaussians: Mapping[str, tuple[np.ndarray, np.ndarray]],
  class_names: Sequence[str],
  *,
  max_classes: int = 12,
) -> Figure:
  """The learned class-level Gaussians over ``d`` in [-0.5, 0.5], and their mu +- sigma per class.

  Top: one panel per class (the first ``max_classes``), one curve per sub-task. Bottom: mu with
  sigma as error bars for every class, one marker colour per sub-task.
  """
  num_classes = len(class_names)
  shown = min(num_classes, max_classes)
  ncols = min(4, max(shown, 1))
  nrows = max(1, math.ceil(shown / ncols))
  fig = render.new_figure(3.4 * ncols, 2.4 * nrows + 3.2)
  top, bottom = fig.subfigures(2, 1, height_ratios=[2.4 * nrows, 3.2])
  axes = top.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
  d = np.linspace(-0.5, 0.5, 201)
  for i, ax in enumerate(axes.flat):
    if i >= shown:
      ax.set_axis_off()
      continue
    for name, (mu, sigma) in gaussians.items():
      values = np.asarray(sens_ops.gaussian(d, mu[i], sigma[i]))
      ax.plot(d, values, label=GAUSSIAN_LABELS[name], **GAUSSIAN_STYLES[name])
    ax.set_title(class_names[i], fontsize=10)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if i % ncols == 0:
      ax.set_ylabel('p(d)')
    if i >= shown - ncols:
      ax.set_xlabel('d = (t - centre) / length')
  if gaussians:
    handles, labels = axes[0, 0].get_legend_handles_labels()
    top.legend(handles, labels, loc='outside right upper', fontsize=8, title='sub-task')
  else:
    render.no_data(axes[0, 0], 'no class-level Gaussians in this model')
  more = f' (first {shown} of {num_classes} classes)' if shown < num_classes else ''
  top.suptitle(f'Learned class-level Gaussians{more}')

  ax = bottom.subplots()
  x = np.arange(num_classes)
  offsets = np.linspace(-0.2, 0.2, max(len(gaussians), 1))
  for offset, (name, (mu, sigma)) in zip(offsets, gaussians.items()):
    style = GAUSSIAN_STYLES[name]
    ax.errorbar(
      x + offset, mu, yerr=sigma, fmt='o', ms=4, capsize=2, color=style['color'],
      label=f'{GAUSSIAN_LABELS[name]}: mu +- sigma',
    )  # fmt: skip
  if gaussians:  # Head room for the legend above the highest error bar.
    low = min(float(np.min(mu - sigma)) for mu, sigma in gaussians.values())
    high = max(float(np.max(mu + sigma)) for mu, sigma in gaussians.values())
    ax.set_ylim(low - 0.1 * (high - low), high + 0.3 * (high - low))
  ax.axhline(-0.5, color='0.6', lw=0.8, ls=':')
  ax.axhline(0.5, color='0.6', lw=0.8, ls=':')
  ax.set_xticks(x)
  ax.set_xticklabels(
    class_names if num_classes <= 30 else [str(i) for i in x],
    rotation=45 if num_classes > 8 else 0,
    ha='right' if num_classes > 8 else 'center',
    fontsize=8,
  )
  ax.set_xlabel('class' if num_classes <= 30 else 'class id')
  ax.set_ylabel('mu (d units); bars: sigma')
  ax.grid(alpha=0.3)
  if gaussians:
    ax.legend(fontsize=8, loc='upper right', ncols=len(gaussians))
  bottom.suptitle('Gaussian centre and width per class (dotted: action start and end)')
  return fig
