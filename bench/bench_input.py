"""Input speed: TFDS shards through tf.data against plain np.load of .npy files, in one run.

python -m bench.bench_input [--quick] [--videos N] [--passes N] [--encodings bytes,zlib]
    [--out bench/results_input.json] [--tmp DIR]

Data: THUMOS-like videos (T uniform in [1800, 2200], C = 2048 float32, ~16 MB each; 24 videos,
or 12 with --quick) written as .npy files into a temporary folder, with an ActionFormer-format
annotation file (feature stride 4, 16-frame windows, 30 fps, 2-8 actions per video). The values
are |N(0, 1)|: dense and non-negative like pooled I3D features, so zlib gains little; sparse
features would compress better. Each encoding is built with ``asl_jax.data.tfds_builder.build``
(validation included in the build time).

Measured per reader, median of N passes over all videos (N = 3, or 2 with --quick; every pass
reads files the previous pass just read, so all numbers are page-cache-warm):
  * examples/s: videos of a pass / the pass's seconds, everything included;
  * first s: seconds until the first example (building the tf.data pipeline, opening shards,
    and for training filling the shuffle buffer: with --quick it holds the whole split);
  * steady/s: examples/s after the first one - what a long epoch approaches;
  * CPU ms/example: process CPU time (all threads) of the pass per example: the work done,
    which other load on the machine disturbs far less than wall-clock rates.
With few videos per pass the fixed first-example cost dominates examples/s: compare steady/s
for the per-example cost. Readers:
  * np.load: each .npy file loaded with np.load (the numpy pipeline's reader) - the baseline.
  * TFDS read: ``as_dataset`` of the split, decoded to numpy (no crop, no batching, no cache).
  * TFDS train: ``TFDSTrainBatches`` (shuffle, random crop to 2304, pad, batch 2, prefetch 2).
  * TFDS eval: ``tf_pipeline.eval_batches`` (pad to a multiple of 2304, batch 2).
On-disk bytes per example: the TFRecord shards of the split / videos, against the .npy files.
Peak RSS is the process's high-water mark after each measurement (it only grows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

CHANNELS = 2048
MAX_SEQ_LEN = 2304
GEOMETRY = dict(fps=30.0, feat_stride=4, num_frames=16)


def write_videos(root: str, num_videos: int, seed: int = 0) -> dict:
  """``root/features/<vid>.npy`` ([T, 2048] float32) and ``root/annotations.json``."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, 'features'), exist_ok=True)
  database = {}
  for i in range(num_videos):
    vid = f'video_{i:04d}'
    t = int(rng.integers(1800, 2201))
    feats = np.abs(rng.standard_normal((t, CHANNELS), dtype=np.float32))
    np.save(os.path.join(root, 'features', f'{vid}.npy'), feats)
    duration = ((t - 1) * GEOMETRY['feat_stride'] + GEOMETRY['num_frames']) / GEOMETRY['fps']
    anns = []
    for _ in range(int(rng.integers(2, 9))):
      length = float(rng.uniform(1.0, 20.0))
      start = float(rng.uniform(0.0, duration - length))
      label = int(rng.integers(20))
      anns.append({'segment': [start, start + length], 'label': f'c{label}', 'label_id': label})
    database[vid] = {
      'subset': 'validation',
      'duration': duration,
      'fps': GEOMETRY['fps'],
      'annotations': anns,
    }
  with open(os.path.join(root, 'annotations.json'), 'w') as f:
    json.dump({'database': database}, f)
  return database


def data_config(root: str):
  from asl_jax.configs import base

  data = base.get_base_config().data
  data.annotation_file = os.path.join(root, 'annotations.json')
  data.feature_dir = os.path.join(root, 'features')
  data.num_classes = 20
  data.input_dim = CHANNELS
  data.feat_stride = float(GEOMETRY['feat_stride'])
  data.num_frames = float(GEOMETRY['num_frames'])
  data.train_subset = data.eval_subset = 'validation'
  data.max_seq_len = MAX_SEQ_LEN
  return data


def timed_passes(make_iter, passes: int, count=lambda item: 1) -> dict:
  """Medians over ``passes`` of: examples/s of the pass, seconds to its first item, and
  examples/s after the first item. ``make_iter()`` starts a pass; ``count(item)`` is the number of
  examples an item holds (a batch: its videos)."""
  rates, firsts, steadies, cpus, n = [], [], [], [], 0
  for _ in range(passes):
    c0, t0 = time.process_time(), time.perf_counter()
    items = iter(make_iter())
    first = next(items)
    t1 = time.perf_counter()
    n, rest = count(first), 0
    for item in items:
      rest += count(item)
    t2 = time.perf_counter()
    n += rest
    rates.append(n / (t2 - t0))
    firsts.append(t1 - t0)
    steadies.append(rest / (t2 - t1) if rest else float('nan'))
    cpus.append((time.process_time() - c0) * 1e3 / n)
  return dict(
    examples_per_s=statistics.median(rates),
    first_example_s=statistics.median(firsts),
    steady_examples_per_s=statistics.median(steadies),
    cpu_ms_per_example=statistics.median(cpus),
    examples=n,
  )


def folder_bytes(path: str, suffix: str) -> int:
  return sum(
    os.path.getsize(os.path.join(d, f))
    for d, _, files in os.walk(path)
    for f in files
    if suffix in f
  )


