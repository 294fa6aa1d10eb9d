"""tf.data input from built TFDS shards -> per-process numpy batches for training and evaluation.

Training: each process reads its own contiguous slice of every split (disjoint, together
complete), shuffles it (shards, then a bounded example buffer; seeded per epoch and process),
crops with :func:`asl_jax.data.pipeline.random_window` (same semantics as the numpy pipeline) and
pads to ``max_seq_len`` / ``max_segments``. Batches have exactly the keys and dtypes of
:class:`asl_jax.data.pipeline.TrainBatches`, and the same interface (``steps_per_epoch``,
``epoch(epoch, start_step)``, ``stats``), so the training loop can use either. A batch is a pure
function of ``(seed, epoch, step, process_index, process_count)``: resuming at ``(epoch, step)``
reproduces the uninterrupted run. Evaluation yields :class:`asl_jax.data.pipeline.EvalBatch`
(every video once, uncropped, grouped by padded length).

The shards already hold what file-based loading produces for the build's config (geometry
applied: see :mod:`asl_jax.data.tfds_builder`), so nothing here depends on the schema or format.
Features are padded by ``padded_batch`` straight into the batch (one copy of each window); a
16 MB example still costs ~10 ms of CPU to read from a TFRecord (bench/bench_input.py).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from asl_jax.data import pipeline, storage
from asl_jax.data.geometry import FeatureGeometry
from asl_jax.data.records import VideoRecord
from asl_jax.data.tfds_builder import NAME, RELEASE_NOTES, VERSION, dataset_dir, split_name

tfds = storage.tensorflow_datasets(storage.TFDS_USE)
tf = storage.tensorflow(storage.TFDS_USE)

logger = logging.getLogger(__name__)

TRAIN_KEYS = ('feats', 'mask', 'segments', 'labels', 'segment_valid')


def open_dataset(path: str) -> tfds.core.DatasetBuilder:
  """The built dataset at ``path``: the ``--out`` folder of build_dataset or its version folder."""
  if not tf.io.gfile.exists(storage.join(path, 'dataset_info.json')):
    older = [
      v
      for v in RELEASE_NOTES
      if v != VERSION and tf.io.gfile.exists(storage.join(path, NAME, v, 'dataset_info.json'))
    ]
    path = dataset_dir(path)
    if older and not tf.io.gfile.exists(storage.join(path, 'dataset_info.json')):
      raise FileNotFoundError(
        f'{path} does not exist; the folder holds a dataset of version(s) {older}, built by an '
        'older asl-jax: rebuild it with asl-build-dataset --overwrite'
      )
  if not tf.io.gfile.exists(storage.join(path, 'dataset_info.json')):
    raise FileNotFoundError(f'no built dataset at {path}; run asl-build-dataset --config=... first')
  builder = tfds.builder_from_directory(path)
  if builder.info.version.major != tfds.core.Version(VERSION).major:
    raise ValueError(
      f'{path}: dataset version {builder.info.version} was built by another asl-jax (this one '
      f'reads {VERSION}); rebuild it with asl-build-dataset --overwrite'
    )
  return builder


def check_geometry(builder: tfds.core.DatasetBuilder, max_seq_len: int) -> None:
  """Refuses shards resized (``force_upsampling``) to another ``max_seq_len`` than asked for:
  their features and grid segments would not be what the config's file loading gives."""
  meta = builder.info.metadata or {}
  built = meta.get('max_seq_len')
  if meta.get('force_upsampling') and built != max_seq_len:
    raise ValueError(
      f'{builder.data_dir}: built with force_upsampling to max_seq_len={built}, but '
      f'max_seq_len={max_seq_len} was asked for; rebuild the shards with this config'
    )


