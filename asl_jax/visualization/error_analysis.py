"""Figure of the DETAD-style error analysis: false-positive profile and miss rates."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from asl_jax.evaluation import analysis
from asl_jax.visualization import render

FP_COLORS = {
  'true_positive': '#4c9a2a',
  'double_detection': '#f2b134',
  'wrong_label': '#e4572e',
  'localization': '#4d80b3',
  'confusion': '#a05195',
  'background': '#8c8c8c',
}


def plot_error_analysis(result: dict[str, Any]) -> Figure:
  """Three panels from :func:`asl_jax.evaluation.analysis.analyze`: the share of each outcome
  among the top-kG detections (k = 1..10), and the miss rate by length and by instances."""
  fig = render.new_figure(14, 4)
  ax_fp, ax_len, ax_inst = fig.subplots(1, 3, width_ratios=[1.6, 1, 1])
  profile = result['false_positives']
  keys = list(profile)
  ks = np.arange(1, len(keys) + 1)
  bottom = np.zeros(len(keys))
  for kind, color in FP_COLORS.items():
    share = np.array([profile[k][kind] / max(profile[k]['detections'], 1) for k in keys])
    ax_fp.bar(ks, 100 * share, bottom=100 * bottom, color=color, label=kind.replace('_', ' '))
    bottom += share
  ax_fp.set_xticks(ks, [f'{k}G' for k in ks])
  ax_fp.set_xlabel('top-kG detections of each class')
  ax_fp.set_ylabel('% of detections')
  ax_fp.set_ylim(0, 100)
  ax_fp.set_title(f'detections at tIoU {result["tiou"]:g}')
  ax_fp.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  fn = result['false_negatives']
  for ax, table, title in (
    (ax_len, fn['by_length_sec'], 'missed by action length (s)'),
    (ax_inst, fn['by_instances_per_video'], 'missed by instances per video'),
  ):
    names = list(table)
    rates = [100 * (table[n]['rate'] or 0.0) for n in names]
    bars = ax.bar(names, rates, color='#4d80b3')
    for bar, name in zip(bars, names):
      ax.annotate(
        f'{table[name]["missed"]}/{table[name]["gt"]}',
        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
        ha='center',
        va='bottom',
        fontsize=7,
      )
    ax.set_ylim(0, 105)
    ax.set_ylabel('% of ground truth missed (top-10G)')
    ax.set_title(title)
  return fig


def write_error_analysis(result: dict[str, Any], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """Writes ``out_dir/error_analysis.json`` and ``out_dir/error_analysis.png``; returns both."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  (out / 'error_analysis.json').write_text(json.dumps(result, indent=1))
  png = render.save_png(plot_error_analysis(result), out / 'error_analysis.png')
  return [out / 'error_analysis.json', png]


def analyze_files_to(out_dir: str | pathlib.Path, gt_path: str, pred_path: str, **kwargs) -> str:
  """:func:`asl_jax.evaluation.analysis.analyze_files` (``kwargs``: its options), written to
  ``out_dir`` as JSON and a figure; returns the summary lines and the paths written."""
  result = analysis.analyze_files(gt_path, pred_path, **kwargs)
  paths = write_error_analysis(result, out_dir)
  return analysis.format_summary(result) + '\n' + '\n'.join(f'wrote {p}' for p in paths)