def bench_shards(path: str, config, passes: int, num_videos: int) -> list[dict]:
  """Raw TFDS read, the training pipeline and the evaluation pipeline over one built dataset."""
  from asl_jax.data import tf_pipeline

  tfds = tf_pipeline.tfds
  shard_bytes = folder_bytes(path, '.tfrecord')
  builder = tf_pipeline.open_dataset(path)
  train = tf_pipeline.TFDSTrainBatches(
    path,
    subsets=['validation'],
    batch_size=2,
    max_seq_len=MAX_SEQ_LEN,
    max_segments=config.max_segments,
    trunc_thresh=config.trunc_thresh,
    crop_ratio=config.crop_ratio,
    seed=0,
  )
  epochs = iter(range(1000))

  def read_pass():
    # No autocache (as the training and evaluation pipelines): it would time filling an
    # in-memory copy of the split, anew each pass.
    config = tfds.ReadConfig(try_autocache=False)
    return builder.as_dataset(split='validation', read_config=config).as_numpy_iterator()

  def train_pass():
    return train.epoch(next(epochs))

  def eval_pass():
    return tf_pipeline.eval_batches(
      path, subsets=['validation'], batch_size=2, max_seq_len=MAX_SEQ_LEN
    )

  rows = []
  for name, fn, count in (
    ('read', read_pass, lambda ex: 1),
    ('train', train_pass, lambda batch: len(batch['feats'])),
    ('eval', eval_pass, lambda batch: sum(v is not None for v in batch.videos)),
  ):
    timing = timed_passes(fn, passes, count)
    expected = num_videos - num_videos % 2 if name == 'train' else num_videos  # Full batches.
    assert timing['examples'] == expected, (name, timing)
    rows.append(
      dict(
        reader=f'TFDS {name}',
        **timing,
        bytes_per_example=shard_bytes / num_videos,
        peak_rss_mb=common.peak_rss_mb(),
      )
    )
  return rows


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='12 videos and 2 passes, not 24 and 3')
  parser.add_argument('--videos', type=int, default=None, help='videos (overrides --quick)')
  parser.add_argument('--passes', type=int, default=None, help='passes (overrides --quick)')
  parser.add_argument(
    '--encodings', default='bytes,zlib', help='comma-separated TFDS encodings to build and read'
  )
  parser.add_argument('--out', default='bench/results_input.json', help='JSON results')
  parser.add_argument('--tmp', default=None, help='scratch folder (default: system temp)')
  args = parser.parse_args(argv)
  num_videos, passes = (12, 2) if args.quick else (24, 3)
  num_videos, passes = args.videos or num_videos, args.passes or passes
  load_before = os.getloadavg()
  scratch = tempfile.mkdtemp(prefix='bench_input_', dir=args.tmp)
  try:
    return run(args, scratch, num_videos, passes, load_before)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def run(args, scratch: str, num_videos: int, passes: int, load_before) -> dict:
  t0 = time.perf_counter()
  database = write_videos(os.path.join(scratch, 'raw'), num_videos)
  write_s = time.perf_counter() - t0
  config = data_config(os.path.join(scratch, 'raw'))
  feature_dir = config.feature_dir
  npy_bytes = folder_bytes(feature_dir, '.npy')

  def numpy_pass():
    return (np.load(os.path.join(feature_dir, f'{vid}.npy')) for vid in database)

  rows = [
    dict(
      reader='np.load (.npy)',
      **timed_passes(numpy_pass, passes),
      bytes_per_example=npy_bytes / num_videos,
      peak_rss_mb=common.peak_rss_mb(),
    )
  ]

  from asl_jax.data import tfds_builder

  tfds_builder.tfds.disable_progress_bar()
  for encoding in [e.strip() for e in args.encodings.split(',') if e.strip()]:
    t0 = time.perf_counter()
    path = tfds_builder.build(config, os.path.join(scratch, encoding), encoding=encoding)
    build_s = time.perf_counter() - t0
    for row in bench_shards(path, config, passes, num_videos):
      rows.append(dict(row, reader=f'{row["reader"]} ({encoding})', build_s=build_s))

  base_rate, base_bytes = rows[0]['examples_per_s'], rows[0]['bytes_per_example']
  lines = [
    '| reader | examples/s | vs np.load | first s | steady/s | CPU ms/example | MB/example on disk '
    '| vs .npy | peak RSS MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in rows:
    lines.append(
      f'| {r["reader"]} | {r["examples_per_s"]:.1f} | {r["examples_per_s"] / base_rate:.2f}x | '
      f'{r["first_example_s"]:.3f} | {r["steady_examples_per_s"]:.1f} | '
      f'{r["cpu_ms_per_example"]:.1f} | '
      f'{r["bytes_per_example"] / 2**20:.2f} | {r["bytes_per_example"] / base_bytes:.3f} | '
      f'{r["peak_rss_mb"]:.0f} |'
    )
  table = '\n'.join(lines)
  builds = {r['reader'].split('(')[1][:-1]: round(r['build_s'], 2) for r in rows[1:]}
  print(table)
  print(f'{num_videos} videos written in {write_s:.1f} s; build seconds by encoding: {builds}')
  result = {
    'benchmark': 'input',
    'quick': args.quick,
    'encodings': args.encodings,
    'num_videos': num_videos,
    'passes': passes,
    'channels': CHANNELS,
    'lengths': [1800, 2200],
    'rows': rows,
    'build_seconds': builds,
    'machine': common.process_machine(load_before),
    'table': table,
  }
  common.write_result(result, args.out)
  return result


if __name__ == '__main__':
  main()
