"""The non-finite guard: finds the first step with a NaN/inf loss or gradient, at low cost."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np


class NonFiniteLossError(FloatingPointError):
  """Raised when the loss is NaN/inf; nothing is checkpointed from that state."""


class FiniteGuard:
  """Holds the device-side metrics of every unchecked step; :meth:`check` inspects them at once.

  Checking each step would block the host on the device every step (no more dispatching ahead).
  Instead the loop calls :meth:`check` where it syncs anyway (log steps) and wherever a state is
  about to leave the device (checkpoints, evaluations, the end): one transfer of the pending
  steps' ``loss`` and ``grad_norm`` scalars. The error still names the exact first bad step, its
  loss terms and its videos, because each step's metrics and video ids are kept until checked.
  """

  def __init__(self):
    self._pending: list[tuple[int, dict, Sequence[str] | None]] = []

  @property
  def num_pending(self) -> int:
    return len(self._pending)

  def record(self, step: int, metrics: dict, video_ids: Sequence[str] | None = None) -> None:
    """Remembers ``step``'s (device) metrics and the ids of its videos (this process's rows)."""
    self._pending.append((step, metrics, video_ids))

  def check(self) -> None:
    """Raises :class:`NonFiniteLossError` for the first pending step whose loss or gradient is
    NaN/inf; otherwise forgets the pending steps."""
    if not self._pending:
      return
    watched = jax.device_get([(m['loss'], m['grad_norm']) for _, m, _ in self._pending])
    for (step, metrics, video_ids), values in zip(self._pending, watched, strict=True):
      if all(math.isfinite(float(v)) for v in values):
        continue
      first, last = self._pending[0][0], self._pending[-1][0]
      terms = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
      self._pending.clear()
      raise NonFiniteLossError(
        f'non-finite loss or gradient at step {step} (steps {first}..{last} were checked '
        f'together): {_format(terms)}; videos of that batch on this process: '
        f'{list(video_ids) if video_ids is not None else "unknown"}. Nothing from step {step} '
        'on was checkpointed; the latest checkpoint precedes it.'
      )
    self._pending.clear()


def _format(terms: dict) -> str:
  return ', '.join(f'{k}={v:.6g}' for k, v in terms.items())
