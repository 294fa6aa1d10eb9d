"""A whole THUMOS14-shaped training run on one device: epochs, input overhead, evaluation time.

  python -m bench.device_training [--out bench/results_training.json] [--epochs 2] [--smoke]

Synthetic features at THUMOS14's shapes (200 training videos and 213 evaluation videos of
T <= 2304 feature steps, C = 2048, 20 classes; ``asl_jax.data.synthetic``) are written to a
scratch folder, then ``asl_jax.train.loop.train_and_evaluate`` runs the THUMOS14 model (full ASL,
batch 2, window 19, ``bench.bench_train.build_config``) for ``--epochs`` epochs and the final
evaluation, exactly as ``asl-train`` would (no TensorFlow needed). Reported:

- each epoch's wall time (from one epoch's first batch to the next one's), against the sum of its
  step times = steps x the median of a tight loop of the same compiled step on one batch (the
  device's work alone); their ratio is the input pipeline's and the loop's overhead (target 1.1);
- the final evaluation's wall time (EMA and raw weights, decoding and Soft-NMS included);
- the projected wall time of the paper's schedule (35 epochs: 30 + 5 warmup) plus one evaluation:
  start-up (data, compilation) + the first epoch + 34 x the last epoch + evaluation (target: 5
  minutes on an H200). The last epoch's wall runs until the evaluation starts, so it includes the
  final checkpoint's save: the projection errs long by up to one save per epoch.

``--smoke`` shrinks every shape (16 + 12 videos of T <= 128, C = 32, a small model) so the script
can be checked on a CPU in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time

PAPER_EPOCHS = 35  # THUMOS14: 30 epochs + 5 warmup (configs/thumos14_i3d.py).
TRAIN_VIDEOS, EVAL_VIDEOS = 200, 213


def build_config(root: pathlib.Path, epochs: int, smoke: bool, prefetch: int = 2):
  from bench import bench_train

  config = bench_train.build_config('asl', 2304)
  config.data.update(
    annotation_file=str(root / 'annotations.json'),
    feature_dir=str(root / 'features'),
    train_subset='training',
    eval_subset='validation',
  )
  config.train.update(
    num_epochs=epochs,
    min_steps=0,
    warmup_epochs=0,
    log_every_steps=50,
    checkpoint_every_steps=10**6,  # One checkpoint, at the end.
    write_figures=False,
  )
  config.data.prefetch_batches = prefetch
  if smoke:
    config.data.update(input_dim=32, max_seq_len=128)
    config.model.update(embed_dim=32, fpn_dim=32, head_dim=32, window_size=9)
    config.model.arch = (2, 1, 2)
    config.model.regression_ranges = ((0, 4), (4, 8), (8, 10000))
  return config


def synthesize(config, root: pathlib.Path, videos: tuple[int, int]) -> dict:
  from asl_jax.data import synthetic

  train, evaluate = videos
  total = train + evaluate
  t = config.data.max_seq_len
  return synthetic.synthesize_dataset(
    root,
    num_videos=total,
    subsets=(('training', train / total), ('validation', evaluate / total)),
    num_classes=config.data.num_classes,
    feature_dim=config.data.input_dim,
    min_len=int(0.8 * t),
    max_len=t,
  )


class _Timeline:
  """Wraps the loop's training batches and evaluations, recording when each begins and ends."""

  def __init__(self):
    self.epoch_starts: list[float] = []
    self.epoch_steps: list[int] = []
    self.evaluations: list[tuple[float, float]] = []

  # Modules through which the loop evaluates (whichever it has): their ``evaluate`` is timed.
  EVALUATORS = ('sharded', 'evaluator_lib')

  def install(self, loop) -> dict:
    """Patches ``loop``; returns what to put back."""
    real_batches = loop._train_batches
    saved = {'_train_batches': real_batches}
    timeline = self

    class Batches:
      def __init__(self, inner):
        self.inner = inner

      def __getattr__(self, name):
        return getattr(self.inner, name)

      def epoch(self, *args, **kwargs):
        timeline.epoch_starts.append(time.perf_counter())
        timeline.epoch_steps.append(0)
        for batch in self.inner.epoch(*args, **kwargs):
          timeline.epoch_steps[-1] += 1
          yield batch

    def timed(real_evaluate):
      def evaluate(*args, **kwargs):
        start = time.perf_counter()
        out = real_evaluate(*args, **kwargs)
        timeline.evaluations.append((start, time.perf_counter()))
        return out

      return evaluate

    loop._train_batches = lambda config: Batches(real_batches(config))
    for name in self.EVALUATORS:
      module = getattr(loop, name, None)
      if module is not None and hasattr(module, 'evaluate'):
        saved[name] = module
        setattr(loop, name, _Namespace(module, evaluate=timed(module.evaluate)))
    return saved


class _Namespace:
  """A module with some attributes replaced (the loop calls ``evaluator_lib.evaluate``)."""

  def __init__(self, module, **replaced):
    self.module, self.replaced = module, replaced

  def __getattr__(self, name):
    return self.replaced.get(name) or getattr(self.module, name)


def step_seconds(config, steps: int, steps_per_epoch: int) -> list[float]:
  """Times of ``steps`` steps of the training step on one batch.

  Built as the loop built it (same schedule, so the same program: read back from the cache).
  """
  import jax

  from asl_jax import parallel
  from asl_jax.train.build import create_training
  from bench import bench_train

  mesh = parallel.create_mesh()
  training = create_training(config, mesh, steps_per_epoch=steps_per_epoch)
  state = training.state
  batch = parallel.to_global(bench_train.make_batch(config), mesh)
  state, metrics = training.train_step(state, batch)  # Warm-up (compiled or read back).
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = training.train_step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return times