def process_split(
  builder: tfds.core.DatasetBuilder, subsets: Sequence[str], process_index: int, process_count: int
) -> tuple[str, list[int]]:
  """TFDS split string of this process's share of ``subsets``, and every process's example count.

  Process ``i`` of ``n`` reads ``[i * N // n, (i + 1) * N // n)`` of each split of ``N`` examples:
  contiguous ranges (cheap to read from shards) that are disjoint and cover every example.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} is not in [0, {process_count})')
  splits = builder.info.splits
  names = []
  for subset in subsets:
    name = split_name(subset)
    if name not in splits:
      raise ValueError(
        f'{builder.data_dir}: subset {subset!r} (split {name!r}) was not built; splits: '
        f'{sorted(splits.keys())}'
      )
    names.append(name)
  names = list(dict.fromkeys(names))
  counts = [0] * process_count
  parts = []
  for name in names:
    total = splits[name].num_examples
    for i in range(process_count):
      lo, hi = i * total // process_count, (i + 1) * total // process_count
      counts[i] += hi - lo
      if i == process_index and hi > lo:
        parts.append(f'{name}[{lo}:{hi}]')
  return '+'.join(parts), counts


def crop_seed(seed: int, epoch: int, video_id: str) -> list[int]:
  """Seed of one video's crop in one epoch: independent of read order and process count."""
  return [seed, epoch, zlib.crc32(video_id.encode())]


def _stream_seed(*parts: int) -> int:
  """A tf.data seed (int64) mixed from several integers."""
  return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint32)[0])


