"""Feature readers beyond .npy/.npz (.pt, one HDF5 file per split) and multi-folder concatenation.

A *source* is where one feature set lives: a folder of per-video files (``.npy``/``.npz``/``.pt``,
named ``prefix + video_id + ext``) or a single ``.h5``/``.hdf5`` file holding one dataset per video
(keyed ``prefix + video_id``, as the reference's ANet/MultiThumos/Charades loaders read them).
Several sources (Ego4D's EgoVLP + SlowFast + Omnivore + InternVideo) are concatenated along
channels in the order given. Paths may be URLs (gs://...): they are read through tf.io.gfile.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from asl_jax.data import features as features_lib
from asl_jax.data import resample, storage
from asl_jax.data.features import FeatureError

HDF5_EXTENSIONS = ('.h5', '.hdf5')
FILE_EXTENSIONS = (*features_lib.SUPPORTED_EXTENSIONS, '.pt')


class FeatureIssue(FeatureError):
  """A readable feature array that is wrong; ``kind`` names what (see :func:`feature_issues`)."""

  def __init__(self, message: str, kind: str):
    super().__init__(message)
    self.kind = kind


def feature_issues(feats: np.ndarray, *, expected_dim: int | None = None) -> list[tuple[str, str]]:
  """Every way ``feats`` fails to be a finite numeric ``[T, C]`` array, as ``(kind, message)``.

  Kinds: ``dtype``, ``not_2d``, ``empty``, ``transposed`` (shape ``[C, T]``: the first axis has
  the expected channel count and the second does not), ``wrong_dim``, ``non_finite``. The same
  rules as :func:`asl_jax.data.features.load_features`, reported rather than raised so the
  validator can list them all.
  """
  if not (np.issubdtype(feats.dtype, np.floating) or np.issubdtype(feats.dtype, np.integer)):
    return [('dtype', f'dtype {feats.dtype} is not numeric')]
  if feats.ndim != 2:
    return [('not_2d', f'expected a 2-D [T, C] array, got shape {feats.shape}')]
  issues = []
  if feats.shape[0] == 0:
    issues.append(('empty', f'no time steps (shape {feats.shape})'))
  if expected_dim is not None and feats.shape[1] != expected_dim:
    if feats.shape[0] == expected_dim:
      issues.append(
        (
          'transposed',
          f'shape {feats.shape} looks like [C, T] (C={expected_dim} first); expected [T, C]: '
          'store feats.T',
        )
      )
    else:
      issues.append(
        ('wrong_dim', f'channel dimension is {feats.shape[1]}, expected {expected_dim}')
      )
  if np.issubdtype(feats.dtype, np.floating):
    bad = ~np.isfinite(feats)
    if bad.any():
      num_nan = int(np.isnan(feats).sum())
      issues.append(
        (
          'non_finite',
          f'{int(bad.sum())} non-finite values ({num_nan} NaN, {int(bad.sum()) - num_nan} Inf) '
          f'of {feats.size}',
        )
      )
  return issues


def check_features(feats: Any, *, where: str, expected_dim: int | None = None) -> np.ndarray:
  """Returns ``feats`` as float32 ``[T, C]`` or raises :class:`FeatureIssue` naming ``where``."""
  feats = np.asarray(feats)
  issues = feature_issues(feats, expected_dim=expected_dim)
  if issues:
    kind, message = issues[0]
    raise FeatureIssue(f'{where}: {message}', kind)
  return feats.astype(np.float32, copy=False)


def _torch():
  if importlib.util.find_spec('torch') is None:
    return None
  import torch

  return torch


def read_pt(path: str, *, where: str) -> np.ndarray:
  """The ``[T, C]`` tensor a ``.pt`` file holds (or its ``feats`` entry), unchecked.

  Loaded with ``weights_only=True``: feature files are data, never code to unpickle.
  """
  torch = _torch()
  if torch is None:
    raise FeatureError(
      f'{where}: reading .pt features needs PyTorch, which is not installed; install torch, or '
      'convert the files once with np.save(path[:-3] + ".npy", torch.load(path).float().numpy())'
    )
  if not storage.isfile(path):
    raise FeatureIssue(f'{where}: file does not exist', 'missing')
  try:
    with storage.local_copy(path) as local:
      value = torch.load(local, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises many types (pickle, zip, runtime) for a bad file.
    raise FeatureError(f'{where}: cannot read features ({type(e).__name__}: {e})') from e
  if isinstance(value, dict):
    if features_lib.NPZ_KEY not in value:
      raise FeatureError(
        f'{where}: .pt holds a dict without {features_lib.NPZ_KEY!r}; keys: {sorted(value)}'
      )
    value = value[features_lib.NPZ_KEY]
  if not isinstance(value, torch.Tensor):
    raise FeatureError(f'{where}: .pt holds a {type(value).__name__}, expected a tensor')
  return value.detach().float().numpy()


def load_pt_features(
  path: str | os.PathLike, *, expected_dim: int | None = None, video_id: str | None = None
) -> np.ndarray:
  """Loads one video's ``.pt`` features as float32 ``[T, C]`` with the ``.npy`` loader's checks."""
  path = os.fspath(path)
  video_id = video_id or os.path.splitext(os.path.basename(path))[0]
  where = f'features of video {video_id!r} ({path})'
  return check_features(read_pt(path, where=where), where=where, expected_dim=expected_dim)


class HDF5Features:
  """One HDF5 file with a ``[T, C]`` dataset per video, opened once and read by key."""

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    self._file = None
    self._handle = None

  def _open(self):
    if self._file is not None:
      return self._file
    if importlib.util.find_spec('h5py') is None:
      raise FeatureError(
        f'{self.path}: reading HDF5 features needs h5py, which is not installed '
        '(pip install h5py), or convert the file to one .npy per video'
      )
    import h5py

    if not storage.isfile(self.path):
      raise FeatureIssue(f'HDF5 feature file {self.path} does not exist', 'missing')
    try:
      # h5py reads Python file objects, so a gs:// file is read in place through tf.io.gfile.
      self._handle = storage.open_file(self.path, 'rb') if storage.is_remote(self.path) else None
      self._file = h5py.File(self._handle or self.path, 'r')
    except OSError as e:
      raise FeatureError(f'{self.path}: cannot open as HDF5 ({e})') from e
    return self._file

  def keys(self) -> list[str]:
    return list(self._open().keys())

  def read(self, key: str, *, where: str) -> np.ndarray:
    """The array stored under ``key``, unchecked; a missing key raises naming the file."""
    f = self._open()
    if key not in f:
      raise FeatureIssue(f'{where}: no dataset {key!r} in HDF5 file {self.path}', 'missing')
    try:
      return np.asarray(f[key])
    except (OSError, TypeError, ValueError) as e:
      raise FeatureError(f'{where}: cannot read {key!r} ({type(e).__name__}: {e})') from e

  def load(
    self, video_id: str, *, key: str | None = None, expected_dim: int | None = None
  ) -> np.ndarray:
    """Video ``video_id``'s features (dataset ``key``, default the id) as checked float32."""
    key = video_id if key is None else key
    where = f'features of video {video_id!r} ({self.path}[{key!r}])'
    return check_features(self.read(key, where=where), where=where, expected_dim=expected_dim)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._handle is not None:
      self._handle.close()
    self._file = self._handle = None

  def __enter__(self) -> HDF5Features:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


