"""Resuming: after SIGTERM or SIGKILL a rerun ends bit for bit where an uninterrupted run ends.

All runs share ``helpers.resume_config``: 3 epochs of 2 steps, a checkpoint every 2 steps. The
uninterrupted reference run also evaluates every epoch (best checkpoint) and counts its traces.
"""

import json
import os
import signal
import types

import numpy as np
import pytest

from asl_jax import errors
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import loop
from asl_jax.train import step as step_lib
from tests.train import helpers

TOTAL_STEPS = 6


@pytest.fixture(scope='module')
def killed(tiny_root, tmp_path_factory):
  """A run SIGKILLed before step 5, started first so that it runs beside the reference run."""
  folder = tmp_path_factory.mktemp('killed')
  workdir, log = folder / 'workdir', folder / 'killed_run.log'
  process = helpers.run_module(
    'tests.train.killed_run',
    '--root', str(tiny_root), '--workdir', str(workdir), '--kill_at_step', '5',
    log=log,
  )  # fmt: skip
  yield types.SimpleNamespace(workdir=workdir, process=process, log=log)
  if process.poll() is None:
    process.kill()
    process.wait()


@pytest.fixture(scope='module')
def reference(killed, tiny_root, tmp_path_factory):
  """The uninterrupted run, with every trace of the train step and every batch recorded."""
  workdir = tmp_path_factory.mktemp('reference')
  config = helpers.resume_config(tiny_root)
  config.train.eval_every_epochs = 1
  traces = []
  with pytest.MonkeyPatch.context() as mp:
    real = step_lib.make_train_step

    def counting_make_train_step(*args, **kwargs):
      train_step = real(*args, **kwargs)

      def traced(state, batch):  # Runs once per trace, never per executed step.
        traces.append({k: (v.shape, v.dtype) for k, v in batch.items()})
        return train_step(state, batch)

      return traced

    mp.setattr(step_lib, 'make_train_step', counting_make_train_step)
    tap = helpers.BatchTap().install(mp)
    result = loop.train_and_evaluate(config, str(workdir))
  return types.SimpleNamespace(workdir=workdir, result=result, traces=traces, seen=tap.seen)


def test_train_step_is_traced_once_across_steps_and_epochs(reference):
  assert reference.result['step'] == TOTAL_STEPS
  assert [s for s, _, _ in reference.seen] == list(range(1, TOTAL_STEPS + 1))  # Three epochs.
  assert len(reference.traces) == 1, reference.traces
  assert 'video_id' not in reference.traces[0]  # Host-side ids never reach the device.


def test_best_checkpoint_by_validation_map(reference):
  logged = [
    json.loads(line) for line in (reference.workdir / 'metrics.jsonl').read_text().splitlines()
  ]
  evals = [(r['step'], r['eval/average_mAP']) for r in logged if 'eval/average_mAP' in r]
  assert [s for s, _ in evals] == [2, 4, 6]  # Every epoch.
  best_step, best_map = max(evals, key=lambda e: (e[1], -e[0]))  # Ties: the earliest.
  best = json.loads((reference.workdir / 'metrics.json').read_text())['best']
  assert best['step'] == best_step and best['average_mAP'] == pytest.approx(best_map)
  assert best['eval_subset'] == 'validation'
  assert helpers.checkpoint_steps(reference.workdir, 'checkpoints_best') == [best_step]
  assert helpers.checkpoint_steps(reference.workdir) == [4, 6]  # Latest 2, independently.
  assert best['checkpoint'].endswith(f'checkpoints_best/{best_step}')
  # predict / export take the folder as it is: its only step is the best one.
  best_dir = reference.workdir / 'checkpoints_best'
  assert checkpoint_lib.step_dirs(checkpoint_lib.resolve_checkpoint(best_dir)[0]) == [best_step]


def assert_same_final_state(workdir, reference):
  want = helpers.restore_state(reference.workdir, TOTAL_STEPS)
  got = helpers.restore_state(workdir, TOTAL_STEPS)
  assert sorted(got) == sorted(want)
  for name in want:
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)  # Bitwise.


def test_sigterm_saves_and_the_rerun_matches_the_uninterrupted_run(
  reference, tiny_root, tmp_path, monkeypatch
):
  workdir = tmp_path / 'workdir'
  config = helpers.resume_config(tiny_root)
  config.train.eval_every_epochs = 1

  def sigterm(step, batch):
    if step == 3:  # Mid-epoch: epoch 1 is steps 3 and 4.
      os.kill(os.getpid(), signal.SIGTERM)

  first = helpers.BatchTap(sigterm).install(monkeypatch)
  handler = signal.getsignal(signal.SIGTERM)
  with pytest.raises(errors.Preempted, match='saved step 3;'):
    loop.train_and_evaluate(config, str(workdir))
  assert helpers.checkpoint_steps(workdir) == [2, 3]
  assert signal.getsignal(signal.SIGTERM) is handler  # The loop's own handler is gone.

  second = helpers.BatchTap().install(monkeypatch)
  result = loop.train_and_evaluate(config, str(workdir))
  assert result['step'] == TOTAL_STEPS
  # Same batches, same crops, same order: the data position follows from the step.
  assert first.seen + second.seen == reference.seen
  assert_same_final_state(workdir, reference)
  assert result['best'] == dict(reference.result['best'], checkpoint=result['best']['checkpoint'])
  assert result['ema']['average_mAP'] == reference.result['ema']['average_mAP']


def test_sigkill_resumes_from_the_last_periodic_save(reference, killed, tiny_root, monkeypatch):
  workdir = killed.workdir
  killed.process.wait(timeout=600)
  assert killed.process.returncode == -signal.SIGKILL, helpers.tail(killed.log)
  # Steps 1-4 ran; the save of step 4 was in flight, or complete, when the process died.
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  resume_from = checkpointer.latest_step()
  checkpointer.close()
  assert resume_from in (2, 4)

  tap = helpers.BatchTap().install(monkeypatch)
  result = loop.train_and_evaluate(helpers.resume_config(tiny_root), str(workdir))
  assert result['step'] == TOTAL_STEPS
  assert tap.seen == reference.seen[resume_from:]
  assert_same_final_state(workdir, reference)
