"""Figures: a trained workdir's PNGs, TensorBoard arrays, and the numbers behind the pictures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from matplotlib import image as mpl_image

from asl_jax.data.geometry import FeatureGeometry
from asl_jax.evaluation import metrics as metrics_lib
from asl_jax.visualization import precision_recall, render, sensitivity, timelines, training_curves
from asl_jax.visualization import report as visualize
from tests.test_export import trained_workdir


def _check_png(path, min_width=500, min_height=250):
  assert path.is_file() and os.path.getsize(path) > 15_000, path
  image = mpl_image.imread(path)
  height, width = image.shape[:2]
  assert width >= min_width and height >= min_height, (path, image.shape)
  pixels = (image[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
  assert len(np.unique(pixels, axis=0)) > 50, f'{path} is (nearly) one colour'
  assert (pixels < 128).any(axis=1).mean() > 0.005, f'{path} has almost nothing drawn'


def test_workdir_figures(tmp_path_factory):
  config, workdir = trained_workdir(tmp_path_factory)
  data = json.loads(open(config.data.annotation_file).read())['database']
  train_id = sorted(v for v, a in data.items() if a['subset'] == config.data.train_subset)[0]
  out = tmp_path_factory.mktemp('figures')
  paths = visualize.visualize_workdir(workdir, out_dir=out, video_ids=[train_id])
  names = {p.name for p in paths}
  assert names == {
    'training_curves.png',
    'sensitivity_trajectories.png',
    'class_gaussians.png',
    'precision_recall.png',
    'ap_per_class.png',
    f'sensitivity_{train_id}.png',
    f'timeline_{train_id}.png',
  }
  for path in paths:
    _check_png(path)


def _timeline(video_id='v', n_det=6, seed=0):
  rng = np.random.default_rng(seed)
  starts = rng.uniform(0, 50, n_det)
  return timelines.Timeline(
    video_id=video_id,
    duration=60.0,
    gt_segments=np.array([[5.0, 12.0], [10.0, 20.0], [40.0, 48.5]]),
    gt_labels=np.array([0, 1, 2]),
    segments=np.stack([starts, starts + rng.uniform(1, 10, n_det)], 1),
    scores=rng.uniform(0, 1, n_det),
    labels=rng.integers(0, 3, n_det),
  )


def test_tensorboard_images_are_uint8_batches(tmp_path):
  names = ['walk', 'run', 'jump']
  figures = {
    'timeline/a': timelines.plot_timelines([_timeline('a')], names),
    'timeline/b': timelines.plot_timelines([_timeline('b', n_det=12, seed=1)], names),
    'training_curves': training_curves.plot_training_curves(
      {'loss': (np.arange(1, 4), np.array([3.0, 2.0, 1.5]))}
    ),
  }
  images = visualize.figure_images(figures)
  assert set(images) == {'figures/timeline', 'figures/training_curves'}
  batch = images['figures/timeline']
  assert batch.dtype == np.uint8 and batch.ndim == 4 and batch.shape[0] == 2
  assert batch.shape[-1] == 3 and batch.shape[1] > 200 and batch.shape[2] > 500
  assert batch.std() > 10
  paths = visualize.save_figures(figures, tmp_path)
  assert sorted(p.name for p in paths) == [
    'timeline_a.png',
    'timeline_b.png',
    'training_curves.png',
  ]


def test_lanes_never_overlap():
  rng = np.random.default_rng(0)
  starts = rng.uniform(0, 100, 200)
  segments = np.stack([starts, starts + rng.uniform(0, 20, 200)], 1)
  lanes = timelines.assign_lanes(segments)
  for lane in np.unique(lanes):
    segs = segments[lanes == lane]
    segs = segs[np.argsort(segs[:, 0])]
    assert np.all(segs[1:, 0] >= segs[:-1, 1])
  assert lanes.max() < 40


def test_pr_curves_give_compute_maps_per_class_ap():
  rng = np.random.default_rng(0)
  gt_rows, pred_rows = [], []
  for v in range(6):
    for _ in range(rng.integers(1, 5)):
      s = rng.uniform(0, 90)
      gt_rows.append((f'v{v}', s, s + rng.uniform(1, 10), int(rng.integers(0, 4))))
    for _ in range(30):
      s = rng.uniform(0, 90)
      score = round(float(rng.uniform()), 1)  # Ties on purpose.
      pred_rows.append((f'v{v}', s, s + rng.uniform(0.5, 12), int(rng.integers(0, 5)), score))
  gt_rows.append(('v0', 50.0, 50.0, 1))  # Zero-length GT and prediction: IoU NaN passes.
  pred_rows.append(('v0', 50.0, 50.0, 1, 0.95))
  gt = metrics_lib.GroundTruth.from_rows(gt_rows)
  preds = metrics_lib.Predictions.from_rows(pred_rows)
  tious = metrics_lib.TIOU_PRESETS['thumos14']
  curves = precision_recall.precision_recall_curves(gt, preds, tious)
  result = metrics_lib.compute_map(gt, preds, tious)
  np.testing.assert_array_equal(curves.class_ids, result.class_ids)
  np.testing.assert_allclose(curves.ap.T, result.per_class_ap, atol=1e-12)
  assert 0 < result.average_map < 1
  for t in range(len(tious)):
    for c in range(len(curves.class_ids)):
      assert np.all(np.diff(curves.recall[t][c]) >= 0)
  # The class-averaged interpolated curve is bounded by 1 and its area is close to the mAP.
  grid = np.linspace(0, 1, 1001)
  mean = precision_recall.mean_interpolated_precision(curves, 0, grid)
  assert np.all((0 <= mean) & (mean <= 1))
  assert np.trapezoid(mean, grid) == pytest.approx(result.map[0], abs=0.01)


def test_sensitivity_curves_follow_the_gaussians():
  geometry = FeatureGeometry(feat_stride=4, num_frames=16, fps=25)
  gaussians = sensitivity.named_gaussians(
    {
      'cls': (np.array([0.0, 0.1]), np.array([0.2, -0.3])),
      'loc': [(np.array([-0.5, -0.4]), np.array([0.1, 0.1])), (np.array([0.5, 0.4]), np.ones(2))],
    }
  )
  assert list(gaussians) == ['cls', 'start', 'end']
  assert gaussians['cls'][1][1] == pytest.approx(0.3)  # |sigma|, as the losses use it.
  level0 = {'q_cls': np.linspace(0, 1, 100), 'q_loc': np.full(100, 0.5)}
  curves = sensitivity.instance_curves(
    video_id='v',
    segment_grid=(20.0, 40.0),
    label=1,
    class_name='b',
    geometry=geometry,
    gaussians=gaussians,
    level0=level0,
  )
  t = np.arange(10, 51)  # 0.5 * length = 10 grid steps on each side.
  np.testing.assert_allclose(curves.times_sec, geometry.grid_to_sec(t))
  d = (t - 30.0) / 20.0
  want = np.exp(-((d + 0.4) ** 2) / 0.02)
  np.testing.assert_allclose(curves.class_level['start'], want, rtol=1e-5, atol=1e-7)
  assert np.argmax(curves.class_level['cls']) == 32 - 10  # mu 0.1 -> t = 30 + 0.1 * 20.
  np.testing.assert_allclose(curves.instance_level['q_cls'], level0['q_cls'][10:51])
  assert curves.segment_sec == pytest.approx(tuple(geometry.grid_to_sec(np.array([20, 40]))))
  image = render.to_array(sensitivity.plot_action_sensitivity([curves, curves], columns=3))
  assert image.dtype == np.uint8 and image.shape[2] == 3 and image.std() > 10


def test_metrics_jsonl_keeps_the_last_record_of_a_step(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  rows = [{'step': 1, 'loss': 3.0}, {'step': 2, 'loss': 2.0}, {'step': 2, 'loss': 2.5, 'lr': 1.0}]
  path.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
  history = training_curves.read_metrics_jsonl(path)
  np.testing.assert_array_equal(history['loss'][0], [1, 2])
  np.testing.assert_array_equal(history['loss'][1], [3.0, 2.5])
  np.testing.assert_array_equal(history['lr'][0], [2])
  path.write_text('{"step": 1, "loss": 1}\nnot json\n')
  with pytest.raises(ValueError, match='metrics.jsonl:2'):
    training_curves.read_metrics_jsonl(path)


def test_baseline_model_without_sensitivity_parts_still_draws():
  gaussians = sensitivity.named_gaussians({'cls': None, 'loc': []})
  assert gaussians == {}
  curves = sensitivity.instance_curves(
    video_id='v',
    segment_grid=(5.0, 9.0),
    label=0,
    class_name='a',
    geometry=FeatureGeometry(feat_stride=4, num_frames=16, fps=30),
    gaussians=gaussians,
    level0={'score': np.linspace(0, 1, 20)},
  )
  assert curves.class_level == {} and list(curves.instance_level) == ['score']
  for fig in (
    sensitivity.plot_action_sensitivity([curves]),
    sensitivity.plot_class_gaussians(gaussians, ['a', 'b']),
  ):
    assert render.to_array(fig).std() > 5


def test_shown_videos_have_ground_truth_first():
  from types import SimpleNamespace

  counts = {'a': 0, 'b': 2, 'c': 1, 'd': 0}
  videos = [SimpleNamespace(video_id=v, segments=np.zeros((n, 2))) for v, n in counts.items()]
  assert [v.video_id for v in visualize.shown_videos(videos, 3)] == ['b', 'c', 'a']
  assert visualize.read_history('/nonexistent/metrics.jsonl') is None
