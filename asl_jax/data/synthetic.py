"""Writes a synthetic temporal-action-localization benchmark in ActionFormer's on-disk layout.

Output (``DIR``):
  annotations.json   {"version": "synthetic-1", "database": {vid: {subset, duration, fps,
                     annotations: [{segment: [start_sec, end_sec], label, label_id}]}}}
  features/<vid>.npy float32 [T, C]

What the features hold, and why (ASL, Shao et al. ICCV 2023, learns that frames of an action
matter unequally):
  * Every class has three sub-action prototypes (start, middle, end): unit vectors that share a
    small per-part component with the other classes, so classes differ only through their
    sub-actions. An instance of N grid steps is split into start/middle/end parts with
    proportions drawn per instance around (0.25, 0.5, 0.25); each part paints its prototype
    (times the instance's amplitude) onto its frames, so the start and end patterns mark the
    boundaries.
  * A fraction of the frames inside an action is transitional: its amplitude is cut to
    ``weak_scale``. These frames carry little evidence and should matter less.
  * Background is Gaussian noise plus a few slowly varying distractor patterns shared by all
    videos; each distractor leans towards some class's middle prototype, so a detector has to
    see the start/end sub-actions (and the sharp onset) to tell an action from a distractor.
  * Instances of one class never overlap; with probability ``overlap_prob`` a new instance is
    placed across one of another class (dense labels, where the features add), overlapping it by
    at least ``min_overlap_frac`` of the shorter one.
  * Dense, MultiThumos-like data (``configs/demo.py:dense``): many instances per video, most of
    them across others with long overlaps, and per-class sub-action proportions
    (``class_part_concentration``) so the informative frames sit at different relative places
    for different classes.
  * Instance lengths are log-uniform from ``min_instance_len`` grid steps to ``max_instance_frac``
    of the video, so every pyramid level's regression range is used.

Time convention: an instance painted on grid indices ``g0 .. g0 + N - 1`` is the segment
``[g0 - 0.5, g0 + N - 0.5]`` in grid units (the union of its frames' cells, length N), written in
seconds with :func:`asl_jax.data.geometry.grid_to_sec` and rounded to 3 decimals; converting back
with ``sec_to_grid`` is within 0.01 grid steps of those cell edges for the default geometry.

Every video has its own random stream derived from ``(seed, video index)``, so video ``i`` is
identical whatever ``num_videos`` is; only the subset split depends on ``num_videos``.

Usage:
  asl-synthesize --out=/tmp/synth --num_videos=240 --num_classes=8 --feature_dim=64 --seed=0
  (or python -m asl_jax.cli.synthesize with the same flags)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading

import numpy as np

from asl_jax.data.geometry import grid_to_sec

VERSION = 'synthetic-1'
PARTS = ('start', 'middle', 'end')
SEGMENT_DECIMALS = 3  # Seconds are written with this many decimals.
# SynthesisSpec fields of the instance layout that configs may set (data.synthetic.<field>).
LAYOUT_FIELDS = (
  'min_instances',
  'max_instances',
  'overlap_prob',
  'min_overlap_frac',
  'class_part_concentration',
)

# Stream ids mixed into the seed so class patterns and per-video draws never share a stream.
_PATTERN_STREAM = 0
_VIDEO_STREAM = 1


@dataclasses.dataclass(frozen=True)
class SynthesisSpec:
  """Every knob of the generator; defaults are what the demo configuration trains on."""

  num_classes: int = 8
  feature_dim: int = 64
  seed: int = 0
  # Geometry (THUMOS14-like I3D features): seconds <-> grid as in asl_jax.data.geometry.
  feat_stride: int = 4
  num_frames: int = 16
  fps: float = 30.0
  # Video length T in grid steps, uniform in [min_len, max_len].
  min_len: int = 128
  max_len: int = 512
  # Instances per video, uniform in [min_instances, max_instances] (fewer if they do not fit).
  min_instances: int = 2
  max_instances: int = 8
  # Instance length in grid steps, log-uniform in [min_instance_len, max_instance_frac * T].
  min_instance_len: int = 3
  max_instance_frac: float = 0.6
  # Probability that an instance (after a video's first) is placed across another class's.
  overlap_prob: float = 0.2
  # Norm of a prototype pattern per frame, relative to noise_std per channel; each instance
  # scales it by a factor uniform in [1 - amplitude_jitter, 1 + amplitude_jitter].
  signal_amplitude: float = 4.0
  amplitude_jitter: float = 0.25
  noise_std: float = 1.0
  # Mean start/middle/end proportions, and the Dirichlet concentration of their per-instance
  # variation (higher = closer to the mean).
  part_proportions: tuple[float, float, float] = (0.25, 0.5, 0.25)
  part_concentration: float = 12.0
  # Per-class mean proportions (the dense, MultiThumos-like variant): 0 gives every class
  # part_proportions; > 0 draws each class its own mean from a Dirichlet with this concentration
  # around part_proportions (lower = classes differ more), so where a class's informative frames
  # lie differs between classes and per-class Gaussians have something to learn.
  class_part_concentration: float = 0.0
  # An instance placed across another one overlaps it by at least this fraction of the shorter
  # of the two (0: any overlap of one frame or more); long overlaps make labels dense.
  min_overlap_frac: float = 0.0
  # Fraction of the (cosine) similarity that prototypes of one part share across classes.
  shared_fraction: float = 0.25
  # Transitional frames: each action frame is weak with this probability, scaled by weak_scale.
  weak_frame_prob: float = 0.15
  weak_scale: float = 0.15
  # Background distractors: patterns shared by all videos, active with a slowly varying,
  # rectified Gaussian-process amplitude (correlation length in grid steps).
  num_distractors: int = 4
  distractor_amplitude: float = 1.5
  distractor_timescale: float = 12.0
  distractor_similarity: float = 0.3  # Squared cosine with one class's middle prototype.

  def __post_init__(self):
    checks = {
      'seed': self.seed >= 0,
      'num_classes': self.num_classes >= 1,
      'feature_dim': self.feature_dim >= 1,
      'feat_stride': self.feat_stride > 0,
      # A window at least one stride wide keeps every cell edge, so every segment, inside
      # [0, duration].
      'num_frames': self.num_frames >= self.feat_stride,
      'fps': self.fps > 0,
      'min_len': self.min_len >= 3,
      'max_len': self.max_len >= self.min_len,
      'min_instances': self.min_instances >= 1,
      'max_instances': self.max_instances >= self.min_instances,
      'min_instance_len': self.min_instance_len >= 3,
      'max_instance_frac': 0 < self.max_instance_frac <= 1,
      'overlap_prob': 0 <= self.overlap_prob <= 1,
      'class_part_concentration': self.class_part_concentration >= 0,
      'min_overlap_frac': 0 <= self.min_overlap_frac <= 1,
      'weak_frame_prob': 0 <= self.weak_frame_prob < 1,
      'shared_fraction': 0 <= self.shared_fraction < 1,
      'distractor_similarity': 0 <= self.distractor_similarity < 1,
      'part_proportions': len(self.part_proportions) == 3 and min(self.part_proportions) > 0,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
      raise ValueError(f'invalid synthesis settings: {bad} ({self})')
    if self.min_instance_len > self.min_len:
      raise ValueError(
        f'min_instance_len={self.min_instance_len} does not fit in min_len={self.min_len}'
      )


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
  """One generated video: its features and the ground truth that was painted into them."""

  features: np.ndarray  # [T, C] float32.
  starts: np.ndarray  # [N] int, first painted grid index of each instance.
  # [N] int, painted grid steps (the segment is [start - .5, start + len - .5]).
  lengths: np.ndarray
  labels: np.ndarray  # [N] int.
  part_lengths: np.ndarray  # [N, 3] int, start/middle/end grid steps (sum = lengths).
  weak: np.ndarray  # [T] bool, frames inside some instance whose signal was weakened.


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def class_patterns(spec: SynthesisSpec) -> tuple[np.ndarray, np.ndarray]:
  """Unit-norm prototypes ``[K, 3, C]`` (start/middle/end) and distractor patterns ``[D, C]``.

  Drawn in a fixed order (shared parts, then class by class, then distractors) so that adding
  classes does not change the earlier classes' prototypes.
  """
  rng = np.random.default_rng([spec.seed, _PATTERN_STREAM])
  c, k = spec.feature_dim, spec.num_classes
  shared = _unit(rng.standard_normal((3, c)))
  specific = _unit(rng.standard_normal((k, 3, c)))
  a = np.sqrt(spec.shared_fraction)
  prototypes = _unit(a * shared[None] + np.sqrt(1 - a**2) * specific)
  drng = np.random.default_rng([spec.seed, _PATTERN_STREAM, 1])
  mimicked = drng.integers(0, k, size=spec.num_distractors)
  b = np.sqrt(spec.distractor_similarity)
  distractors = _unit(
    b * prototypes[mimicked, 1]
    + np.sqrt(1 - b**2) * _unit(drng.standard_normal((spec.num_distractors, c)))
  )
  return prototypes, distractors.reshape(spec.num_distractors, c)


def class_part_means(spec: SynthesisSpec) -> np.ndarray:
  """``[K, 3]`` mean start/middle/end proportions per class (all ``part_proportions`` unless
  ``class_part_concentration > 0``); drawn from their own stream, so prototypes do not change."""
  mean = np.asarray(spec.part_proportions, np.float64) / sum(spec.part_proportions)
  if spec.class_part_concentration <= 0:
    return np.tile(mean, (spec.num_classes, 1))
  rng = np.random.default_rng([spec.seed, _PATTERN_STREAM, 2])
  means = rng.dirichlet(spec.class_part_concentration * mean, size=spec.num_classes)
  return np.maximum(means, 0.02) / np.maximum(means, 0.02).sum(-1, keepdims=True)


def _place_instances(
  rng: np.random.Generator, t: int, spec: SynthesisSpec
) -> list[tuple[int, int, int]]:
  """Draws (start, length, label) triples; same-class instances keep at least one frame apart.

  An instance that finds no room after 30 tries (halving its length after 10 and 20) is dropped,
  so a crowded short video can end up with fewer than ``min_instances``.
  """
  placed: list[tuple[int, int, int]] = []
  max_instance_len = max(spec.min_instance_len, int(spec.max_instance_frac * t))
  log_lo, log_hi = np.log(spec.min_instance_len), np.log(max_instance_len + 0.5)
  for _ in range(int(rng.integers(spec.min_instances, spec.max_instances + 1))):
    length = int(
      np.clip(round(np.exp(rng.uniform(log_lo, log_hi))), spec.min_instance_len, max_instance_len)
    )
    across = spec.num_classes > 1 and bool(placed) and rng.random() < spec.overlap_prob
    for attempt in range(30):
      if attempt in (10, 20):  # A crowded video: try a shorter instance before giving up.
        length = max(spec.min_instance_len, length // 2)
      if across:
        h_start, h_len, h_label = placed[int(rng.integers(len(placed)))]
        label = int((h_label + rng.integers(1, spec.num_classes)) % spec.num_classes)
        need = max(1, int(np.ceil(spec.min_overlap_frac * min(length, h_len))))
        lo, hi = max(0, h_start - length + need), min(t - length, h_start + h_len - need)
        if lo > hi:
          continue
        start = int(rng.integers(lo, hi + 1))
      else:
        label = int(rng.integers(spec.num_classes))
        start = int(rng.integers(0, t - length + 1))
      # Intervals grown by one frame must be disjoint: same class always, others unless across.
      if all(
        start + length + 1 <= s or s + n + 1 <= start
        for s, n, k in placed
        if k == label or not across
      ):
        placed.append((start, length, label))
        break
  return placed


def _split_parts(
  rng: np.random.Generator, length: int, spec: SynthesisSpec, mean: np.ndarray
) -> np.ndarray:
  """Start/middle/end lengths (each >= 1) from Dirichlet proportions around ``mean``."""
  alpha = spec.part_concentration * mean
  p = rng.dirichlet(alpha)
  first = max(1, int(round(p[0] * length)))
  last = max(1, int(round(p[2] * length)))
  while length - first - last < 1:
    if first >= last:
      first -= 1
    else:
      last -= 1
  return np.array([first, length - first - last, last])


def _smooth_activation(rng: np.random.Generator, t: int, d: int, timescale: float) -> np.ndarray:
  """``[T, D]`` rectified, slowly varying activations (Gaussian-smoothed white noise)."""
  half = int(3 * timescale)
  kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / timescale) ** 2)
  kernel /= np.sqrt((kernel**2).sum())  # Unit variance after smoothing.
  white = rng.standard_normal((t + 2 * half, d))
  smooth = np.stack([np.convolve(white[:, j], kernel, mode='valid') for j in range(d)], axis=1)
  return np.maximum(smooth, 0.0)


def generate_video(
  spec: SynthesisSpec,
  index: int,
  patterns: tuple[np.ndarray, np.ndarray] | None = None,
) -> SyntheticVideo:
  """Generates video ``index`` (deterministic in ``(spec, index)``)."""
  prototypes, distractors = class_patterns(spec) if patterns is None else patterns
  part_means = class_part_means(spec)
  rng = np.random.default_rng([spec.seed, _VIDEO_STREAM, index])
  t = int(rng.integers(spec.min_len, spec.max_len + 1))
  instances = _place_instances(rng, t, spec)

  feats = spec.noise_std * rng.standard_normal((t, spec.feature_dim), dtype=np.float32)
  if spec.num_distractors:
    act = _smooth_activation(rng, t, spec.num_distractors, spec.distractor_timescale)
    feats += (spec.distractor_amplitude * act @ distractors).astype(np.float32)

  weak = np.zeros(t, bool)
  parts = np.zeros((len(instances), 3), np.int64)
  for i, (start, length, label) in enumerate(instances):
    parts[i] = _split_parts(rng, length, spec, part_means[label])
    amplitude = spec.signal_amplitude * rng.uniform(
      1 - spec.amplitude_jitter, 1 + spec.amplitude_jitter
    )
    gain = np.where(rng.random(length) < spec.weak_frame_prob, spec.weak_scale, 1.0)
    weak[start : start + length] |= gain < 1.0
    part_of_frame = np.repeat(np.arange(3), parts[i])
    signal = amplitude * gain[:, None] * prototypes[label, part_of_frame]
    feats[start : start + length] += signal.astype(np.float32)

  order = sorted(range(len(instances)), key=lambda i: instances[i][:2])
  return SyntheticVideo(
    features=feats,
    starts=np.array([instances[i][0] for i in order], np.int64),
    lengths=np.array([instances[i][1] for i in order], np.int64),
    labels=np.array([instances[i][2] for i in order], np.int64),
    part_lengths=parts[order].reshape(-1, 3),
    weak=weak,
  )


def class_names(num_classes: int) -> list[str]:
  return [f'action_{k:02d}' for k in range(num_classes)]


def video_id(index: int) -> str:
  return f'synth_{index:05d}'


def _subset_sizes(num_videos: int, subsets: tuple[tuple[str, float], ...]) -> list[int]:
  """Largest-remainder split of ``num_videos`` by the subset fractions (sizes sum exactly)."""
  fractions = np.array([f for _, f in subsets], np.float64)
  if len(subsets) == 0 or (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
    raise ValueError(f'subset fractions must be >= 0 and sum to 1, got {subsets}')
  if len({name.lower() for name, _ in subsets}) != len(subsets):
    raise ValueError(f'subset names must differ (case-insensitively), got {subsets}')
  raw = fractions * num_videos
  sizes = np.floor(raw).astype(int)
  for i in np.argsort(-(raw - sizes), kind='stable')[: num_videos - sizes.sum()]:
    sizes[i] += 1
  return sizes.tolist()


@contextlib.contextmanager
def _replacing(path: str, mode: str):
  """Writes ``path`` whole or not at all (a private file, then an atomic rename).

  Two runs started at once on a missing dataset both generate it (the same bytes, from the seed):
  neither may read a feature file while the other is half-way through rewriting it.
  """
  part = f'{path}.part-{os.getpid()}-{threading.get_ident()}'
  try:
    with open(part, mode) as f:
      yield f
    os.replace(part, path)
  finally:
    if os.path.exists(part):
      os.remove(part)


def synthesize_dataset(
  out_dir: str | os.PathLike,
  *,
  num_videos: int = 200,
  subsets: tuple[tuple[str, float], ...] = (('training', 0.75), ('validation', 0.25)),
  **spec_kwargs,
) -> dict:
  """Writes ``out_dir/annotations.json`` and ``out_dir/features/<vid>.npy``; returns a summary.

  ``spec_kwargs`` are :class:`SynthesisSpec` fields (num_classes=8, feature_dim=64, seed=0,
  feat_stride=4, num_frames=16, fps=30.0, min_len=128, max_len=512, overlap_prob=0.2, ...).
  Videos ``0 .. n_0 - 1`` form the first subset, the next ``n_1`` the second, and so on.
  """
  spec = SynthesisSpec(**spec_kwargs)
  if num_videos < 1:
    raise ValueError(f'num_videos must be >= 1, got {num_videos}')
  sizes = _subset_sizes(num_videos, tuple(subsets))
  subset_of = [name for (name, _), n in zip(subsets, sizes) for _ in range(n)]
  out_dir = os.fspath(out_dir)
  feature_dir = os.path.join(out_dir, 'features')
  os.makedirs(feature_dir, exist_ok=True)

  patterns = class_patterns(spec)
  names = class_names(spec.num_classes)
  geometry = dict(fps=spec.fps, feat_stride=spec.feat_stride, num_frames=spec.num_frames)
  database = {}
  instances = {name: 0 for name, _ in subsets}
  for index in range(num_videos):
    video = generate_video(spec, index, patterns)
    vid = video_id(index)
    with _replacing(os.path.join(feature_dir, f'{vid}.npy'), 'wb') as f:
      np.save(f, video.features)
    t = video.features.shape[0]
    seg_grid = np.stack([video.starts - 0.5, video.starts + video.lengths - 0.5], axis=-1)
    duration = ((t - 1) * spec.feat_stride + spec.num_frames) / spec.fps
    # Rounding must not push the last cell's end past the duration (num_frames == feat_stride).
    last_sec = np.floor(duration * 10**SEGMENT_DECIMALS) / 10**SEGMENT_DECIMALS
    seg_sec = np.clip(np.round(grid_to_sec(seg_grid, **geometry), SEGMENT_DECIMALS), 0, last_sec)
    database[vid] = {
      'subset': subset_of[index],
      'duration': duration,
      'fps': spec.fps,
      'annotations': [
        {'segment': [float(s), float(e)], 'label': names[k], 'label_id': int(k)}
        for (s, e), k in zip(seg_sec.tolist(), video.labels.tolist())
      ],
    }
    instances[subset_of[index]] += len(video.labels)

  annotations_path = os.path.join(out_dir, 'annotations.json')
  with _replacing(annotations_path, 'w') as f:
    json.dump({'version': VERSION, 'database': database}, f, indent=1)
  return {
    'path': out_dir,
    'annotations': annotations_path,
    'feature_dir': feature_dir,
    'num_videos': num_videos,
    'videos_per_subset': {name: n for (name, _), n in zip(subsets, sizes)},
    'instances_per_subset': instances,
    'num_instances': sum(instances.values()),
    'class_names': names,
    'spec': dataclasses.asdict(spec),
  }
