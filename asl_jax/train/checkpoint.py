"""Orbax checkpoints of the train state plus a small JSON of loop metadata (epoch, data offset)."""

from __future__ import annotations

import logging
import pathlib

import jax
import orbax.checkpoint as ocp

from asl_jax.train.state import TrainState

logger = logging.getLogger(__name__)


class Checkpointer:
  """Keeps the latest ``keep`` checkpoints under ``workdir/checkpoints``; saves asynchronously."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3):
    directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.LatestN(keep),
      create=True,
      enable_async_checkpointing=True,
    )
    self.manager = ocp.CheckpointManager(directory, options=options, item_names=('state', 'meta'))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: TrainState, meta: dict, *, force: bool = False) -> None:
    self.manager.save(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=force,
    )

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

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
