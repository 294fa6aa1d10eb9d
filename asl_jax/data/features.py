"""Per-video feature files (.npy / .npz, laid out [T, C]) -> validated float32 arrays."""

from __future__ import annotations

import os

import numpy as np

from asl_jax.errors import UserError

# The key ActionFormer's EPIC-Kitchens loader reads from .npz files.
NPZ_KEY = 'feats'
SUPPORTED_EXTENSIONS = ('.npy', '.npz')


class FeatureError(UserError, ValueError):
  """A feature file that is missing, unreadable or not a finite float [T, C] array."""


class FeatureFolderMissing(FeatureError):
  """The feature folder itself does not exist: one error for the folder, not one per video."""


# What every file of each format starts with: a text or pickle file renamed to .npy is caught here
# rather than reported as numpy's "pickled (object) data".
_MAGIC = {'.npy': b'\x93NUMPY', '.npz': b'PK'}


def feature_path(
  feature_dir: str | os.PathLike, video_id: str, *, prefix: str = '', ext: str = '.npy'
) -> str:
  """``{feature_dir}/{prefix}{video_id}{ext}``, the reference's per-video file layout."""
  if ext and not ext.startswith('.'):
    ext = '.' + ext
  return os.path.join(os.fspath(feature_dir), f'{prefix}{video_id}{ext}')


def _read_array(path: str, where: str) -> np.ndarray:
  """Reads the one array a .npy/.npz file holds; pickles are refused (untrusted input)."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in SUPPORTED_EXTENSIONS:
    raise FeatureError(
      f'{where}: unsupported extension {ext!r}; expected one of {SUPPORTED_EXTENSIONS}'
    )
  with open(path, 'rb') as f:
    head = f.read(len(_MAGIC[ext]))
  if head != _MAGIC[ext]:
    kind = 'a NumPy .npy file' if ext == '.npy' else 'a NumPy .npz (zip) file'
    raise FeatureError(
      f'{where}: not {kind} (it starts with {head!r}, not {_MAGIC[ext]!r}); write features with '
      f'numpy.{"save" if ext == ".npy" else "savez"}'
    )
  try:
    if ext == '.npy':
      return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as npz:
      keys = list(npz.keys())
      if NPZ_KEY in keys:
        return npz[NPZ_KEY]
      if len(keys) == 1:
        return npz[keys[0]]
      raise FeatureError(
        f'{where}: .npz has no {NPZ_KEY!r} array and more than one array to choose from; '
        f'keys: {keys}'
      )
  except FeatureError:
    raise
  except (OSError, ValueError, EOFError) as e:
    raise FeatureError(f'{where}: cannot read features ({type(e).__name__}: {e})') from e


def load_features(
  path: str | os.PathLike, *, expected_dim: int | None = None, video_id: str | None = None
) -> np.ndarray:
  """Loads one video's features as float32 ``[T, C]`` and checks them before they reach a model.

  Args:
    path: a ``.npy`` file, or a ``.npz`` file holding ``feats`` (or exactly one array).
    expected_dim: if given, the channel count ``C`` the model was built for.
    video_id: named in errors (defaults to the file's stem).

  Raises:
    FeatureError: the file is missing or unreadable, the array is not 2-D, has no time steps, has
      the wrong channel count (a transposed ``[C, T]`` array is called out as such) or holds
      NaN/Inf values.
  """
  path = os.fspath(path)
  if video_id is None:
    video_id = os.path.splitext(os.path.basename(path))[0]
  where = f'features of video {video_id!r} ({path})'
  if not os.path.isfile(path):
    raise FeatureError(f'{where}: file does not exist')
  feats = _read_array(path, where)
  if not (np.issubdtype(feats.dtype, np.floating) or np.issubdtype(feats.dtype, np.integer)):
    raise FeatureError(f'{where}: dtype {feats.dtype} is not numeric')
  if feats.ndim != 2:
    raise FeatureError(f'{where}: expected a 2-D [T, C] array, got shape {feats.shape}')
  if feats.shape[0] == 0:
    raise FeatureError(f'{where}: no time steps (shape {feats.shape})')
  if expected_dim is not None and feats.shape[1] != expected_dim:
    hint = ''
    if feats.shape[0] == expected_dim:
      hint = '; looks like [C, T]; expected [T, C]'
    raise FeatureError(
      f'{where}: channel dimension is {feats.shape[1]}, expected {expected_dim} '
      f'(shape {feats.shape}){hint}'
    )
  feats = np.asarray(feats, dtype=np.float32)
  bad = ~np.isfinite(feats)
  if bad.any():
    num_nan = int(np.isnan(feats).sum())
    raise FeatureError(
      f'{where}: {int(bad.sum())} non-finite values ({num_nan} NaN, '
      f'{int(bad.sum()) - num_nan} Inf) of {feats.size}'
    )
  return feats
