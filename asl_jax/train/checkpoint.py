"""Orbax checkpoints of the train state: the latest N for resuming, the best one by validation mAP.

What a checkpoint holds, and how a resumed run continues bit for bit:
  * ``state``: the whole :class:`~asl_jax.train.state.TrainState`: parameters, EMA parameters,
    AdamW moments and count (hence the learning-rate schedule position), the loss normaliser
    (the EMA of the positive count), the RNG key and the step. Per-step randomness is
    ``fold_in(rng, step)``, so dropout and drop-path masks continue exactly.
  * ``meta``: JSON ``{step, epoch, steps_per_epoch}`` for people and tools.
  * The data position is not stored: it is derived from the step. Training batches are a pure
    function of ``(seed, epoch, in-epoch step, process)``, so a run resumed at step ``s`` reads
    epoch ``s // steps_per_epoch`` from in-epoch step ``s % steps_per_epoch`` and sees the same
    batches, in the same order with the same crops, as an uninterrupted run. This needs the same
    data, batch size and process count; the loop warns when ``steps_per_epoch`` changed.

Layout: ``workdir/checkpoints/<step>`` (latest ``keep``), ``workdir/checkpoints_best/<step>`` (one,
only with evaluations during training), ``workdir/checkpoints_corrupt/<step>`` (set aside). The
workdir is an ``etils.epath`` path: a local folder or a bucket (``gs://...``, as on TPU pods).

Damaged checkpoints: a save killed mid-write leaves ``<step>.orbax-checkpoint-tmp``, which orbax
does not list (the previous step is the latest). A listed step that fails to read back (a file
truncated, deleted or flipped) is skipped with a warning and the next older one is restored; the
unreadable steps are then moved to ``checkpoints_corrupt/`` so new saves can reuse their step
numbers. When no step reads back, nothing is moved and the latest step's error is raised (a
config that no longer matches the checkpoints fails this way, loudly).
"""

from __future__ import annotations

import logging
import os

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from asl_jax.train.state import TrainState

logger = logging.getLogger(__name__)

ITEMS = ('state', 'meta')


def absolute_path(path: str | os.PathLike) -> epath.Path:
  """``path`` as an absolute epath: local paths against the working directory, URIs unchanged.

  Orbax needs absolute local paths; ``epath.Path.absolute()`` would also prefix the working
  directory to ``gs://bucket/x`` (which epath already counts as absolute), hence this check.
  """
  path = epath.Path(path)
  return path if path.is_absolute() else epath.Path(os.path.abspath(path))


def _manager(directory: epath.Path, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    preservation_policy=ocp.checkpoint_managers.LatestN(keep),
    create=True,
    enable_async_checkpointing=True,
  )
  return ocp.CheckpointManager(directory, options=options, item_names=ITEMS)


def _save_args(state: TrainState, meta: dict) -> ocp.args.Composite:
  return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))


class Checkpointer:
  """Keeps the latest ``keep`` checkpoints under ``workdir/checkpoints``; saves asynchronously."""

  def __init__(self, workdir: str | os.PathLike, *, keep: int = 3):
    self.workdir = absolute_path(workdir)
    self.directory = self.workdir / 'checkpoints'
    self.manager = _manager(self.directory, keep)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: TrainState, meta: dict, *, force: bool = False) -> None:
    self.manager.save(step, args=_save_args(state, meta), force=force)

  def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
    """Restores ``step`` (default: latest) into the target's structure, shapes and shardings."""
    step = self.latest_step() if step is None else step
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
    )
    logger.info('restored checkpoint at step %d', step)
    return restored['state'], restored['meta']

  def restore_latest_valid(self, abstract_state: TrainState) -> tuple[TrainState, dict] | None:
    """The newest checkpoint that reads back (None without any); see the module docstring."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    first_error = None
    for i, step in enumerate(steps):
      try:
        restored = self.restore(abstract_state, step)
      except Exception as e:  # Any failure to read it back makes the step unusable.
        first_error = first_error or e
        logger.warning(
          'checkpoint %s cannot be restored (%s: %s); trying an older one',
          self.directory / str(step),
          type(e).__name__,
          str(e).splitlines()[0][:300] if str(e) else '',
        )
        continue
      if i:
        self._set_aside(steps[:i])
        logger.warning(
          'resuming from step %d: newer unreadable step(s) %s were moved to %s',
          step,
          steps[:i],
          self.workdir / 'checkpoints_corrupt',
        )
      return restored
    if first_error is not None:
      raise RuntimeError(
        f'no checkpoint in {self.directory} (steps {steps}) could be restored; the latest '
        'failed as shown above (a config that no longer matches the checkpoints fails like this)'
      ) from first_error
    return None

  def _set_aside(self, steps: list[int]) -> None:
    """Moves unreadable steps out of orbax's sight (kept for inspection) and re-lists the rest."""
    if jax.process_index() == 0:
      corrupt = self.workdir / 'checkpoints_corrupt'
      corrupt.mkdir(exist_ok=True)
      for step in steps:
        target, n = corrupt / str(step), 1
        while target.exists():
          target, n = corrupt / f'{step}.{n}', n + 1
        (self.directory / str(step)).rename(target)
    multihost_utils.sync_global_devices('asl_jax_checkpoint_set_aside')
    self.manager.reload()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


class BestCheckpoint:
  """The best state by evaluation average mAP so far, alone under ``workdir/checkpoints_best``.

  A separate manager (not a BestN policy next to LatestN in one) so that the folder always holds
  exactly the selected step: ``predict --checkpoint=WORKDIR/checkpoints_best`` uses it as it is,
  and the latest-N rotation never interacts with it. Its ``meta`` records the step, the epoch,
  the score and the subset it was measured on. The subset must be a validation split, never the
  test split that is reported: selecting on the test split overstates the result.
  """

  def __init__(self, workdir: str | os.PathLike):
    self.directory = absolute_path(workdir) / 'checkpoints_best'
    self.manager = _manager(self.directory, 1)
    step = self.manager.latest_step()
    self._best = None
    if step is not None:
      restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      self._best = restored['meta']

  def best(self) -> dict | None:
    """The ``meta`` of the kept checkpoint (``step``, ``average_mAP``, ...), or None."""
    return self._best

  def offer(self, step: int, state: TrainState, meta: dict) -> bool:
    """Saves ``state`` when ``meta['average_mAP']`` beats the kept one; returns whether it did."""
    if self._best is not None and meta['average_mAP'] <= self._best['average_mAP']:
      return False
    self.manager.wait_until_finished()
    if step in self.manager.all_steps():  # Re-evaluated after a resume, and now better.
      self.manager.delete(step)
    self.manager.save(step, args=_save_args(state, meta), force=True)
    self._best = dict(meta)
    return True

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
