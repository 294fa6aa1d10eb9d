"""Reading the ActionFormer reference fixture into our layouts (shared by parity tests)."""

from __future__ import annotations

import json

import numpy as np


def load_fixture(path) -> dict:
  """The fixture as a dict of arrays plus its parsed config under 'config'."""
  z = np.load(path)
  out = {k: z[k] for k in z.files}
  out['config'] = json.loads(str(z['config_json']))
  return out


def padded_ground_truth(
  fx: dict, max_segments: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Both videos' segments/labels padded to ``max_segments`` with a validity mask."""
  b = len(fx['input/lengths'])
  segs = np.zeros((b, max_segments, 2), np.float32)
  labels = np.zeros((b, max_segments), np.int32)
  valid = np.zeros((b, max_segments), bool)
  for i in range(b):
    s, lab = fx[f'input/segments_{i}'], fx[f'input/labels_{i}']
    segs[i, : len(s)], labels[i, : len(s)], valid[i, : len(s)] = s, lab, True
  return segs, labels, valid


def points(fx: dict) -> np.ndarray:
  levels = sorted(k for k in fx if k.startswith('points_'))
  return np.concatenate([fx[k] for k in levels], axis=0)


def concat_levels(fx: dict, prefix: str) -> np.ndarray:
  levels = sorted((k for k in fx if k.startswith(prefix)), key=lambda k: int(k.rsplit('_', 1)[1]))
  return np.concatenate([fx[k] for k in levels], axis=1)