@dataclasses.dataclass(frozen=True)
class FeatureSource:
  """One feature set: a folder of per-video files or a single HDF5 file keyed by video id."""

  path: str
  prefix: str = ''  # File name (or HDF5 key) = prefix + video_id (+ ext for folders).
  ext: str = '.npy'  # Per-video file extension for folders; ignored for HDF5 files.
  dim: int | None = None  # Channels of this set, checked when known.

  @property
  def is_hdf5(self) -> bool:
    return self.path.lower().endswith(HDF5_EXTENSIONS)

  def location(self, video_id: str) -> str:
    """Where this set keeps ``video_id``: a file path, or ``file.h5[key]``."""
    if self.is_hdf5:
      return f'{self.path}[{self.prefix + video_id!r}]'
    ext = self.ext if self.ext.startswith('.') else '.' + self.ext
    return storage.join(self.path, f'{self.prefix}{video_id}{ext}')


def parse_sources(
  feature_dir: str | Sequence[str],
  *,
  prefix: str = '',
  ext: str = '.npy',
  dims: Sequence[int] = (),
) -> list[FeatureSource]:
  """``'a,b'`` or ``['a', 'b']`` (+ optional per-source channel counts) -> sources, in order."""
  paths = feature_dir.split(',') if isinstance(feature_dir, str) else list(feature_dir)
  paths = [p.strip() for p in paths if p.strip()]
  if not paths:
    raise ValueError('no feature folder given')
  if dims and len(dims) != len(paths):
    raise ValueError(f'{len(dims)} feature dims {tuple(dims)} given for {len(paths)} folders')
  ext = ext if ext.startswith('.') else '.' + ext
  if ext.lower() not in FILE_EXTENSIONS:
    raise ValueError(f'feature extension {ext!r} is not one of {FILE_EXTENSIONS}')
  return [
    FeatureSource(path=p, prefix=prefix, ext=ext, dim=int(dims[i]) if dims else None)
    for i, p in enumerate(paths)
  ]


