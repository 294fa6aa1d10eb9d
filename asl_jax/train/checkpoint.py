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

This module is the one place that knows that layout: training (:class:`Checkpointer`), evaluation
(:meth:`Checkpointer.restore_step`) and the commands that read weights (``predict``, ``export``,
``visualize``: :func:`restore_params`) all resolve and restore through it.

Damaged checkpoints: a save killed mid-write leaves ``<step>.orbax-checkpoint-tmp``, which orbax
does not list (the previous step is the latest). A listed step that fails to read back (a file
truncated, deleted or flipped) is skipped with a warning naming its damaged files and the next
older one is restored. Training then moves the unreadable steps to ``checkpoints_corrupt/`` so new
saves can reuse their step numbers; ``predict``/``export``/``visualize`` fall back the same way but
change nothing; evaluation never falls back (it scores the step asked for, or fails naming the
damaged files). When no step reads back, nothing is moved and :class:`DamagedCheckpointError`
names each step's damaged files. A checkpoint whose parameter shapes differ from the model the
config builds is not damage: :class:`CheckpointMismatchError` lists the differing parameters and
nothing falls back.

A background (asynchronous) save that fails, e.g. on a full disk, is reported by
:meth:`Checkpointer.raise_if_save_failed`, which training calls after every step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from asl_jax.configuration import ConfigError
from asl_jax.errors import UserError
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


class DamagedCheckpointError(UserError):
  """No requested checkpoint step reads back; the message names each step's damaged files."""


class CheckpointMismatchError(ConfigError):
  """The checkpoint holds another model than the config builds (parameter names or shapes)."""

  def __init__(self, message: str, differences: tuple[str, ...] = ()):
    super().__init__(message)
    self.differences = differences  # 'name: checkpoint (shape), config (shape)', sorted.


class CheckpointSaveError(RuntimeError):
  """A background save failed (e.g. a full disk); the previous checkpoint is intact."""


def step_dirs(directory: epath.Path) -> list[int]:
  """The finished steps under a ``checkpoints`` folder, ascending (``<step>/state`` present)."""
  if not directory.is_dir():
    return []
  return sorted(
    int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / 'state').is_dir()
  )


def resolve_checkpoint(path: str | os.PathLike) -> tuple[epath.Path, int | None]:
  """A workdir, its ``checkpoints`` folder or one step's folder -> (checkpoints folder, step).

  ``step`` is the step folder's number when one was named, else None (the caller takes the
  newest that reads back). Local folders and buckets (``gs://...``) alike.
  """
  path = absolute_path(path)
  if not path.is_dir():
    raise FileNotFoundError(f'checkpoint {path} is not a directory')
  if path.name.isdigit() and (path / 'state').is_dir():
    return path.parent, int(path.name)
  directory = path / 'checkpoints' if (path / 'checkpoints').is_dir() else path
  if not step_dirs(directory):
    raise FileNotFoundError(
      f'no checkpoint under {path}: expected a workdir, its checkpoints/ folder or a step folder'
    )
  return directory, None


_PATH_IN_MESSAGE = re.compile(r'[\'"]?(/[^\s\'"\\,;:]+)')


def describe_damage(step_dir: epath.Path, error: BaseException) -> str:
  """The damaged or missing files of one step, relative to it, for a one-line message."""
  missing = [
    name
    for name in ('_CHECKPOINT_METADATA', 'state', 'state/_METADATA', 'meta')
    if not (step_dir / name).exists()
  ]
  if 'state' in missing:
    missing.remove('state/_METADATA')
  named = []
  prefix = str(step_dir).rstrip('/') + '/'
  for match in _PATH_IN_MESSAGE.finditer(str(error)):
    found = match.group(1)
    if found.startswith(prefix):
      relative = found[len(prefix) :].rstrip('/')
      if relative and relative not in named + missing and relative not in ('state', 'meta'):
        named.append(relative)
  parts = [f'{m} missing' for m in missing] + [f'{n} unreadable' for n in named[:3]]
  if not parts:
    first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ''
    parts = [f'{type(error).__name__}: {first_line}' if first_line else type(error).__name__]
  return ', '.join(parts)


