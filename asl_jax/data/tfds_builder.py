"""TFDS builder: any supported dataset -> TFRecord shards of what the model sees, one per video.

Every example is exactly what file-based loading (:func:`asl_jax.data.pipeline.
load_split_from_config`) produces for the same config: annotations of any schema (ActionFormer /
ActivityNet, flat, super-events, BSN + csv; labels as the config asks, class-agnostic included),
features of any format (.npy/.npz/.pt/HDF5, several sets concatenated) after the config's
geometry (``downsample_rate``, ``force_upsampling``), segments in seconds and in grid units, and
the per-video geometry that relates them. Training and evaluation need nothing but the shards.

Layout: ``OUT/asl_features/2.0.0/`` (read back with ``tfds.builder_from_directory``, no builder code
needed), one split per annotation subset (lower-cased), and ``OUT/skipped.json`` when videos were
left out. Features are stored as raw float32 bytes (optionally zlib). Only ``tf.io.gfile`` /
``storage`` touch files, so OUT, the annotation files and the features may be gs:// paths; nothing
is downloaded.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from asl_jax.data import pipeline, storage, validation
from asl_jax.data.feature_formats import FeatureReader
from asl_jax.data.records import AnnotationSet, VideoRecord

tfds = storage.tensorflow_datasets(storage.TFDS_USE)
tf = storage.tensorflow(storage.TFDS_USE)

logger = logging.getLogger(__name__)

NAME = 'asl_features'
VERSION = '2.0.0'
RELEASE_NOTES = {
  '2.0.0': 'Every annotation schema and feature format; features after the config geometry '
  '(downsample_rate, force_upsampling); per-video feat_stride / num_frames in float64; the '
  "annotation file's fps (file_fps) besides the resolved one.",
  '1.0.0': 'Features [T, C], segments in seconds and grid units, geometry.',
}
ENCODINGS = ('bytes', 'zlib')
SKIPPED_FILE = 'skipped.json'


class BuildRefused(ValueError):
  """Validation found problems; ``report`` holds them all."""

  def __init__(self, message: str, report: validation.ValidationReport):
    super().__init__(message)
    self.report = report


def split_name(subset: str) -> str:
  """TFDS split name of an annotation subset: lower-cased, non-word characters -> '_'."""
  return re.sub(r'\W', '_', subset.lower())


def dataset_dir(out_dir: str) -> str:
  """Where :func:`build` puts the shards of a dataset built into ``out_dir``."""
  return storage.join(out_dir, NAME, VERSION)


@dataclasses.dataclass
class BuildSource:
  """Everything the builder writes: cleaned records, where their features are, the geometry."""

  annotations: AnnotationSet
  reader: FeatureReader
  input_dim: int
  geometry: dict[str, Any]  # pipeline.geometry_from_config: what make_video applies.
  encoding: str = 'bytes'  # Of the features: 'bytes' (raw float32) or 'zlib' (smaller, slower).
  extra_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def example_of(video: pipeline.Video) -> dict[str, Any]:
  """The TFDS example of one :class:`asl_jax.data.pipeline.Video` (see ``AslFeatures._info``)."""
  record, geometry = video.record, video.geometry
  return {
    'features': video.feats,
    'length': np.int32(len(video.feats)),
    'segments': video.segments,
    'segments_sec': record.segments_sec.astype(np.float64).reshape(-1, 2),
    'labels': video.labels,
    'video_id': record.video_id,
    'subset': record.subset,
    'duration': np.float64(record.duration),
    'fps': np.float64(geometry.fps),
    'file_fps': np.float64(record.fps),
    'feat_stride': np.float64(geometry.feat_stride),
    'num_frames': np.float64(geometry.num_frames),
  }


class AslFeatures(tfds.core.GeneratorBasedBuilder):
  """Per-video features and ground truth; construct with ``source=`` to build."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = RELEASE_NOTES
  # No download checksums to look up: TFDS would search next to this module's code, which for a
  # builder in a plain module needs the optional `importlib_resources` package.
  url_infos = None

  def __init__(self, *, source: BuildSource, **kwargs):
    if source.encoding not in ENCODINGS:
      raise ValueError(f'encoding must be one of {ENCODINGS}, got {source.encoding!r}')
    self._source = source  # Set first: the base constructor may already ask for _info().
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    src = self._source
    # Float64 goes through tf.train.Example's FloatList as float32 unless stored as raw bytes;
    # the geometry must survive exactly, or grid <-> seconds would differ from file loading.
    float64 = lambda shape: tfds.features.Tensor(shape=shape, dtype=np.float64, encoding='bytes')
    features = tfds.features.FeaturesDict(
      {
        'features': tfds.features.Tensor(
          shape=(None, src.input_dim), dtype=np.float32, encoding=src.encoding
        ),
        'length': tfds.features.Scalar(dtype=np.int32),  # T after the geometry.
        'segments': tfds.features.Tensor(shape=(None, 2), dtype=np.float32),  # Grid units.
        'segments_sec': float64((None, 2)),
        'labels': tfds.features.Tensor(shape=(None,), dtype=np.int32),
        'video_id': tfds.features.Text(),
        'subset': tfds.features.Text(),  # As written in the annotation file.
        'duration': float64(()),  # Seconds.
        'fps': float64(()),  # Resolved (unknown fps = the features' rate): grid <-> seconds.
        'file_fps': float64(()),  # As loaded from the annotations (-1: unknown).
        'feat_stride': float64(()),  # This video's, after the geometry.
        'num_frames': float64(()),
      }
    )
    ann = src.annotations
    metadata = tfds.core.MetadataDict(
      class_names=list(ann.class_names),
      num_classes=ann.num_classes,
      input_dim=src.input_dim,
      encoding=src.encoding,
      feat_stride=src.geometry['feat_stride'],  # The config's, before the geometry.
      num_frames=src.geometry['num_frames'],
      downsample_rate=src.geometry['downsample_rate'],
      force_upsampling=src.geometry['force_upsampling'],
      max_seq_len=src.geometry['max_seq_len'],
      annotation_file=ann.source,
      annotation_skipped=dict(ann.skipped),
      feature_sources=[s.path for s in src.reader.sources],
      subsets={split_name(v.subset): v.subset for v in ann.videos},
      **src.extra_metadata,
    )
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__.splitlines()[0],
      features=features,
      metadata=metadata,
    )

  def _split_generators(self, dl_manager) -> dict[str, Iterator]:
    del dl_manager  # Everything is local (or gs://) already; nothing is downloaded.
    by_split: dict[str, list[VideoRecord]] = {}
    for record in self._source.annotations.videos:
      by_split.setdefault(split_name(record.subset), []).append(record)
    return {name: self._generate_examples(records) for name, records in by_split.items()}

  def _generate_examples(self, records: list[VideoRecord]) -> Iterator[tuple[str, dict]]:
    src = self._source
    for video in pipeline.iter_videos(records, src.reader, **src.geometry):
      yield video.video_id, example_of(video)