class TFDSTrainBatches:
  """Training batches for one process from built shards; ``epoch(e)`` repeats exactly."""

  def __init__(
    self,
    path: str,
    *,
    subsets: Sequence[str],
    batch_size: int,
    max_seq_len: int,
    max_segments: int,
    trunc_thresh: float,
    crop_ratio: Sequence[float],
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    shuffle_buffer: int = 32,
    prefetch: int = 2,
    num_parallel_calls: int = 2,
    with_video_ids: bool = False,
  ):
    """See the module docstring.

    Args:
      path: the build_dataset ``--out`` folder (or the dataset's version folder).
      subsets: annotation subsets to train on (their splits are concatenated).
      batch_size: global batch size; each process yields ``batch_size // process_count`` rows.
      shuffle_buffer: examples held for shuffling (memory: ``shuffle_buffer * T * C * 4`` bytes);
        a split slice no larger than this is shuffled uniformly, a larger one shard-wise plus
        within the buffer.
      prefetch: batches prepared ahead.
      num_parallel_calls: parallelism of reading, decoding and cropping (fixed, not AUTOTUNE, so
        memory stays bounded).
      with_video_ids: also yield ``video_id`` [B] (str) and ``window_start`` [B] (int32).
    """
    if batch_size % process_count:
      raise ValueError(
        f'global batch size {batch_size} is not divisible by {process_count} processes'
      )
    self.builder = open_dataset(path)
    check_geometry(self.builder, max_seq_len)
    self.split, counts = process_split(self.builder, subsets, process_index, process_count)
    self.global_batch_size = batch_size
    self.local_batch_size = batch_size // process_count
    self.num_local_examples = counts[process_index]
    # Every process must run the same number of steps, so the smallest share sets it.
    self.steps_per_epoch = min(counts) // self.local_batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(
        f'{self.builder.data_dir}: {sum(counts)} training videos in {list(subsets)} give '
        f'{min(counts)} to some process, fewer than one batch of {self.local_batch_size}'
      )
    self.max_seq_len = max_seq_len
    self.max_segments = max_segments
    self.trunc_thresh = trunc_thresh
    self.crop_ratio = tuple(crop_ratio)
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.shuffle_buffer = shuffle_buffer
    self.prefetch = prefetch
    self.num_parallel_calls = num_parallel_calls
    self.with_video_ids = with_video_ids
    self.stats = {'fallback_windows': 0, 'segments_over_max': 0, 'videos_over_max_segments': 0}

  def _window(self, length, segments, video_id, epoch):
    """numpy side of the crop: ``random_window`` with this video's seed for ``epoch``."""
    rng = np.random.default_rng(crop_seed(self.seed, int(epoch), video_id.decode()))
    start, window, keep, fallback = pipeline.random_window(
      int(length),
      segments,
      max_seq_len=self.max_seq_len,
      trunc_thresh=self.trunc_thresh,
      crop_ratio=self.crop_ratio,
      rng=rng,
    )
    return np.int32(start), np.int32(window), keep.astype(bool), np.bool_(fallback)

  def _crop(self, example: dict, epoch: tf.Tensor) -> dict:
    """One video's training window, unpadded: ``padded_batch`` pads and batches in one copy."""
    decode_feats = self.builder.info.features['features'].decode_example
    feats = decode_feats(example['features'])
    segments, labels = example['segments'], example['labels']
    start, window, keep, fallback = tf.numpy_function(
      self._window,
      [example['length'], segments, example['video_id'], epoch],
      [tf.int32, tf.int32, tf.bool, tf.bool],
      stateful=False,
    )
    start.set_shape(())
    window.set_shape(())
    keep.set_shape([None])
    fallback.set_shape(())
    seq_len, m = self.max_seq_len, self.max_segments
    startf, endf = tf.cast(start, tf.float32), tf.cast(start + window, tf.float32)
    kept = tf.boolean_mask(segments, keep)
    kept = tf.stack([tf.maximum(kept[:, 0], startf), tf.minimum(kept[:, 1], endf)], 1) - startf
    kept_labels = tf.boolean_mask(labels, keep)
    num_kept = tf.shape(kept)[0]
    n = tf.minimum(num_kept, m)
    out = {
      'feats': feats[start : start + window],  # A view of the decoded rows (dim-0 slice).
      'mask': tf.range(seq_len) < window,
      'segments': kept[:n],
      'labels': kept_labels[:n],
      'segment_valid': tf.range(m) < n,
      '_fallback': fallback,
      '_num_kept': num_kept,
    }
    if self.with_video_ids:
      out['video_id'] = example['video_id']
      out['window_start'] = start
    return out

  def _padded_shapes(self, spec: dict) -> dict:
    """``padded_batch`` shapes: features to ``max_seq_len``, segments to ``max_segments``."""
    shapes = {k: v.shape for k, v in spec.items()}
    shapes['feats'] = tf.TensorShape([self.max_seq_len, spec['feats'].shape[-1]])
    shapes['segments'] = tf.TensorShape([self.max_segments, 2])
    shapes['labels'] = tf.TensorShape([self.max_segments])
    return shapes

  def dataset(self, epoch: int, start_step: int = 0) -> tf.data.Dataset:
    """The tf.data pipeline of ``epoch`` from in-epoch step ``start_step`` (batched, prefetched)."""
    if not 0 <= start_step <= self.steps_per_epoch:
      raise ValueError(f'start_step {start_step} is not in [0, {self.steps_per_epoch}]')
    seed = _stream_seed(self.seed, epoch, self.process_index)
    options = tf.data.Options()
    options.deterministic = True
    read_config = tfds.ReadConfig(
      options=options,
      shuffle_seed=seed,
      try_autocache=False,  # Caching would hold the whole split in memory.
      interleave_cycle_length=self.num_parallel_calls,
      interleave_block_length=1,
      num_parallel_calls_for_interleave_files=self.num_parallel_calls,
      num_parallel_calls_for_decode=self.num_parallel_calls,
      skip_prefetch=True,
    )
    ds = self.builder.as_dataset(
      split=self.split,
      shuffle_files=True,
      read_config=read_config,
      # Features are decoded after `skip`, so resuming mid-epoch does not decode skipped videos.
      decoders={'features': tfds.decode.SkipDecoding()},
    )
    ds = ds.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    ds = ds.take(self.steps_per_epoch * self.local_batch_size)
    ds = ds.skip(start_step * self.local_batch_size)
    epoch_t = tf.constant(epoch, tf.int64)
    ds = ds.map(
      lambda ex: self._crop(ex, epoch_t),
      num_parallel_calls=self.num_parallel_calls,
      deterministic=True,
    )
    shapes = self._padded_shapes(ds.element_spec)
    ds = ds.padded_batch(self.local_batch_size, padded_shapes=shapes, drop_remainder=True)
    return ds.prefetch(self.prefetch)

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``epoch`` from in-epoch step ``start_step``, as dicts of numpy arrays."""
    for batch in self.dataset(epoch, start_step).as_numpy_iterator():
      fallback, num_kept = batch.pop('_fallback'), batch.pop('_num_kept')
      self.stats['fallback_windows'] += int(fallback.sum())
      over = np.maximum(num_kept - self.max_segments, 0)
      self.stats['segments_over_max'] += int(over.sum())
      self.stats['videos_over_max_segments'] += int((over > 0).sum())
      out = {k: batch[k] for k in TRAIN_KEYS}  # TrainBatches' order, too.
      if self.with_video_ids:
        out['video_id'] = np.array([v.decode() for v in batch['video_id']], dtype=object)
        out['window_start'] = batch['window_start']
      yield out


def _eval_key(example: dict, max_seq_len: int) -> tf.Tensor:
  """:func:`asl_jax.data.pipeline.eval_length` of a video, in multiples of ``max_seq_len``."""
  t = tf.cast(example['length'], tf.int64)
  return tf.maximum(tf.constant(1, tf.int64), (t + max_seq_len - 1) // max_seq_len)


def _eval_batch(key: tf.Tensor, window: tf.data.Dataset, batch_size: int, max_seq_len: int):
  """Up to ``batch_size`` videos of one padded length, padded straight to it (one copy)."""
  shapes = {k: tf.TensorShape([None] * v.shape.rank) for k, v in window.element_spec.items()}
  dim = window.element_spec['features'].shape[-1]
  shapes['features'] = tf.stack([key * max_seq_len, tf.constant(dim, tf.int64)])
  return window.padded_batch(batch_size, padded_shapes=shapes)


def _with_num_segments(example: dict) -> dict:
  return dict(example, num_segments=tf.shape(example['labels'])[0])


def eval_batches(
  path: str,
  *,
  subsets: Sequence[str],
  batch_size: int,
  max_seq_len: int,
  process_index: int = 0,
  process_count: int = 1,
  num_parallel_calls: int = 2,
  prefetch: int = 2,
) -> Iterator[pipeline.EvalBatch]:
  """Every video of ``subsets`` exactly once, uncropped, as padded ``EvalBatch``es.

  Features are padded to ``max_seq_len`` or the next multiple of it (``pipeline.eval_length``),
  videos of one padded length are batched together, and a group's last batch is filled with
  zero rows whose ``videos`` entry is ``None``. The order is deterministic. With
  ``process_count > 1`` each process gets a disjoint share (together all videos), and processes
  may yield different numbers of batches. Each video's ``Video`` (features, record, geometry,
  grid segments) equals what :func:`asl_jax.data.pipeline.load_split_from_config` gives.

  Features are padded straight into the batch by ``padded_batch`` and handed over without another
  copy, so a full batch's ``feats`` (and the videos' views of it) are read-only numpy arrays.
  """
  builder = open_dataset(path)
  check_geometry(builder, max_seq_len)
  split, _ = process_split(builder, subsets, process_index, process_count)
  if not split:
    return
  options = tf.data.Options()
  options.deterministic = True
  read_config = tfds.ReadConfig(
    options=options,
    try_autocache=False,
    interleave_cycle_length=1,  # Read shards in order: the evaluation order is fixed.
    num_parallel_calls_for_decode=num_parallel_calls,
    skip_prefetch=True,
  )
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
  ds = ds.map(_with_num_segments, num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = ds.group_by_window(
    key_func=lambda ex: _eval_key(ex, max_seq_len),
    reduce_func=lambda key, window: _eval_batch(key, window, batch_size, max_seq_len),
    window_size=batch_size,
  ).prefetch(prefetch)
  has_file_fps = 'file_fps' in builder.info.features
  for batch in ds.as_numpy_iterator():
    rows, length, dim = batch['features'].shape
    feats = batch['features']
    if rows < batch_size:  # Only a group's last batch needs zero rows added (a copy).
      feats = np.zeros((batch_size, length, dim), np.float32)
      feats[:rows] = batch['features']
    lengths = batch['length'].astype(np.int64)
    mask = np.zeros((batch_size, length), bool)
    mask[:rows] = np.arange(length)[None] < lengths[:, None]
    videos: list[pipeline.Video | None] = []
    for r in range(rows):
      t, n = int(lengths[r]), int(batch['num_segments'][r])
      record = VideoRecord(
        video_id=batch['video_id'][r].decode(),
        subset=batch['subset'][r].decode(),
        duration=float(batch['duration'][r]),
        fps=float(batch['file_fps'][r] if has_file_fps else batch['fps'][r]),
        segments_sec=batch['segments_sec'][r, :n].astype(np.float64),
        labels=batch['labels'][r, :n].astype(np.int32),
      )
      geometry = FeatureGeometry(
        feat_stride=float(batch['feat_stride'][r]),
        num_frames=float(batch['num_frames'][r]),
        fps=float(batch['fps'][r]),
      )
      segments = batch['segments'][r, :n].astype(np.float32)
      videos.append(pipeline.Video(record, feats[r, :t], geometry, segments, record.labels))
    videos += [None] * (batch_size - rows)
    yield pipeline.EvalBatch(feats, mask, videos)
