r"""asl-train: flags -> config -> ``train_and_evaluate``; nothing else.

  asl-train --config=demo.py --workdir=workdirs/demo [--config.train.batch_size=16] \
      [--config.debug=True] [--mode=eval [--step=N]]
  (python -m asl_jax.main and python -m asl_jax.cli.train take the same flags)

``--workdir`` may be a bucket (``gs://...``). ``--config.debug=True`` shrinks the run and runs it
eagerly with NaN checks (:mod:`asl_jax.debug`); other ``--config.*`` overrides keep their values.
Exit statuses: :mod:`asl_jax.errors` (0 finished, 1 error, 2 usage, 75 preempted or a peer
process lost: relaunch the same command to resume; README "TPU pods").
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_CONFIG = cli_flags.define_config()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
_MODE = flags.DEFINE_enum(
  'mode', 'train', ['train', 'eval'], 'train (resumes if workdir has a checkpoint) or eval.'
)
_STEP = flags.DEFINE_integer(
  'step',
  None,
  'With --mode=eval: the checkpoint step to score (default: the newest; a damaged one is an '
  'error, never skipped). metrics.json records the step scored.',
  lower_bound=0,
)
_DISTRIBUTED = flags.DEFINE_bool(
  'distributed',
  False,
  'Start the JAX distributed runtime first: one process per host, needed whenever there are '
  'several hosts. Cloud TPU, Slurm and Open MPI are detected; elsewhere pass '
  '--coordinator_address, --num_processes and --process_id (which imply it).',
)
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes in all.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.train import preemption  # Imports jax; computes nothing.

  config, watchdog = _CONFIG.value, None
  if _DISTRIBUTED.value or _COORDINATOR.value:  # Before any computation: no backend exists yet.
    from asl_jax import configuration

    configuration.validate_config(config)  # train.peer_timeout_s is used right away.
    watchdog = preemption.initialize_distributed(
      peer_timeout_s=config.train.peer_timeout_s,
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
    )
  from asl_jax import debug

  if config.debug:  # After the overrides are parsed (into config) and the devices exist.
    overrides = config_flags.get_override_values(flags.FLAGS['config'])
    debug.apply_debug_mode(config, keep=overrides)
  from asl_jax.train import loop  # Imported after flag parsing: keeps --help fast.

  with debug.nan_checks(), preemption.peer_loss_explains_failures(watchdog):
    loop.train_and_evaluate(
      config, _WORKDIR.value, train=_MODE.value == 'train', eval_step=_STEP.value
    )


def run() -> None:
  common.run(main, hugepages=True)


if __name__ == '__main__':
  run()
