"""Runs three jitted training steps of the tiny config over every local device; writes an .npz.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.train.sharded_steps \
    --root DIR --out steps.npz

Used by test_multi_device.py: the device count must be fixed before JAX starts, hence a process.
The global batch (8 videos) is the same whatever the device count; one step per epoch. The tiny
dataset must exist under DIR/data (the test generates it).
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import numpy as np

from asl_jax import parallel
from asl_jax.data import pipeline
from asl_jax.train import build
from tests.train.helpers import flatten, tiny_config

BATCH_SIZE = 8


def sharded_config(root: pathlib.Path):
  config = tiny_config(root)
  config.train.batch_size = BATCH_SIZE
  config.train.warmup_epochs = 1
  config.train.num_epochs = 2  # 9 training videos: 1 step per epoch, 3 in all.
  return config


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--root', required=True, help='folder holding (or to hold) data/')
  parser.add_argument('--out', required=True, help='.npz with the metrics and the final state')
  args = parser.parse_args(argv)
  config = sharded_config(pathlib.Path(args.root))
  videos, _ = pipeline.load_split_from_config(config.data, ('training',))
  batches = pipeline.TrainBatches(
    videos,
    batch_size=BATCH_SIZE,
    max_seq_len=config.data.max_seq_len,
    max_segments=config.data.max_segments,
    trunc_thresh=config.data.trunc_thresh,
    crop_ratio=config.data.crop_ratio,
    seed=config.seed,
  )
  mesh = parallel.create_mesh()
  training = build.create_training(config, mesh, steps_per_epoch=batches.steps_per_epoch)
  state, out = training.state, {}
  for epoch in range(training.total_steps):
    batch = next(batches.epoch(epoch))
    global_batch = parallel.to_global(batch, mesh)
    assert len(global_batch['feats'].sharding.device_set) == jax.device_count()
    state, metrics = training.train_step(state, global_batch)
    out.update({f'metrics/{epoch}/{k}': v for k, v in jax.device_get(metrics).items()})
  out.update({f'state/{k}': v for k, v in flatten(jax.device_get(state)).items()})
  out['num_devices'] = np.asarray(jax.device_count())
  out['num_steps'] = np.asarray(training.total_steps)
  np.savez(args.out, **out)


if __name__ == '__main__':
  main()
