"""Figures of a training run, as PNG files or TensorBoard images.

:func:`visualize_workdir` (the ``asl-visualize`` command) reads the workdir's ``config.json`` (or
``--config``), its latest checkpoint (EMA weights unless ``--use_raw_weights``), ``metrics.jsonl``
and ``detections.json`` (the detector is run for the videos it lacks) and writes into ``DIR``
(default ``WORKDIR/figures``):

  training_curves.png       every loss term, learning rate, gradient norm, Gaussian means by step
  class_gaussians.png       the learned class-level Gaussians (curves over d, mu +- sigma table)
  precision_recall.png      PR curves per tIoU on the evaluation split (mean and per class)
  ap_per_class.png          per-class AP bars, a dot per tIoU
  sensitivity_<video>.png   p_cls, p_sot, p_eot and q_cls, q_loc along the video's actions
  timeline_<video>.png      ground truth vs. top detections, seconds

``--video`` (repeatable) picks the videos of the last two, from any subset; by default the first
``--max_videos`` evaluation videos by id, those with ground truth first. The workdir and ``DIR``
may be local folders or buckets (``gs://...``: every path is an ``etils.epath``). In code:
:func:`build_figures`, :func:`save_figures` and :func:`figure_images` (``[N, H, W, 3]`` uint8 per
name, for ``MetricWriter.write_images``), which the training loop uses at each evaluation;
:func:`write_figures` and :func:`summary_images` combine them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence

import jax
import ml_collections
import numpy as np
from etils import epath
from matplotlib.figure import Figure

from asl_jax.data import pipeline
from asl_jax.evaluation import evaluator as evaluator_lib
from asl_jax.evaluation import metrics as metrics_lib
from asl_jax.visualization import (
  precision_recall,
  render,
  sensitivity,
  sensitivity_trajectories,
  timelines,
  training_curves,
)

logger = logging.getLogger(__name__)


def host_params(params):
  """Parameters as host numpy arrays (a replicated multi-process array gives its local copy)."""

  def local(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x)

  return jax.tree.map(local, params)


@functools.cache
def _forward(model):
  """Level-0 outputs the pictures need, jitted once per model (and per padded length)."""

  def forward(params, feats, mask):
    out = model.apply({'params': params}, feats, mask, deterministic=True)
    keep = {k: out[k] for k in ('cls_logits', 'q_cls', 'q_loc') if k in out}
    return keep, out['gaussians']

  return jax.jit(forward)


def level0_outputs(model, params, video: pipeline.Video, *, max_seq_len: int):
  """``({'q_cls', 'q_loc': [T], 'probs': [T, K]}, named Gaussians)`` of one video (level 0)."""
  t = len(video.feats)
  length = pipeline.eval_length(t, max_seq_len)
  feats = np.zeros((1, length, video.feats.shape[1]), np.float32)
  feats[0, :t] = video.feats
  mask = np.zeros((1, length), bool)
  mask[0, :t] = True
  out, gaussians = jax.device_get(_forward(model)(params, feats, mask))
  level0 = {k: np.asarray(out[k][0, :t]) for k in ('q_cls', 'q_loc') if k in out}
  level0['probs'] = 1.0 / (1.0 + np.exp(-np.asarray(out['cls_logits'][0, :t], np.float64)))
  return level0, sensitivity.named_gaussians(gaussians)


def _instances(video: pipeline.Video, max_instances: int) -> list[int]:
  """The longest ``max_instances`` actions of a video, in time order."""
  lengths = video.segments[:, 1] - video.segments[:, 0]
  longest = np.argsort(-lengths, kind='stable')[:max_instances]
  return sorted(longest.tolist(), key=lambda i: video.segments[i, 0])


def sensitivity_figure(
  model,
  params,
  video: pipeline.Video,
  class_names: Sequence[str],
  *,
  max_seq_len: int,
  max_instances: int = 3,
) -> Figure:
  level0, gaussians = level0_outputs(model, params, video, max_seq_len=max_seq_len)
  probs = level0.pop('probs')
  curves = []
  for i in _instances(video, max_instances):
    label = int(video.labels[i])
    curves.append(
      sensitivity.instance_curves(
        video_id=video.video_id,
        segment_grid=video.segments[i],
        label=label,
        class_name=class_names[label],
        geometry=video.geometry,
        gaussians=gaussians,
        level0={**level0, 'score': probs[:, label]},
      )
    )
  return sensitivity.plot_action_sensitivity(curves, columns=max_instances)


def gaussians_figure(model, params, config, class_names: Sequence[str]) -> Figure:
  length, dim = config.data.max_seq_len, config.data.input_dim
  video_like = np.zeros((1, length, dim), np.float32), np.ones((1, length), bool)
  _, gaussians = jax.device_get(_forward(model)(params, *video_like))
  return sensitivity.plot_class_gaussians(sensitivity.named_gaussians(gaussians), class_names)


def timeline_of(video: pipeline.Video, detections: Mapping[str, np.ndarray]) -> timelines.Timeline:
  return timelines.Timeline(
    video_id=video.video_id,
    duration=float(video.record.duration),
    gt_segments=np.asarray(video.record.segments_sec, np.float64).reshape(-1, 2),
    gt_labels=np.asarray(video.record.labels),
    segments=np.asarray(detections['segments'], np.float64).reshape(-1, 2),
    scores=np.asarray(detections['scores'], np.float64),
    labels=np.asarray(detections['labels'], np.int64),
  )


def shown_videos(videos: Sequence[pipeline.Video], max_videos: int) -> list[pipeline.Video]:
  """The first ``max_videos`` videos by id, those with ground truth first (they say the most)."""
  return sorted(videos, key=lambda v: (len(v.segments) == 0, v.video_id))[:max_videos]


def build_figures(
  *,
  config: ml_collections.ConfigDict,
  model,
  params,
  eval_videos: Sequence[pipeline.Video],
  class_names: Sequence[str],
  detections: Mapping[str, Mapping[str, np.ndarray]] | None = None,
  show_videos: Sequence[pipeline.Video] | None = None,
  history: training_curves.History | None = None,
  max_videos: int = 3,
  max_instances: int = 3,
  top_k: int = 10,
) -> dict[str, Figure]:
  """Every figure by name (``sensitivity/<video>`` and ``timeline/<video>`` per shown video).

  Args:
    eval_videos: the evaluation split (PR curves, AP bars, default shown videos).
    detections: ``Detector.detect`` output (seconds); computed for the videos it lacks.
    show_videos: videos for the per-video figures (default: :func:`shown_videos` of
      ``eval_videos``).
    history: ``read_metrics_jsonl`` output; no training-curves figure without it.
  """
  params = host_params(params)
  detections = dict(detections or {})
  if show_videos is None:
    show_videos = shown_videos(eval_videos, max_videos)
  missing = [v for v in [*eval_videos, *show_videos] if v.video_id not in detections]
  if missing:
    from asl_jax.train.build import build_detector

    unique = list({v.video_id: v for v in missing}.values())
    detections.update(build_detector(config, model).detect(params, unique))

  figures = {}
  if history:
    figures['training_curves'] = training_curves.plot_training_curves(history)
  if sensitivity_trajectories.has_trajectories(history):
    figures['sensitivity_trajectories'] = sensitivity_trajectories.plot_sensitivity_trajectories(
      history, class_names
    )
  figures['class_gaussians'] = gaussians_figure(model, params, config, class_names)
  gt = evaluator_lib.ground_truth_of(eval_videos)
  if len(gt):
    preds = evaluator_lib.predictions_of({v.video_id: detections[v.video_id] for v in eval_videos})
    tious = config.test.tiou_thresholds
    curves = precision_recall.precision_recall_curves(gt, preds, tious)
    figures['precision_recall'] = precision_recall.plot_precision_recall(curves, class_names)
    result = metrics_lib.compute_map(gt, preds, tious)
    figures['ap_per_class'] = precision_recall.plot_class_ap(
      result.per_class_ap, result.class_ids, result.tious, class_names
    )
  for video in show_videos:
    figures[f'sensitivity/{video.video_id}'] = sensitivity_figure(
      model,
      params,
      video,
      class_names,
      max_seq_len=config.data.max_seq_len,
      max_instances=max_instances,
    )
    figures[f'timeline/{video.video_id}'] = timelines.plot_timelines(
      [timeline_of(video, detections[video.video_id])], class_names, top_k=top_k
    )
  return figures


def save_figures(figures: Mapping[str, Figure], out_dir: str | os.PathLike) -> list[epath.Path]:
  """PNG per figure: ``<name>.png``, ``<kind>_<video>.png`` for ``<kind>/<video>`` names.

  Written through epath file objects, so ``out_dir`` may be a bucket (``gs://...``).
  """
  out_dir = epath.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = []
  for name, fig in figures.items():
    kind, _, video_id = name.partition('/')
    stem = f'{kind}_{render.file_stem(video_id)}' if video_id else kind
    path = out_dir / f'{stem}.png'
    with path.open('wb') as f:
      fig.savefig(f, format='png', facecolor='white')
    paths.append(path)
  return paths


def figure_images(figures: Mapping[str, Figure]) -> dict[str, np.ndarray]:
  """``{'figures/<kind>': [N, H, W, 3] uint8}``: per-video figures of a kind stacked (padded)."""
  grouped: dict[str, list[np.ndarray]] = {}
  for name, fig in figures.items():
    grouped.setdefault(name.partition('/')[0], []).append(render.to_array(fig))
  return {f'figures/{k}': render.stack_images(v) for k, v in grouped.items()}


def read_history(path: str | os.PathLike) -> training_curves.History | None:
  """A ``metrics.jsonl`` as :func:`training_curves.read_metrics_jsonl` reads it; None if absent."""
  path = epath.Path(path)
  return training_curves.read_metrics_jsonl(path) if path.is_file() else None


def write_figures(
  workdir: str | os.PathLike,
  *,
  out_dir: str | os.PathLike | None = None,
  **kwargs,
) -> list[epath.Path]:
  """Writes :func:`build_figures` as PNGs into ``out_dir`` (default ``workdir/figures``).

  ``history`` defaults to the workdir's ``metrics.jsonl``; the other keyword arguments are
  :func:`build_figures`'. Returns the files written.
  """
  workdir = epath.Path(workdir)
  out_dir = epath.Path(out_dir) if out_dir else workdir / 'figures'
  if kwargs.get('history') is None:
    kwargs['history'] = read_history(workdir / 'metrics.jsonl')
  paths = save_figures(build_figures(**kwargs), out_dir)
  logger.info('wrote %d figures to %s', len(paths), out_dir)
  return paths


def summary_images(**kwargs) -> dict[str, np.ndarray]:
  """:func:`build_figures` (same arguments) as images for ``MetricWriter.write_images``."""
  return figure_images(build_figures(**kwargs))


# ----------------------------------------------------------------------------------------------
# Reading a workdir.


def read_detections(
  path: str | os.PathLike, class_names: Sequence[str]
) -> dict[str, dict[str, np.ndarray]]:
  """An ActivityNet results JSON (``detections.json``) -> ``Detector.detect`` format."""
  index = {name: i for i, name in enumerate(class_names)}
  results = json.loads(epath.Path(path).read_text())['results']
  out = {}
  for vid, dets in results.items():
    unknown = {d['label'] for d in dets} - set(index)
    if unknown:
      raise ValueError(f'{path}: video {vid!r} has labels {sorted(unknown)} not in the label map')
    out[vid] = {
      'segments': np.array([d['segment'] for d in dets], np.float64).reshape(-1, 2),
      'scores': np.array([d['score'] for d in dets], np.float64),
      'labels': np.array([index[d['label']] for d in dets], np.int64),
    }
  return out


def videos_by_id(data: ml_collections.ConfigDict, annotations, video_ids: Sequence[str]):
  """The named videos, from any subset of the annotation file, loaded as training loads them
  (every feature format and set, the config's geometry)."""
  from asl_jax.data.feature_formats import FeatureReader

  records = {r.video_id: r for r in annotations.videos}
  unknown = [v for v in video_ids if v not in records]
  if unknown:
    raise ValueError(f'{data.annotation_file}: no video(s) {unknown}')
  with FeatureReader.from_config(data) as reader:
    return list(
      pipeline.iter_videos(
        [records[v] for v in video_ids], reader, **pipeline.geometry_from_config(data)
      )
    )


def visualize_workdir(
  workdir: str | os.PathLike,
  *,
  config: ml_collections.ConfigDict | None = None,
  video_ids: Sequence[str] = (),
  out_dir: str | os.PathLike | None = None,
  max_videos: int = 3,
  use_raw_weights: bool = False,
) -> list[epath.Path]:
  """What the command line does: figures of ``workdir``'s latest checkpoint."""
  from asl_jax import configuration
  from asl_jax import workdir as workdir_lib
  from asl_jax.model.build import build_model, params_template
  from asl_jax.train import checkpoint as checkpoint_lib

  config = workdir_lib.read_config(workdir, config)
  model = build_model(config)
  params, _, _ = checkpoint_lib.restore_params(
    workdir, params_template(model, config), use_raw_weights=use_raw_weights
  )
  eval_videos, annotations = pipeline.load_split_from_config(
    config.data, configuration.parse_subsets(config.data.eval_subset)
  )
  detections = None
  results = epath.Path(workdir) / 'detections.json'
  if results.is_file() and not use_raw_weights:
    detections = read_detections(results, annotations.class_names)
  show = None
  if video_ids:
    known = {v.video_id: v for v in eval_videos}
    others = videos_by_id(config.data, annotations, [v for v in video_ids if v not in known])
    known.update((v.video_id, v) for v in others)
    show = [known[v] for v in video_ids]
  return write_figures(
    workdir,
    out_dir=out_dir,
    config=config,
    model=model,
    params=params,
    eval_videos=eval_videos,
    class_names=annotations.class_names,
    detections=detections,
    show_videos=show,
    max_videos=max_videos,
  )
