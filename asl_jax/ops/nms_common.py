"""What the NumPy and the jitted soft-NMS share: method names, argument checks, area epsilon."""

from __future__ import annotations

import numpy as np

METHODS = ('gaussian', 'linear', 'hard')

# The reference adds float32(1e-6) to every length before an IoU (``areas = x2 - x1 + 1e-6``).
AREA_EPS = np.float32(1e-6)


def check_args(method: str, max_seg_num: int) -> None:
  """Raises ``ValueError`` for an unknown ``method`` or ``max_seg_num < 1``."""
  if method not in METHODS:
    raise ValueError(f'method must be one of {METHODS}, got {method!r}')
  if max_seg_num < 1:
    raise ValueError(f'max_seg_num must be >= 1, got {max_seg_num}')