class FeatureReader:
  """Reads a video's features from every source and concatenates them along channels.

  ``load`` checks each set (with the ``.npy`` loader for ``.npy``/``.npz``), brings them to one
  length by ``policy`` (:func:`asl_jax.data.resample.concat_feature_sets`) and checks the total
  channel count against ``input_dim``; ``read_raw`` returns the unchecked arrays for the validator.
  """

  def __init__(
    self,
    sources: Sequence[FeatureSource],
    *,
    input_dim: int | None = None,
    policy: str = 'resample',
  ):
    if not sources:
      raise ValueError('FeatureReader needs at least one source')
    if policy not in resample.POLICIES:
      raise ValueError(f'policy must be one of {resample.POLICIES}, got {policy!r}')
    self.sources = list(sources)
    self.input_dim = input_dim
    self.policy = policy
    self._hdf5 = {s.path: HDF5Features(s.path) for s in self.sources if s.is_hdf5}
    if len(self.sources) == 1 and self.sources[0].dim is None and input_dim is not None:
      self.sources[0] = dataclasses.replace(self.sources[0], dim=input_dim)

  @classmethod
  def from_config(cls, data_config) -> FeatureReader:
    """From ``config.data``: ``feature_dir`` (comma-separated for several sets), ``feature_prefix``,
    ``feature_ext``, ``input_dim`` and, when present, ``feature_dims`` and ``feature_policy``."""
    sources = parse_sources(
      data_config.feature_dir,
      prefix=data_config.feature_prefix,
      ext=data_config.feature_ext,
      dims=tuple(data_config.get('feature_dims', ()) or ()),
    )
    return cls(
      sources,
      input_dim=data_config.input_dim,
      policy=data_config.get('feature_policy', 'resample'),
    )

  def locations(self, video_id: str) -> list[str]:
    return [s.location(video_id) for s in self.sources]

  def _read_one(self, source: FeatureSource, video_id: str, *, checked: bool) -> np.ndarray:
    where = f'features of video {video_id!r} ({source.location(video_id)})'
    if source.is_hdf5:
      raw = self._hdf5[source.path].read(source.prefix + video_id, where=where)
    else:
      path = source.location(video_id)
      if source.ext.lower() == '.pt':
        raw = read_pt(path, where=where)
      elif not storage.isfile(path):
        if not storage.exists(source.path):  # Every video would say so: name the folder once.
          raise features_lib.FeatureFolderMissing(
            f'feature folder {source.path} does not exist: check data.feature_dir (or --features)'
          )
        raise FeatureIssue(f'{where}: file does not exist', 'missing')
      elif checked:
        with storage.local_copy(path) as local:
          return features_lib.load_features(local, expected_dim=source.dim, video_id=video_id)
      else:
        with storage.local_copy(path) as local:
          raw = features_lib._read_array(local, where)  # Same parsing rules as load_features.
    return check_features(raw, where=where, expected_dim=source.dim) if checked else raw

  def read_raw(self, video_id: str) -> list[np.ndarray]:
    """One unchecked array per source; raises :class:`FeatureError` if one cannot be read."""
    return [self._read_one(s, video_id, checked=False) for s in self.sources]

  def combine(self, arrays: Sequence[np.ndarray], video_id: str) -> np.ndarray:
    """Concatenates checked per-source arrays by ``policy`` and checks the total channels."""
    feats = resample.concat_feature_sets(
      arrays, policy=self.policy, names=[s.path for s in self.sources], video_id=video_id
    )
    if self.input_dim is not None and feats.shape[1] != self.input_dim:
      dims = ' + '.join(str(a.shape[1]) for a in arrays)
      raise FeatureIssue(
        f'features of video {video_id!r} ({", ".join(self.locations(video_id))}): '
        f'{dims} = {feats.shape[1]} channels, expected input_dim={self.input_dim}',
        'wrong_dim',
      )
    return feats

  def load(self, video_id: str) -> np.ndarray:
    """Checked, concatenated float32 ``[T, C]`` features of ``video_id``."""
    arrays = [self._read_one(s, video_id, checked=True) for s in self.sources]
    if len(arrays) == 1 and self.input_dim is None:
      return arrays[0]
    return self.combine(arrays, video_id)

  def close(self) -> None:
    for f in self._hdf5.values():
      f.close()

  def __enter__(self) -> FeatureReader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def load_multi_folder(
  feature_dirs: Sequence[str],
  video_id: str,
  *,
  prefix: str = '',
  ext: str = '.npy',
  dims: Sequence[int] = (),
  input_dim: int | None = None,
  policy: str = 'resample',
) -> np.ndarray:
  """One video's features from several folders, concatenated along channels in folder order."""
  sources = parse_sources(list(feature_dirs), prefix=prefix, ext=ext, dims=dims)
  with FeatureReader(sources, input_dim=input_dim, policy=policy) as reader:
    return reader.load(video_id)
