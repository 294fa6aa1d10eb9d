"""Input overlap: how much of the training loop's wall time waits for batches, prefetch off and on.

  python -m bench.bench_overlap [--quick] [--out bench/results_overlap.json]

Two runs of the real training loop (``train_and_evaluate``, timed by
``bench.device_training.timed_training``), each with ``data.prefetch_batches`` 0 (each batch
built between two step dispatches, as before) and 2 (built ahead in a thread, on across epoch
boundaries: ``asl_jax/data/prefetch.py``):

- the demo (``configs/demo.py``, 2 epochs of 22 steps, batch 8, T 384, C 64);
- THUMOS14-shaped (``bench.device_training`` data: C = 2048, T <= 2304, batch 2, the full model),
  a few steps: 8 training videos (4 steps per epoch), 2 epochs, 4 evaluation videos.

Per run: the loop's wait for input (host batch building, or the wait on the prefetch queue) as
a fraction of the epochs' wall time; the steps' share (steps x the median step of a tight loop)
of the last epoch. Runs use the persistent compilation cache, so a rerun compiles nothing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile

from bench import common, device_training


def demo_config(root: pathlib.Path, prefetch: int):
  from asl_jax.configs import demo

  config = demo.get_config()
  config.data.annotation_file = str(root / 'annotations.json')
  config.data.feature_dir = str(root / 'features')
  config.train.update(num_epochs=2, warmup_epochs=0, write_figures=False, min_steps=0)
  config.train.checkpoint_every_steps = 10**6
  config.data.prefetch_batches = prefetch
  return config


def thumos_config(root: pathlib.Path, prefetch: int, quick: bool):
  config = device_training.build_config(root, epochs=2, smoke=False, prefetch=prefetch)
  if quick:
    config.data.max_seq_len = 1152
  return config


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='THUMOS-shaped run at T 1152')
  parser.add_argument('--out', default=None)
  parser.add_argument('--only', default='demo,thumos')
  args = parser.parse_args(argv)
  from asl_jax import compilation_cache
  from asl_jax.train import loop

  compilation_cache.apply()
  load = os.getloadavg()
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    for name in args.only.split(','):
      root = scratch / name / 'data'
      for prefetch in (0, 2):
        if name == 'demo':
          config = demo_config(root, prefetch)
          config.data.synthetic.enabled = True
          loop.maybe_synthesize(config.data)
        else:
          config = thumos_config(root, prefetch, args.quick)
          if not root.exists():
            device_training.synthesize(config, root, (8, 4))
        result = device_training.timed_training(config, scratch / f'{name}_{prefetch}', 5)
        rows.append(
          {
            'run': name,
            'prefetch': prefetch,
            'steps': sum(r['steps'] for r in result['rows']),
            'epochs_wall_s': sum(r['wall_s'] for r in result['rows']),
            'input_wait_s': result['input_wait_s'],
            'input_wait_fraction': result['input_wait_fraction'],
            'last_epoch_steps_fraction': result['last_epoch_device_fraction'],
            'step_s': result['step_s_median'],
          }
        )
        print(rows[-1], flush=True)
  result = {
    'benchmark': 'overlap',
    'rows': rows,
    'machine': common.process_machine(load),
    'notes': [
      "input_wait_fraction: the loop waiting for a batch / the training epochs' wall time; "
      "last_epoch_steps_fraction: steps x median step time / the last epoch's wall (the rest "
      'is input, logging, checks and the host between dispatches). On a CPU the "device" is the '
      'same cores that build the batches, so prefetching overlaps less than on an accelerator.',
      'Steps are dispatched asynchronously and an epoch boundary is seen when its first step '
      "is dispatched, so with few steps per epoch (THUMOS-shaped: 4) the last epoch's wall also "
      'holds steps of the epoch before that were still queued, more so with prefetch on (dispatch '
      'runs further ahead): there, read input_wait_fraction. The first run of each pair compiles '
      'the step (the second reads it from the cache), so epochs_wall_s is not comparable between '
      'the two.',
    ],
  }
  common.write_result(result, args.out, announce=True)
  return result


if __name__ == '__main__':
  main()
