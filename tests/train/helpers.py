"""Shared pieces of the training tests: tiny configs, a tap on the training batches, checkpoints."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

# Not imported here: asl_jax.train.loop (clu pulls in TensorFlow, seconds per subprocess).

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(root: pathlib.Path):
  """``configs/demo.py:tiny`` with its data under ``root/data``; shared by the training tests."""
  from asl_jax.configs import demo as module

  config = module.get_config('tiny')
  config.data.annotation_file = str(root / 'data' / 'annotations.json')
  config.data.feature_dir = str(root / 'data' / 'features')
  config.train.num_epochs = 1
  config.train.warmup_epochs = 0
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 1
  return config


def resume_config(data_root: pathlib.Path):
  """Tiny config over 3 epochs of 2 steps (batch 4 of 9 videos); saves and logs every 2 steps."""
  config = tiny_config(data_root)
  config.train.num_epochs = 2
  config.train.warmup_epochs = 1
  config.train.log_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.train.keep_checkpoints = 2
  # The taps see a batch when it is built; prefetching builds ahead of the step that uses it, so
  # "before step N" needs batches built on demand (tests/data/test_prefetch.py covers prefetch).
  config.data.prefetch_batches = 0
  return config


class BatchTap:
  """Wraps the loop's training batches: calls ``on_batch(step, batch)`` before ``step`` runs.

  ``step`` is the 1-based global step the batch feeds. Install with :meth:`install`.
  """

  def __init__(self, on_batch: Callable[[int, dict], None] | None = None):
    self.on_batch = on_batch
    self.seen: list[tuple[int, tuple, tuple]] = []  # (step, video ids, window starts).

  def install(self, monkeypatch) -> BatchTap:
    from asl_jax.train import loop

    real = getattr(loop._train_batches, 'untapped', loop._train_batches)  # One tap at a time.
    tapped = lambda config: _Tapped(real(config), self)
    tapped.untapped = real
    monkeypatch.setattr(loop, '_train_batches', tapped)
    return self


class _Tapped:
  def __init__(self, inner, tap: BatchTap):
    self.inner, self.tap = inner, tap
    self.steps_per_epoch, self.stats = inner.steps_per_epoch, inner.stats

  def epoch(self, epoch: int, start_step: int = 0):
    for i, batch in enumerate(self.inner.epoch(epoch, start_step), start=start_step):
      step = epoch * self.steps_per_epoch + i + 1
      self.tap.seen.append((step, tuple(batch['video_id']), tuple(batch['window_start'])))
      if self.tap.on_batch is not None:
        self.tap.on_batch(step, batch)
      yield batch


def checkpoint_steps(workdir: pathlib.Path, folder: str = 'checkpoints') -> list[int]:
  return sorted(int(p.name) for p in (workdir / folder).iterdir() if p.name.isdigit())


def restore_state(workdir: pathlib.Path, step: int, folder: str = 'checkpoints') -> dict:
  """A checkpoint's train state as a flat {path: numpy array} dict (no target needed)."""
  manager = ocp.CheckpointManager(workdir / folder, item_names=('state', 'meta'))
  tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  manager.close()
  return flatten(tree)


def flatten(tree) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def run_module(module: str, *args: str, log: pathlib.Path, devices: int = 1) -> subprocess.Popen:
  """Starts ``python -m module args`` with ``devices`` fake CPU devices, output to ``log``.

  The device count must be set before JAX initialises, hence a process. Output goes to a file,
  not a pipe, so a worker that runs beside the test never blocks on a full pipe.
  """
  env = dict(os.environ)
  env.pop('JAX_NUM_CPU_DEVICES', None)
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'host_platform_device_count' not in f]
  env['XLA_FLAGS'] = ' '.join([*flags, f'--xla_force_host_platform_device_count={devices}'])
  env['JAX_PLATFORMS'] = 'cpu'
  env['JAX_COMPILATION_CACHE_DIR'] = str(REPO_ROOT / '.jax_cache')
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  with open(log, 'w') as out:  # The child keeps its own handle.
    return subprocess.Popen(
      [sys.executable, '-m', module, *args],
      cwd=REPO_ROOT,
      env=env,
      stdout=out,
      stderr=subprocess.STDOUT,
    )


def tail(log: pathlib.Path, chars: int = 4000) -> str:
  return log.read_text(errors='replace')[-chars:] if log.exists() else f'{log} missing'
