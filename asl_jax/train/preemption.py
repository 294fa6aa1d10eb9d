"""Preemption as one job: every process stops at the same step; a lost peer ends the run in time.

* :func:`initialize_distributed` starts JAX's distributed runtime (what ``--distributed`` does)
  with its health checks tied to ``train.peer_timeout_s`` and starts a :class:`PeerWatchdog`.
* :class:`StopAgreement` answers, once per training step, "do all processes stop here?". With
  several processes it is JAX's preemption sync point: the runtime catches SIGTERM on any host,
  the coordination service picks the step after the largest one any process has reached, and
  every process returns True at that same step, so all of them save the same checkpoint. With one
  process it is a SIGTERM flag checked at the next step.
* :class:`PeerWatchdog`: each process bumps a counter in the coordination service's key-value
  store every second and watches the others'. A peer whose counter has not moved for
  ``peer_timeout_s`` (killed with -9, its host gone) or a coordinator that stops answering ends
  this process with :data:`asl_jax.errors.EXIT_PREEMPTED` and one line saying so, whatever the
  main thread is blocked in (a collective with a dead peer never returns on TPU). The relaunch
  resumes from the last complete checkpoint (:mod:`asl_jax.train.checkpoint`).

See docs/design.md ("Preemption and lost peers") for why JAX's sync point rather than orbax's.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time

import jax
from jax.experimental import multihost_utils

from asl_jax import errors

logger = logging.getLogger(__name__)

# Key-value store folder of the heartbeats: one key per process, a counter or DONE.
_HEARTBEAT_DIR = 'asl_jax/heartbeat/'
_DONE = 'done'
# JAX's own health check aborts a process (status 134) when a peer misses heartbeats this much
# longer than ours: the watchdog speaks first, with a message and EXIT_PREEMPTED.
_JAX_HEARTBEAT_FACTOR, _JAX_HEARTBEAT_MARGIN_S = 2, 10


def _client():
  from jax._src import distributed  # The runtime's client: key-value store and barriers.

  return distributed.global_state.client


def initialize_distributed(
  *,
  peer_timeout_s: float,
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> PeerWatchdog | None:
  """``jax.distributed.initialize`` (before any computation) and a watchdog on the peers.

  Unset arguments are taken from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` when set (any scheduler can export them), else detected on Cloud TPU, Slurm
  and Open MPI. Returns the running watchdog (None for a one-process runtime).
  """
  env = os.environ
  if num_processes is None and env.get('JAX_NUM_PROCESSES'):
    num_processes = int(env['JAX_NUM_PROCESSES'])
  if process_id is None and env.get('JAX_PROCESS_ID'):
    process_id = int(env['JAX_PROCESS_ID'])
  jax.distributed.initialize(
    coordinator_address=coordinator_address or env.get('JAX_COORDINATOR_ADDRESS'),
    num_processes=num_processes,
    process_id=process_id,
    heartbeat_timeout_seconds=int(_JAX_HEARTBEAT_FACTOR * peer_timeout_s + _JAX_HEARTBEAT_MARGIN_S),
  )
  if jax.process_count() == 1:
    return None
  watchdog = PeerWatchdog(peer_timeout_s)
  watchdog.start()
  return watchdog


def is_multiprocess_runtime() -> bool:
  """Whether JAX's distributed runtime (and with it the preemption sync point) is running."""
  return _client() is not None and jax.process_count() > 1


@contextlib.contextmanager
def peer_loss_explains_failures(watchdog: PeerWatchdog | None):
  """A runtime error with a live watchdog waits for its verdict before it is reported.

  On CPU and GPU a collective whose peer was killed fails at once (``connection reset by peer``)
  while the watchdog needs ``peer_timeout_s`` to call the peer lost: waiting turns that traceback
  into the one-line peer-lost message and status 75. Other errors are reported at once.
  """
  try:
    yield
  except jax.errors.JaxRuntimeError:
    if watchdog is not None and watchdog.is_alive():
      logger.warning(
        'a runtime error in a multi-process run: waiting up to %g s to see whether a peer was lost',
        watchdog.peer_timeout_s,
      )
      watchdog.join(watchdog.peer_timeout_s + 5 * watchdog.interval_s)
    raise


class StopAgreement:
  """``reached(step)``: True at the one step where every process stops (after a SIGTERM).

  With one process it installs a SIGTERM handler (:meth:`close` restores the previous one). With
  several, JAX's runtime already owns SIGTERM: a Python handler would replace it and the other
  processes would never hear of the notice.
  """

  def __init__(self):
    self.multiprocess = is_multiprocess_runtime()
    self._requested = False
    self._previous = None
    if not self.multiprocess:
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, *_) -> None:
    self._requested = True

  def reached(self, step: int) -> bool:
    """Call once per step on every process, with the step just completed."""
    if self.multiprocess:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested

  @staticmethod
  def preempted(step: int) -> errors.Preempted:
    """The exception that ends the run once ``step`` is saved (exit status 75)."""
    return errors.Preempted(
      f'SIGTERM: every process saved step {step}; relaunch the same command to resume'
    )


class PeerWatchdog(threading.Thread):
  """Ends this process (status 75) when a peer stops answering for ``peer_timeout_s``."""

  def __init__(
    self,
    peer_timeout_s: float,
    *,
    client=None,
    process_index: int | None = None,
    process_count: int | None = None,
    exit_fn=os._exit,
  ):
    """``client``, the process numbers and ``exit_fn`` default to the running runtime's."""
    super().__init__(name='asl_jax-peer-watchdog', daemon=True)
    self.peer_timeout_s = float(peer_timeout_s)
    self.interval_s = min(1.0, self.peer_timeout_s / 10)
    self.client = _client() if client is None else client
    self.process_index = jax.process_index() if process_index is None else process_index
    self.process_count = jax.process_count() if process_count is None else process_count
    self._stopped = threading.Event()
    self._finished = threading.Event()
    self._exit = exit_fn
    atexit.register(self.finish)  # Runs before JAX's own shutdown (registered at its import).

  def finish(self) -> None:
    """This process is ending on its own: peers stop watching it.

    The watchdog keeps watching the others: exiting waits in JAX's shutdown barrier, which a dead
    peer would hold for minutes. Only a coordinator that goes away is no longer news then.
    """
    if self._finished.is_set():
      return
    self._finished.set()
    try:
      self.client.key_value_set(self._key(self.process_index), _DONE, allow_overwrite=True)
    except Exception:  # The coordinator may be gone already; nothing to tell then.
      pass

  def _key(self, process: int) -> str:
    return f'{_HEARTBEAT_DIR}{process}'

  def run(self) -> None:
    beats, last_value, last_change = 0, {}, {}
    while not self._stopped.wait(self.interval_s):
      now = time.monotonic()
      try:
        beats += 1
        if not self._finished.is_set():
          self.client.key_value_set(self._key(self.process_index), str(beats), allow_overwrite=True)
        values = dict(self.client.key_value_dir_get(_HEARTBEAT_DIR))
      except Exception as exc:  # The coordinator (process 0) is gone or unreachable.
        if not self._finished.is_set():
          self._lost(f'the coordinator stopped answering ({type(exc).__name__}: {exc})'[:300])
        return
      for process in range(self.process_count):
        if process == self.process_index:
          continue
        value = values.get(self._key(process))
        if value == _DONE:
          last_change[process] = None
          continue
        if process not in last_change or value != last_value.get(process):
          last_value[process], last_change[process] = value, now
        elif last_change[process] is not None and now - last_change[process] > self.peer_timeout_s:
          self._lost(f'process {process} sent no heartbeat for {self.peer_timeout_s:g} s')
          return

  def _lost(self, what: str) -> None:
    if self._stopped.is_set():
      return
    self._stopped.set()
    message = (
      f'peer lost: {what} (killed, or its host went away); process {self.process_index} stops '
      f'with status {errors.EXIT_PREEMPTED}. Relaunch the same command on every host: it resumes '
      'from the last complete checkpoint (train.peer_timeout_s sets this wait)'
    )
    logger.error(message)
    print(f'preempted: {message}', file=sys.stderr, flush=True)
    self._exit(errors.EXIT_PREEMPTED)
