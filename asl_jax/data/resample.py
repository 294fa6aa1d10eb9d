"""Feature resampling along time (PyTorch-compatible linear interpolation) and multi-set concat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POLICIES = ('resample', 'error')


def interpolate_linear(feats: np.ndarray, new_len: int) -> np.ndarray:
  """Resizes ``[T, C]`` features to ``[new_len, C]`` exactly like PyTorch's linear interpolation.

  Matches ``F.interpolate(x[None].transpose(1, 2), size=new_len, mode='linear',
  align_corners=False)`` (what the reference's ``force_upsampling`` calls): output step ``i``
  reads source position ``src = (i + 0.5) * T / new_len - 0.5``, clamped at 0, and blends
  ``i0 = floor(src)`` with ``i1 = min(i0 + 1, T - 1)`` by ``lam = src - i0``. Index arithmetic is
  float32, as PyTorch's CPU kernel does for float32 inputs, so the weights agree bit for bit.
  ``jax.image.resize`` is not a substitute: it antialiases when downsampling.

  Args:
    feats: ``[T, C]`` array, ``T >= 1``.
    new_len: output length, ``>= 1``.

  Returns:
    ``[new_len, C]`` float32 (a copy even when ``new_len == T``).
  """
  feats = np.asarray(feats)
  if feats.ndim != 2 or feats.shape[0] < 1:
    raise ValueError(f'expected features of shape [T, C] with T >= 1, got {feats.shape}')
  if int(new_len) != new_len or new_len < 1:
    raise ValueError(f'new_len must be a positive integer, got {new_len!r}')
  t = feats.shape[0]
  feats = feats.astype(np.float32, copy=True)
  if new_len == t:
    return feats
  scale = np.float32(t) / np.float32(new_len)
  src = (np.arange(new_len, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
  src = np.maximum(src, np.float32(0.0))
  i0 = np.floor(src).astype(np.int64)
  i0 = np.minimum(i0, t - 1)  # Guards float32 rounding at the last step; PyTorch never exceeds.
  i1 = np.minimum(i0 + 1, t - 1)
  lam = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))[:, None]
  return (np.float32(1.0) - lam) * feats[i0] + lam * feats[i1]


def concat_feature_sets(
  feature_sets: Sequence[np.ndarray],
  *,
  policy: str = 'resample',
  names: Sequence[str] | None = None,
  video_id: str | None = None,
) -> np.ndarray:
  """Concatenates several ``[T_i, C_i]`` feature sets of one video along channels.

  Extractors with different strides give different ``T_i`` for the same video (the reference's
  Ego4D setup concatenates four). ``policy='resample'`` brings every set to the longest ``T``
  with :func:`interpolate_linear`; ``policy='error'`` refuses unequal lengths, for datasets whose
  sets are meant to be aligned already, where a mismatch means a broken file.

  Args:
    feature_sets: the sets, in channel order of the output.
    policy: ``'resample'`` or ``'error'``.
    names: one name per set (e.g. its folder), used in errors.
    video_id: named in errors.

  Returns:
    ``[max_i T_i, sum_i C_i]`` float32.
  """
  if policy not in POLICIES:
    raise ValueError(f'policy must be one of {POLICIES}, got {policy!r}')
  if not feature_sets:
    raise ValueError(f'video {video_id!r}: no feature sets to concatenate')
  names = list(names) if names is not None else [f'set {i}' for i in range(len(feature_sets))]
  if len(names) != len(feature_sets):
    raise ValueError(f'{len(names)} names given for {len(feature_sets)} feature sets')
  for name, feats in zip(names, feature_sets):
    if np.ndim(feats) != 2 or np.shape(feats)[0] < 1:
      raise ValueError(
        f'video {video_id!r}: feature set {name} has shape {np.shape(feats)}, expected [T, C]'
      )
  lengths = [int(np.shape(f)[0]) for f in feature_sets]
  target = max(lengths)
  if policy == 'error' and len(set(lengths)) > 1:
    detail = ', '.join(f'{name}: T={t}' for name, t in zip(names, lengths))
    raise ValueError(
      f'video {video_id!r}: feature sets differ in length ({detail}); use '
      "policy='resample' to interpolate them to the longest"
    )
  return np.concatenate([interpolate_linear(f, target) for f in feature_sets], axis=1)
