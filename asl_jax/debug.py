"""``--config.debug=True``: a tiny, eager, NaN-checked run of any config, to step through with pdb.

What debug mode changes (each change is logged; fields set on the command line are kept):
  * model: widths 16, 2 heads, one embedding conv and one stem block, at most 3 pyramid levels
    (the last level's regression range reaches the old last upper bound), windows of at most 5.
  * data: ``max_videos`` 8 (the first 8 by id of the training and of the evaluation split);
    ``tfds_dir`` cleared, since shards cannot be capped (evaluation reads the feature files).
  * train: batch ``max(2, devices)``, one epoch without warmup, a log line every step.
  * JAX: ``jax_debug_nans`` (raises at the first operation that makes a NaN) and
    ``jax_disable_jit`` (every operation runs eagerly in Python, so breakpoints and prints work
    inside the model, the losses and post-processing; slow, hence the small run).

``asl_jax.main`` applies it after the command-line overrides are parsed and before the config is
validated, and runs the loop inside :func:`nan_checks`. The written ``config.json`` holds the
shrunk values, so ``predict``/``export`` of a debug workdir build the model it trained.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from typing import Any

import jax
import ml_collections

logger = logging.getLogger(__name__)

MAX_VIDEOS = 8
WIDTH = 16
NUM_HEADS = 2
MAX_LEVELS = 3
MAX_WINDOW = 5


def _window(w: int) -> int:
  return w if w == -1 else min(w, MAX_WINDOW)  # Odd stays odd: MAX_WINDOW is odd.


def debug_values(config: ml_collections.ConfigDict, *, num_devices: int = 1) -> dict[str, Any]:
  """The values debug mode gives ``config``'s fields, by dotted name (a pure function).

  The pyramid keeps at most ``MAX_LEVELS`` levels: the first levels keep their regression ranges
  and the last one takes every longer action, so ``max_seq_len`` and the ranges stay valid.
  """
  model = config.model
  branch = min(model.arch[2], MAX_LEVELS - 1)
  ranges = tuple(tuple(r) for r in model.regression_ranges)
  if branch < model.arch[2] and len(ranges) > branch:
    ranges = (*ranges[:branch], (ranges[branch][0], ranges[-1][1]))
  if isinstance(model.window_size, (tuple, list)):
    window = tuple(_window(w) for w in model.window_size[: branch + 1])
  else:
    window = _window(model.window_size)
  return {
    'model.arch': (1, 1, branch),
    'model.regression_ranges': ranges,
    'model.window_size': window,
    'model.embed_dim': WIDTH,
    'model.fpn_dim': WIDTH,
    'model.head_dim': WIDTH,
    'model.num_heads': NUM_HEADS,
    'data.max_videos': MAX_VIDEOS,
    'data.tfds_dir': '',
    'train.batch_size': max(2, num_devices),
    'train.num_epochs': 1,
    'train.warmup_epochs': 0,
    'train.log_every_steps': 1,
  }


def nan_checks() -> contextlib.AbstractContextManager:
  """``jax.debug_nans(True)`` for this thread while ``jax_debug_nans`` is on (debug mode or
  ``JAX_DEBUG_NANS=True``); a no-op otherwise.

  The global flag alone is not enough in jax 0.10.2: cached calls are checked through a
  thread-local hook, and leaving any ``jax.debug_nans(False)`` block (JAX enters some itself,
  e.g. in ``core.jaxpr_as_fun``) clears that hook unless the thread has its own True, so NaNs
  pass unnoticed from the second training step on (``tests/test_debug.py`` shows it).
  """
  return jax.debug_nans(True) if jax.config.jax_debug_nans else contextlib.nullcontext()


def apply_debug_mode(
  config: ml_collections.ConfigDict, *, keep: Collection[str] = ()
) -> dict[str, tuple[Any, Any]]:
  """Shrinks ``config`` in place and turns on NaN checks and eager execution, all logged.

  Args:
    keep: dotted field names set on the command line (``config_flags.get_override_values``):
      those keep their values, as later ``--config.*`` arguments win in ``launch/gpu_local.sh``.

  Returns:
    ``{field: (old, new)}`` of the fields that changed.
  """
  values = debug_values(config, num_devices=jax.device_count())
  changed = {}
  for name, value in values.items():
    section, field = name.split('.')
    old = config[section][field]
    if name in keep or old == value:
      continue
    config[section][field] = value
    changed[name] = (old, value)
  jax.config.update('jax_debug_nans', True)
  jax.config.update('jax_disable_jit', True)
  lines = [f'  {name}: {old!r} -> {new!r}' for name, (old, new) in changed.items()]
  kept = sorted(set(keep) & set(values))
  if kept:
    lines.append(f'  kept from the command line: {", ".join(kept)}')
  lines.append('  jax_debug_nans=True, jax_disable_jit=True (every op eager; slow)')
  logger.warning('debug mode (config.debug=True) changed:\n%s', '\n'.join(lines))
  return changed
