"""Training batches built ahead in a background thread, running on across epoch boundaries.

Without it the loop builds each batch (window crop, padding, copies) on the host between two
step dispatches, and at an epoch boundary the next epoch's first batch only starts after the
epoch's last step. :class:`EpochPrefetcher` keeps up to ``depth`` batches ready, in the same
order as ``batches.epoch(e)`` gives them, and records how long the loop waited for one
(``wait_s``: the input's share of the wall time, reported in bench/RESULTS.md).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

_END = object()  # Marks the end of an epoch in the queue.


class EpochPrefetcher:
  """Batches of epochs ``first_epoch .. end_epoch - 1`` from ``batches.epoch(e, start_step)``.

  ``epoch(e)`` must be called for each epoch in order and iterated to its end (the loop does);
  ``close()`` stops the thread early (preemption, an error). ``depth = 0`` builds each batch on
  demand in the caller's thread, as without a prefetcher. An exception in the producer is raised
  in the caller at the batch where it happened.
  """

  def __init__(
    self, batches: Any, *, first_epoch: int, end_epoch: int, start_step: int, depth: int
  ):
    self.batches, self.depth = batches, depth
    self.first_epoch, self.end_epoch, self.start_step = first_epoch, end_epoch, start_step
    self.wait_s = 0.0  # Time the caller spent waiting for (or, with depth 0, building) batches.
    self._stop = threading.Event()
    self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    self._thread = None
    if depth > 0 and first_epoch < end_epoch:
      self._thread = threading.Thread(target=self._produce, name='batch-prefetch', daemon=True)
      self._thread.start()

  def _epoch_batches(self, epoch: int) -> Iterator[dict]:
    start = self.start_step if epoch == self.first_epoch else 0
    return self.batches.epoch(epoch, start_step=start)

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _produce(self) -> None:
    try:
      for epoch in range(self.first_epoch, self.end_epoch):
        for batch in self._epoch_batches(epoch):
          if not self._put((epoch, batch)):
            return
        if not self._put((epoch, _END)):
          return
    except BaseException as exc:  # Handed to the caller, raised where the batch was wanted.
      self._put((None, exc))

  def epoch(self, epoch: int) -> Iterator[dict]:
    """The batches of ``epoch`` (the next one in order)."""
    if self._thread is None:
      iterator = self._epoch_batches(epoch)
      while True:
        t0 = time.perf_counter()
        batch = next(iterator, _END)
        self.wait_s += time.perf_counter() - t0
        if batch is _END:
          return
        yield batch
    while True:
      t0 = time.perf_counter()
      got, item = self._queue.get()
      self.wait_s += time.perf_counter() - t0
      if isinstance(item, BaseException):
        raise item
      if got != epoch:
        raise RuntimeError(f'prefetcher: asked for epoch {epoch}, the next batch is of {got}')
      if item is _END:
        return
      yield item

  def close(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)