def build(
  data_config,
  out_dir: str,
  *,
  skip_bad: bool = False,
  overwrite: bool = False,
  encoding: str = 'bytes',
  num_shards: int | None = None,
  **validate_kwargs,
) -> str:
  """Validates, then writes the dataset of ``config.data`` into ``out_dir``; returns its folder.

  Validation, annotation loading, feature reading and the geometry are those of the file-based
  pipeline (:mod:`asl_jax.data.validation`, :func:`asl_jax.data.pipeline.annotations_from_config`,
  :func:`asl_jax.data.pipeline.iter_videos`), so the shards hold what it would load.

  Args:
    data_config: a ``config.data`` section (annotation file, features, classes, geometry).
    out_dir: TFDS data dir (local or gs://); the shards go to :func:`dataset_dir`.
    skip_bad: leave out the videos the validator finds problems with (listed with the reasons in
      ``out_dir/skipped.json``) instead of refusing. Problems of the whole file (unreadable
      annotations, subset names matching nothing) always refuse.
    overwrite: replace the dataset ``out_dir`` already holds (once the new one validated);
      without it an existing dataset is an error.
    encoding: 'bytes' (raw float32: fastest to read) or 'zlib' (smaller for sparse features).
    num_shards: fixed shard count of every split (each must have at least that many videos;
      default: TFDS sizes shards at 64 MB - 1 GiB).
    **validate_kwargs: tolerances for :func:`asl_jax.data.validation.validate_dataset`.

  Raises:
    BuildRefused: validation failed (message = the report table).
  """
  target = dataset_dir(out_dir)
  exists = tf.io.gfile.exists(storage.join(target, 'dataset_info.json'))
  if exists and not overwrite:
    raise FileExistsError(f'{target} already holds a built dataset; pass overwrite=True')
  report = validation.validate_from_config(data_config, **validate_kwargs)
  if report.dataset_problems or (report.problems and not skip_bad):
    hint = '' if report.dataset_problems else ' (or pass --skip_bad to leave those videos out)'
    raise BuildRefused(
      f'refusing to build: fix these problems{hint}\n{report.format_table()}', report
    )
  bad = report.problems_by_video()
  if report.warnings:
    logger.warning(
      'validation warnings (segments the loader clips or drops): %s', report.warning_counts()
    )
  annotations = pipeline.annotations_from_config(data_config, exclude=set(bad))
  if not annotations.videos:
    raise BuildRefused(
      f'refusing to build: every video has problems\n{report.format_table()}', report
    )
  if num_shards:
    sizes = collections.Counter(split_name(v.subset) for v in annotations.videos)
    small = {k: n for k, n in sizes.items() if n < num_shards}
    if small:
      raise ValueError(f'num_shards={num_shards} exceeds the videos of split(s) {small}')
  tf.io.gfile.makedirs(out_dir)
  skipped_path = storage.join(out_dir, SKIPPED_FILE)
  if bad:
    with tf.io.gfile.GFile(skipped_path, 'w') as f:
      json.dump(report.to_json(), f, indent=1)
    logger.warning('skipping %d videos with problems; see %s', len(bad), skipped_path)
  elif tf.io.gfile.exists(skipped_path):
    tf.io.gfile.remove(skipped_path)  # A stale list from an earlier build would mislead.

  if exists:  # Only now that the new build is known to be valid: the old one goes.
    tf.io.gfile.rmtree(target)
  with FeatureReader.from_config(data_config) as reader:
    builder = AslFeatures(
      source=BuildSource(
        annotations=annotations,
        reader=reader,
        input_dim=data_config.input_dim,
        geometry=pipeline.geometry_from_config(data_config),
        encoding=encoding,
        extra_metadata={
          'skipped_videos': sorted(bad),
          'annotation_schema': report.settings.get('schema', '?'),
          'validation_warnings': report.warning_counts(),
        },
      ),
      data_dir=out_dir,
    )
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False, num_shards=num_shards),
      file_format='tfrecord',
    )
  return target
