"""Matplotlib plumbing for every figure: Agg canvases, class colours, PNG files, image arrays.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through ``pyplot``:
no global backend switch, no display needed, nothing kept alive after a figure is written.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def new_figure(width: float, height: float, *, dpi: int = DPI) -> Figure:
  """A figure of ``width`` x ``height`` inches on an Agg canvas, with constrained layout."""
  fig = Figure(figsize=(width, height), dpi=dpi, layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def class_colors(num_classes: int) -> list[tuple[float, float, float, float]]:
  """One distinct colour per class id: tab10 / tab20 when they suffice, else a hue wheel."""
  if num_classes <= 10:
    cmap = mpl.colormaps['tab10']
    return [cmap(i) for i in range(num_classes)]
  if num_classes <= 20:
    cmap = mpl.colormaps['tab20']
    return [cmap(i) for i in range(num_classes)]
  cmap = mpl.colormaps['hsv']
  # Interleave the hues so that neighbouring class ids do not get neighbouring colours.
  order = np.argsort([(i * 7) % num_classes for i in range(num_classes)])
  return [cmap(float(order[i]) / num_classes) for i in range(num_classes)]


def to_array(fig: Figure) -> np.ndarray:
  """The rendered figure as ``[H, W, 3]`` uint8 RGB."""
  canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: str | pathlib.Path) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, format='png', facecolor='white')
  return path


def stack_images(images: Sequence[np.ndarray]) -> np.ndarray:
  """``[H_i, W_i, 3]`` images -> ``[N, H, W, 3]`` uint8, padded with white to the largest size."""
  height = max(im.shape[0] for im in images)
  width = max(im.shape[1] for im in images)
  out = np.full((len(images), height, width, 3), 255, np.uint8)
  for i, im in enumerate(images):
    out[i, : im.shape[0], : im.shape[1]] = im
  return out


def file_stem(name: str) -> str:
  """A video id or class name made safe as part of a file name."""
  return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'unnamed'


def no_data(ax, message: str) -> None:
  """Marks an axis as intentionally empty, with the reason in its centre."""
  ax.text(0.5, 0.5, message, ha='center', va='center', transform=ax.transAxes, color='0.4')
  ax.set_xticks([])
  ax.set_yticks([])