def timed_training(config, workdir: pathlib.Path, step_repeats: int) -> dict:
  """``train_and_evaluate(config, workdir)`` with its epochs and evaluations timed."""
  import jax

  from asl_jax.train import loop

  timeline = _Timeline()
  saved = timeline.install(loop)
  try:
    t0 = time.perf_counter()
    final = loop.train_and_evaluate(config, str(workdir))
    t_end = time.perf_counter()
  finally:
    for name, value in saved.items():
      setattr(loop, name, value)
  eval_start = timeline.evaluations[0][0]
  bounds = timeline.epoch_starts + [eval_start]
  epoch_wall = [b - a for a, b in zip(bounds, bounds[1:])]
  times = step_seconds(config, step_repeats, max(timeline.epoch_steps))
  step = statistics.median(times)
  steps = timeline.epoch_steps
  startup = timeline.epoch_starts[0] - t0
  evaluation = sum(b - a for a, b in timeline.evaluations)
  rows = [
    {
      'epoch': i + 1,
      'steps': n,
      'wall_s': wall,
      'sum_of_steps_s': n * step,
      'wall / steps': wall / (n * step),
    }
    for i, (n, wall) in enumerate(zip(steps, epoch_wall))
  ]
  # The first epoch includes the step's compilation (or its cache read); the last does not.
  projected = startup + epoch_wall[0] + (PAPER_EPOCHS - 1) * epoch_wall[-1] + evaluation
  wait = final['train_stats']['input_wait_s']
  return {
    'device': f'{jax.devices()[0].platform}: {jax.devices()[0].device_kind}',
    'startup_s': startup,
    'rows': rows,
    'step_s_median': step,
    'step_s_min': min(times),
    'evaluation_s': evaluation,
    'evaluations': len(timeline.evaluations),
    'prefetch_batches': config.data.prefetch_batches,
    # The loop's wait for batches (asl_jax/data/prefetch.py) over the training epochs' wall;
    # the last epoch alone leaves out the first step's compilation.
    'input_wait_s': wait,
    'input_wait_fraction': wait / sum(epoch_wall),
    'device_fraction': sum(steps) * step / sum(epoch_wall),
    'last_epoch_device_fraction': steps[-1] * step / epoch_wall[-1],
    'run_wall_s': t_end - t0,
    'projected_35_epochs_s': projected,
    'average_mAP_ema': final['ema']['average_mAP'],
  }


def run(
  epochs: int,
  smoke: bool,
  scratch: pathlib.Path,
  videos: tuple[int, int] | None = None,
  prefetch: int = 2,
) -> dict:
  root = scratch / 'data'
  t_start = time.perf_counter()
  config = build_config(root, epochs, smoke, prefetch)
  videos = videos or ((16, 12) if smoke else (TRAIN_VIDEOS, EVAL_VIDEOS))
  summary = synthesize(config, root, videos)
  synth_s = time.perf_counter() - t_start
  result = timed_training(config, scratch / 'workdir', 5 if smoke else 30)
  return {'smoke': smoke, 'videos': videos, 'synthesis_s': synth_s, 'data': summary, **result}


def table(result: dict) -> str:
  lines = ['| epoch | steps | wall s | sum of steps s | wall / steps |', '|' + '---:|' * 5]
  for r in result['rows']:
    lines.append(
      f'| {r["epoch"]} | {r["steps"]} | {r["wall_s"]:.2f} | {r["sum_of_steps_s"]:.2f} | '
      f'{r["wall / steps"]:.2f} |'
    )
  lines += [
    '',
    f'- step (tight loop, median): {1000 * result["step_s_median"]:.1f} ms; start-up (data '
    f'loading, model, compilation) {result["startup_s"]:.1f} s; final evaluation (EMA + raw '
    f'weights) {result["evaluation_s"]:.1f} s',
    f"- waiting for input: {100 * result['input_wait_fraction']:.1f}% of the epochs' wall time "
    f'(prefetch {result["prefetch_batches"]}); device steps: '
    f'{100 * result["device_fraction"]:.0f}%',
    f'- projected {PAPER_EPOCHS}-epoch run + the final evaluation: '
    f'{result["projected_35_epochs_s"] / 60:.1f} min (target 5 min on an H200)',
  ]
  return '\n'.join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default=None)
  parser.add_argument('--epochs', type=int, default=2)
  parser.add_argument('--smoke', action='store_true', help='tiny shapes, to check on a CPU')
  parser.add_argument('--scratch', default=None, help='folder for data and workdir (default: tmp)')
  parser.add_argument('--videos', default='', help='TRAIN,EVAL video counts (default 200,213)')
  parser.add_argument('--prefetch', type=int, default=2, help='data.prefetch_batches')
  args = parser.parse_args(argv)
  from asl_jax import compilation_cache

  compilation_cache.apply()  # As every command: the timing loop reads the run's step back.
  with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
    videos = tuple(int(n) for n in args.videos.split(',')) if args.videos else None
    result = run(args.epochs, args.smoke, pathlib.Path(scratch), videos, args.prefetch)
  result['table_markdown'] = table(result)
  print(result['table_markdown'], flush=True)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2, default=str))
  return result


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