def _saved_shapes(step_dir: epath.Path, key: str) -> dict[tuple[str, ...], tuple[int, ...]] | None:
  """Global shapes of the ``state.<key>`` leaves, from the step's array metadata (None: unread).

  Not the ``write_shape`` of ``state/_METADATA``: a save by several processes writes each
  replicated array in slices, one per process, and records the slice's shape there.
  """
  try:
    tree = ocp.StandardCheckpointHandler().metadata(step_dir / 'state')[key]
  except Exception:  # Damaged or missing metadata: reading the step will fail and say so.
    return None
  return _template_shapes(tree)


def _template_shapes(template) -> dict[tuple[str, ...], tuple[int, ...]]:
  shapes = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(template):
    names = tuple(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in path)
    shapes[names] = tuple(leaf.shape)
  return shapes


def check_same_model(step_dir: epath.Path, template, key: str = 'params') -> None:
  """Raises :class:`CheckpointMismatchError` when ``state.<key>`` differs from ``template``.

  Reads only the step's tree metadata; unreadable metadata is left to the restore to report.
  """
  got = _saved_shapes(step_dir, key)
  if got is None or not got:
    return
  want = _template_shapes(template)
  if got == want:
    return
  diff = sorted(
    f'{"/".join(k)}: checkpoint {got.get(k, "missing")}, config {want.get(k, "missing")}'
    for k in set(got) | set(want)
    if got.get(k) != want.get(k)
  )
  raise CheckpointMismatchError(
    f'checkpoint {step_dir} does not match the model the config builds ({len(diff)} parameters '
    'differ; was it trained with another config?):\n  ' + '\n  '.join(diff[:10]),
    tuple(diff),
  )


def _damaged_error(directory: epath.Path, failures: dict[int, str], hint: str = '') -> str:
  which = '; '.join(f'step {s}: {why}' for s, why in failures.items())
  return f'checkpoint in {directory} cannot be read ({which})' + (f'; {hint}' if hint else '')


@contextlib.contextmanager
def _reader(directory: epath.Path):
  """A reading manager (a fresh one per attempt: a failed restore can leave it unusable)."""
  manager = ocp.CheckpointManager(
    directory,
    item_handlers={'state': ocp.PyTreeCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()},
    options=ocp.CheckpointManagerOptions(create=False),
  )
  try:
    yield manager
  finally:
    manager.close()


def _restore_params_at(directory: epath.Path, step: int, template, key: str):
  """``state.<key>`` of one step laid out as ``template`` on the default device."""
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = {
    key: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), template)
  }
  args = ocp.args.PyTreeRestore(
    item=abstract,
    restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
    partial_restore=True,
  )
  try:
    with _reader(directory) as manager:
      return manager.restore(step, args=ocp.args.Composite(state=args))['state'][key]
  except Exception as e:  # noqa: BLE001 - a layout the partial read rejects: read it as saved.
    logger.debug('partial restore of %s/%d failed (%s); reading it as saved', directory, step, e)
  with _reader(directory) as manager, warnings.catch_warnings():
    # As saved, on the default device: orbax's note that it reads the saved sharding is expected.
    warnings.filterwarnings('ignore', message='Sharding info not provided', category=UserWarning)
    raw = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))
  return raw['state'][key]


