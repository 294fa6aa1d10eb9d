"""Evaluation speed: mAP and Soft-NMS against straightforward implementations, in one run.

python -m bench.bench_evaluation [--quick] [--out bench/results_evaluation.json]

Cases (synthetic, tie-free scores, fixed seeds):
* mAP, THUMOS-like: 200 videos, 20 classes, ~15 GT and 200 predictions per video, tIoU 0.3:0.7.
* mAP, ActivityNet-like: 5000 videos, 200 classes, 1-3 GT and 100 predictions per video, tIoU
  0.5:0.95; ours both cold (the jitted matcher's cache cleared before each call: compile
  included) and warm.
* Soft-NMS of one video, 2000 candidates over 20 classes (Gaussian, max 200): the NumPy version,
  the jitted batched version over 16 videos (time / 16) and the loop transcription.

Baselines: ``tests/evaluation/map_oracle.py`` (a loop-based transcription of ActivityNet's
evaluator) and ``tests/ops/nms_oracle.py`` (a scalar transcription of ActionFormer's C++ NMS).
Before timing, each case checks that ours agrees with its baseline (mAP to 1e-9; NMS: same rows,
labels and segments, scores within 1e-6), so the numbers are for correct code. Our times are
the median of N runs after one warm-up run (N = 5, or 2 with --quick), with min and max. The
pure-Python baselines need no warm-up and their first run is the agreement check; with --quick
the ActivityNet-like one runs once. The NMS oracle is timed per video on the videos it checks
(all 16, or 4 with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import numpy as np  # noqa: E402

from asl_jax.evaluation import metrics  # noqa: E402
from asl_jax.ops import nms  # noqa: E402
from tests.evaluation import map_oracle  # noqa: E402
from tests.ops import nms_oracle  # noqa: E402

# The cold timings must compile: no persistent compilation cache in this process.
jax.config.update('jax_enable_compilation_cache', False)

NMS_KWARGS = nms_oracle.REFERENCE_NMS  # ActionFormer's settings, as the tests use them.


# ----------------------------------------------------------------------------------------------
# Data.


def detection_case(
  seed: int,
  *,
  num_videos: int,
  num_classes: int,
  preds_per_video: int,
  gt_per_video: tuple[int, int],
  gt_len: tuple[float, float],
  duration: tuple[float, float],
) -> tuple[list[tuple], list[tuple]]:
  """GT rows (video, start, end, label) and prediction rows (+ score), detector-like.

  Each video has one or two action classes; 60% of its predictions are jittered copies of its
  GT (80% of those with the GT's class), the rest random segments and classes. Scores are
  distinct floats, so the mAP has no ties and both implementations must agree exactly.
  """
  rng = np.random.default_rng(seed)
  gt, preds = [], []
  for v in range(num_videos):
    vid = f'video_{v:05d}'
    length = rng.uniform(*duration)
    classes = rng.choice(num_classes, size=int(rng.integers(1, 3)), replace=False)
    rows = []
    for _ in range(int(rng.integers(gt_per_video[0], gt_per_video[1] + 1))):
      seg_len = min(rng.uniform(*gt_len), 0.9 * length)
      start = rng.uniform(0, length - seg_len)
      rows.append((vid, start, start + seg_len, int(rng.choice(classes))))
    gt += rows
    for _ in range(preds_per_video):
      if rng.random() < 0.6:
        _, s, e, label = rows[int(rng.integers(len(rows)))]
        jitter = 0.2 * (e - s)
        s, e = sorted((s + rng.normal(0, jitter), e + rng.normal(0, jitter)))
        s, e = max(s, 0.0), min(e, length)
        e = max(e, s)
        if rng.random() < 0.2:
          label = int(rng.integers(num_classes))
      else:
        s = rng.uniform(0, length)
        e = min(length, s + rng.uniform(0.5, 0.3 * length))
        label = int(rng.integers(num_classes))
      preds.append((vid, s, e, label, float(rng.random())))
  return gt, preds


def nms_videos(seed: int, *, num_videos: int, n: int, num_classes: int):
  """Candidates like a decoder's: segments around a few actions, skewed scores above 0.001."""
  rng = np.random.default_rng(seed)
  videos = []
  for _ in range(num_videos):
    centres = rng.uniform(20, 580, 12)
    which = rng.integers(0, len(centres), n)
    centre = centres[which] + rng.normal(0, 8, n)
    length = rng.uniform(2, 60, n)
    segs = np.stack([centre - length / 2, centre + length / 2], 1).astype(np.float32)
    scores = (0.001 + 0.999 * rng.uniform(size=n) ** 3).astype(np.float32)
    labels = rng.integers(0, num_classes, n).astype(np.int64)
    videos.append((segs, scores, labels))
  return videos


# ----------------------------------------------------------------------------------------------
# Timing.


def measure(fn, runs: int, *, warmup: bool = True, before=None) -> dict:
  """Median, min and max seconds of ``runs`` calls (after one untimed call if ``warmup``)."""
  if warmup:
    if before:
      before()
    fn()
  times = []
  for _ in range(runs):
    if before:
      before()
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return {
    'median_s': statistics.median(times),
    'min_s': min(times),
    'max_s': max(times),
    'runs': runs,
    'times_s': times,
  }


def scaled(m: dict, factor: float) -> dict:
  keys = ('median_s', 'min_s', 'max_s')
  return {**m, **{k: m[k] * factor for k in keys}, 'times_s': [t * factor for t in m['times_s']]}


# ----------------------------------------------------------------------------------------------
# Cases.


def timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def stats(times: list[float]) -> dict:
  return {
    'median_s': statistics.median(times),
    'min_s': min(times),
    'max_s': max(times),
    'runs': len(times),
    'times_s': times,
  }


def bench_map(
  name: str, gt_rows, pred_rows, tious, runs: int, *, cold: bool, baseline_runs: int
) -> list[dict]:
  """Ours (warm; cold too if asked) and the oracle, whose first run is the agreement check."""
  gt = metrics.GroundTruth.from_rows(gt_rows)
  preds = metrics.Predictions.from_rows(pred_rows)
  want, first = timed(lambda: map_oracle.evaluate(gt_rows, pred_rows, tious))
  baseline_times = [first] + [
    timed(lambda: map_oracle.evaluate(gt_rows, pred_rows, tious))[1]
    for _ in range(baseline_runs - 1)
  ]
  ours = metrics.compute_map(gt, preds, tious)
  err = max(
    float(np.abs(ours.per_class_ap - want['ap'].T).max()),
    float(np.abs(ours.map - want['map']).max()),
    abs(ours.average_map - want['average_map']),
  )
  if not err <= 1e-9:
    raise AssertionError(f'{name}: mAP differs from the baseline by {err}')
  print(
    f'{name}: {len(gt_rows)} GT, {len(pred_rows)} predictions, average mAP '
    f'{ours.average_map:.4f}, max |diff| vs baseline {err:.1e}',
    file=sys.stderr,
  )
  rows = []
  call = lambda: metrics.compute_map(gt, preds, tious)
  if cold:
    clear = metrics._match_locks.clear_cache
    rows.append(
      {
        'case': name,
        'impl': 'compute_map, cold (jit cache cleared: compile included)',
        **measure(call, runs, warmup=False, before=clear),
      }
    )
  rows.append({'case': name, 'impl': 'compute_map, warm', **measure(call, runs)})
  rows.append(
    {
      'case': name,
      'impl': 'baseline: map_oracle (loops)',
      'baseline': True,
      **stats(baseline_times),
    }
  )
  for r in rows:
    r['max_abs_diff_vs_baseline'] = err
  return rows


def bench_nms(
  runs: int, *, oracle_videos: int, batch: int = 16, n: int = 2000, num_classes: int = 20
) -> list[dict]:
  """Per-video times; the oracle is timed on the videos used for the agreement check."""
  videos = nms_videos(0, num_videos=batch, n=n, num_classes=num_classes)
  segs = np.stack([v[0] for v in videos])
  scores = np.stack([v[1] for v in videos])
  labels = np.stack([v[2] for v in videos]).astype(np.int32)
  valid = np.ones(scores.shape, bool)
  run_batched = lambda: jax.block_until_ready(
    nms.batched_soft_nms(segs, scores, labels, valid, num_classes=num_classes, **NMS_KWARGS)
  )
  out, compile_s = timed(lambda: jax.device_get(run_batched()))

  oracle_times = []
  for i, v in enumerate(videos[:oracle_videos]):
    want, seconds = timed(
      lambda v=v: nms_oracle.batched_nms(
        *v,
        iou_threshold=0.1,
        min_score=NMS_KWARGS['min_score'],
        max_seg_num=NMS_KWARGS['max_seg_num'],
        sigma=NMS_KWARGS['sigma'],
        voting_thresh=0.0,
      )
    )
    oracle_times.append(seconds)
    keep = out[3][i]
    got_jax = (out[0][i][keep], out[1][i][keep], out[2][i][keep])
    for label, got, score_tol in (
      ('soft_nms', nms.soft_nms(*v, **NMS_KWARGS), 0.0),
      ('batched_soft_nms', got_jax, 1e-6),  # XLA's exp is not glibc's: ~1 ulp per decay
    ):
      same = (
        got[1].shape == want[1].shape
        and np.array_equal(got[2], want[2])
        and np.array_equal(got[0], want[0])
        and np.abs(got[1] - want[1]).max() <= score_tol
      )
      if not same:
        raise AssertionError(f'Soft-NMS video {i}: {label} differs from the oracle')
  print(
    f'Soft-NMS: {oracle_videos} videos of {n} candidates agree with the oracle; batched '
    f'compile + first call {compile_s:.2f} s',
    file=sys.stderr,
  )

  case = f'Soft-NMS, 1 video, {n} candidates, {num_classes} classes'
  per_video = 1.0 / batch
  numpy_all = measure(lambda: [nms.soft_nms(*v, **NMS_KWARGS) for v in videos], runs)
  return [
    {
      'case': case,
      'impl': f'soft_nms (NumPy), mean of {batch} videos',
      **scaled(numpy_all, per_video),
    },
    {
      'case': case,
      'impl': f'batched_soft_nms (jit, batch of {batch}) / {batch}',
      'compile_and_first_call_s': compile_s,
      **scaled(measure(run_batched, runs), per_video),
    },
    {
      'case': case,
      'impl': 'baseline: nms_oracle (scalar loops), per video',
      'baseline': True,
      **stats(oracle_times),
    },
  ]


# ----------------------------------------------------------------------------------------------
# Report.


def fmt(seconds: float) -> str:
  if seconds >= 1:
    return f'{seconds:.2f} s'
  if seconds >= 1e-3:
    return f'{seconds * 1e3:.1f} ms'
  return f'{seconds * 1e6:.0f} us'


def markdown(rows: list[dict]) -> str:
  lines = [
    '| case | implementation | median | min - max | runs | speed-up vs baseline |',
    '|---|---|---|---|---|---|',
  ]
  baselines = {r['case']: r['median_s'] for r in rows if r.get('baseline')}
  for r in rows:
    ratio = '1 (baseline)' if r.get('baseline') else f'{baselines[r["case"]] / r["median_s"]:.1f}x'
    lines.append(
      f'| {r["case"]} | {r["impl"]} | {fmt(r["median_s"])} | '
      f'{fmt(r["min_s"])} - {fmt(r["max_s"])} | {r["runs"]} | {ratio} |'
    )
  return '\n'.join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='2 runs per measurement, not 5')
  parser.add_argument('--out', default='bench/results_evaluation.json', help='JSON results')
  args = parser.parse_args(argv)
  runs = 2 if args.quick else 5
  load_before = os.getloadavg()
  t0 = time.time()

  rows = []
  thumos = detection_case(
    1,
    num_videos=200,
    num_classes=20,
    preds_per_video=200,
    gt_per_video=(5, 25),
    gt_len=(1.0, 15.0),
    duration=(60.0, 300.0),
  )
  rows += bench_map(
    'mAP, THUMOS-like (200 videos, 20 classes, 40k predictions)',
    *thumos,
    metrics.TIOU_PRESETS['thumos14'],
    runs,
    cold=False,
    baseline_runs=runs,
  )
  anet = detection_case(
    2,
    num_videos=5000,
    num_classes=200,
    preds_per_video=100,
    gt_per_video=(1, 3),
    gt_len=(5.0, 100.0),
    duration=(30.0, 200.0),
  )
  rows += bench_map(
    'mAP, ActivityNet-like (5000 videos, 200 classes, 500k predictions)',
    *anet,
    metrics.TIOU_PRESETS['activitynet'],
    runs,
    cold=True,
    baseline_runs=1 if args.quick else runs,  # ~15 s a run (pure Python)
  )
  rows += bench_nms(runs, oracle_videos=4 if args.quick else 16)

  table = markdown(rows)
  print(table)
  result = {
    'benchmark': 'evaluation',
    'quick': args.quick,
    'machine': {
      'platform': platform.platform(),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'cpu_count': os.cpu_count(),
      'load_average_before': load_before,
      'load_average_after': os.getloadavg(),
    },
    'wall_s': time.time() - t0,
    'rows': rows,
    'table_markdown': table,
  }
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=2)
    print(f'wrote {args.out}', file=sys.stderr)
  return result


if __name__ == '__main__':
  main()
