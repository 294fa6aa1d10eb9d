"""EpochPrefetcher: the same batches in the same order as the epochs give them, across epochs."""

import threading

import pytest

from asl_jax.data import prefetch


class Batches:
  """``epoch(e, start_step)`` yields ``{'epoch': e, 'step': s}`` for s in start_step..steps-1."""

  def __init__(self, steps: int, fail_at: tuple[int, int] | None = None):
    self.steps, self.fail_at = steps, fail_at
    self.threads = set()

  def epoch(self, epoch, start_step=0):
    for step in range(start_step, self.steps):
      self.threads.add(threading.current_thread().name)
      if (epoch, step) == self.fail_at:
        raise ValueError(f'bad video in epoch {epoch} step {step}')
      yield {'epoch': epoch, 'step': step}


def collect(stream, epochs):
  return [(b['epoch'], b['step']) for e in epochs for b in stream.epoch(e)]


@pytest.mark.parametrize('depth', [0, 1, 3])
def test_same_batches_in_order_resuming_mid_epoch(depth):
  source = Batches(steps=4)
  stream = prefetch.EpochPrefetcher(source, first_epoch=2, end_epoch=5, start_step=3, depth=depth)
  got = collect(stream, range(2, 5))
  stream.close()
  assert got == [(2, 3)] + [(e, s) for e in (3, 4) for s in range(4)]
  assert (source.threads == {'batch-prefetch'}) == (depth > 0)  # Built in the thread or inline.


def test_next_epoch_is_built_before_it_is_asked_for():
  source = Batches(steps=2)
  stream = prefetch.EpochPrefetcher(source, first_epoch=0, end_epoch=2, start_step=0, depth=2)
  assert collect(stream, [0]) == [(0, 0), (0, 1)]
  # The producer runs on past the boundary: epoch 1's batches are (or will be) queued already.
  stream._thread.join(timeout=10)  # Ends once everything is queued (2 slots + the end marker).
  assert not stream._queue.empty()
  assert collect(stream, [1]) == [(1, 0), (1, 1)]
  stream.close()


def test_producer_error_is_raised_where_the_batch_was_wanted():
  stream = prefetch.EpochPrefetcher(
    Batches(steps=3, fail_at=(1, 1)), first_epoch=0, end_epoch=3, start_step=0, depth=2
  )
  assert collect(stream, [0]) == [(0, 0), (0, 1), (0, 2)]
  got = []
  with pytest.raises(ValueError, match='epoch 1 step 1'):
    for batch in stream.epoch(1):
      got.append(batch['step'])
  assert got == [0]
  stream.close()


def test_close_stops_the_thread_early():
  stream = prefetch.EpochPrefetcher(
    Batches(steps=1000), first_epoch=0, end_epoch=1000, start_step=0, depth=2
  )
  next(iter(stream.epoch(0)))
  stream.close()
  assert not stream._thread.is_alive()