def restore_params(
  checkpoint: str | os.PathLike,
  template,
  *,
  use_raw_weights: bool = False,
  step: int | None = None,
) -> tuple[object, epath.Path, int]:
  """The EMA (or raw) parameters of a training checkpoint: ``(params, checkpoints folder, step)``.

  ``checkpoint`` is a workdir, its ``checkpoints`` folder or one step's folder. A step folder or
  ``step`` is restored exactly (no fallback). Otherwise the newest step that reads back is used:
  a damaged newer one is skipped with a warning, as training does, and nothing is moved. A
  parameter tree that differs from ``template`` (``jax.eval_shape`` of ``model.init``) raises
  :class:`CheckpointMismatchError`; no readable step raises :class:`DamagedCheckpointError`.
  """
  directory, named_step = resolve_checkpoint(checkpoint)
  key = 'params' if use_raw_weights else 'ema_params'
  exact = named_step if step is None else step
  steps = step_dirs(directory)
  if exact is not None:
    if exact not in steps:
      raise FileNotFoundError(f'no checkpoint step {exact} in {directory} (steps: {steps})')
    candidates = [exact]
  else:
    candidates = sorted(steps, reverse=True)
  failures = {}
  for s in candidates:
    check_same_model(directory / str(s), template, key)
    try:
      if not (directory / str(s) / 'state' / '_METADATA').is_file():  # Nor could training.
        raise FileNotFoundError(f'{directory / str(s)}/state/_METADATA does not exist')
      params = _restore_params_at(directory, s, template, key)
    except Exception as e:  # noqa: BLE001 - any failure to read it back makes the step unusable.
      failures[s] = describe_damage(directory / str(s), e)
      if exact is None:
        logger.warning(
          'checkpoint %s cannot be restored (%s); trying an older one',
          directory / str(s),
          failures[s],
        )
      continue
    got, want = _template_shapes(params), _template_shapes(template)
    if got != want:  # Read as saved: the tree itself must still match.
      check_same_model(directory / str(s), template, key)
      raise CheckpointMismatchError(f'checkpoint {directory / str(s)}: {key} differ from the model')
    if failures:
      logger.warning(
        'using checkpoint step %d: newer step(s) %s cannot be read (left in place)',
        s,
        sorted(failures),
      )
    logger.info('restored %s from %s', key, directory / str(s))
    return jax.tree.map(jax.numpy.asarray, params), directory, s
  hint = '' if exact is None else 'pass another step folder to use an older checkpoint'
  raise DamagedCheckpointError(_damaged_error(directory, failures, hint))


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
    self._unconfirmed: int | None = None  # A step whose background save has not been checked.
    self._confirmed: int | None = self.manager.latest_step()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: TrainState, meta: dict, *, force: bool = False) -> None:
    self.raise_if_save_failed(wait=True)
    if self.manager.save(step, args=_save_args(state, meta), force=force):
      self._unconfirmed = step

  def raise_if_save_failed(self, *, wait: bool = False) -> None:
    """Raises :class:`CheckpointSaveError` once the last background save has failed.

    Cheap while that save is still running (returns at once unless ``wait``); training calls it
    after every step, so a failure (a full disk) stops the run at the next step, not the next save.
    """
    step = self._unconfirmed
    if step is None or (not wait and self.manager.is_saving_in_progress()):
      return
    self._unconfirmed = None
    try:
      self.manager.wait_until_finished()
      self.manager.check_for_errors()
    except Exception as e:
      last = self._confirmed
      raise CheckpointSaveError(
        f'saving checkpoint step {step} to {self.directory} failed ({type(e).__name__}: '
        f'{str(e).strip().splitlines()[0][:200] if str(e).strip() else ""}); '
        + (
          f'the last good checkpoint is step {last}: free space or fix the folder, then rerun to '
          'resume from it'
          if last is not None
          else 'no earlier checkpoint exists'
        )
      ) from e
    self._confirmed = step

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

  def restore_step(self, abstract_state: TrainState, step: int | None = None):
    """Exactly ``step`` (default: the newest), for evaluation: no fallback, nothing moved.

    Raises :class:`DamagedCheckpointError` naming the damaged files (and the steps that could be
    scored instead), :class:`CheckpointMismatchError` for another model, FileNotFoundError for a
    step that does not exist.
    """
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    step = steps[-1] if step is None else step
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint step {step} in {self.directory} (steps: {steps})')
    check_same_model(self.directory / str(step), abstract_state.params)
    try:
      return self.restore(abstract_state, step)
    except Exception as e:  # Any failure to read it back: report the files, change nothing.
      others = [s for s in steps if s != step]
      hint = (
        f'nothing was changed; pass --step=N to score another checkpoint (steps: {others})'
        if others
        else 'nothing was changed'
      )
      raise DamagedCheckpointError(
        _damaged_error(self.directory, {step: describe_damage(self.directory / str(step), e)}, hint)
      ) from e

  def restore_latest_valid(self, abstract_state: TrainState) -> tuple[TrainState, dict] | None:
    """The newest checkpoint that reads back (None without any); see the module docstring."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    failures = {}
    for i, step in enumerate(steps):
      check_same_model(self.directory / str(step), abstract_state.params)
      try:
        restored = self.restore(abstract_state, step)
      except Exception as e:  # Any failure to read it back makes the step unusable.
        failures[step] = describe_damage(self.directory / str(step), e)
        logger.warning(
          'checkpoint %s cannot be restored (%s); trying an older one',
          self.directory / str(step),
          failures[step],
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
      self._confirmed = step
      return restored
    if failures:
      raise DamagedCheckpointError(_damaged_error(self.directory, failures, 'nothing was moved'))
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
    """Waits for the last save; its failure is raised (as :class:`CheckpointSaveError`)."""
    try:
      self.raise_if_save_failed(wait=True)
    finally:
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
