"""Two training steps and a full evaluation on the tiny synthetic config, through the real loop."""

import json
import pathlib

import pytest

from asl_jax.train import loop
from tests.train.helpers import tiny_config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp('e2e')
  config = tiny_config(tmp_path)
  config.train.write_figures = True
  workdir = tmp_path / 'workdir'
  result = loop.train_and_evaluate(config, str(workdir))
  return config, workdir, result


def test_two_steps_then_evaluation_artefacts(trained):
  config, workdir, result = trained
  assert result['step'] == 2
  assert (
    json.loads((workdir / 'config.json').read_text())['data']['num_classes']
    == config.data.num_classes
  )
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()) == [
    '1',
    '2',
  ]
  assert list(workdir.glob('events.out.tfevents.*')), 'no TensorBoard event file'
  figures = sorted(p.name for p in (workdir / 'figures').glob('*.png'))
  for kind in ('training_curves', 'class_gaussians', 'precision_recall', 'ap_per_class'):
    assert any(f.startswith(kind) for f in figures), (kind, figures)
  assert any(f.startswith('timeline_') for f in figures) and any(
    f.startswith('sensitivity_') for f in figures
  )
  assert all((workdir / 'figures' / f).stat().st_size > 10_000 for f in figures)
  logged = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in logged] == [1, 2]
  assert {'loss', 'cls_loss', 'reg_loss', 'num_pos', 'grad_norm', 'learning_rate'} <= set(logged[0])
  # Sensitivity diagnostics and each class's Gaussians, per log step; their trajectories figure.
  assert {'sensitivity/p_cls_pos', 'sensitivity/q_loc_pos', 'sensitivity/p_loc_ratio'} <= set(
    logged[0]
  )
  for name in ('cls', 'start', 'end'):
    for param in ('mu', 'sigma'):
      assert f'sensitivity/{name}_{param}/{config.data.num_classes - 1}' in logged[0]
  assert 'sensitivity_trajectories.png' in figures

  metrics = json.loads((workdir / 'metrics.json').read_text())
  for weights in ('ema', 'raw'):
    m = metrics[weights]
    assert len(m['mAP']) == len(config.test.tiou_thresholds)
    assert 0.0 <= m['average_mAP'] <= 1.0

  detections = json.loads((workdir / 'detections.json').read_text())['results']
  annotations = json.loads(pathlib.Path(config.data.annotation_file).read_text())['database']
  eval_ids = {v for v, a in annotations.items() if a['subset'] == config.data.eval_subset}
  assert set(detections) == eval_ids  # Every evaluation video, once.
  names = set()
  for vid, dets in detections.items():
    assert len(dets) <= config.test.max_seg_num
    for d in dets:
      s, e = d['segment']
      assert 0.0 <= s <= e <= annotations[vid]['duration'] + 1e-6
      names.add(d['label'])
  assert names <= {a['label'] for v in annotations.values() for a in v['annotations']}


def test_rerun_resumes_from_checkpoint_without_training(trained):
  config, workdir, first = trained
  again = loop.train_and_evaluate(config, str(workdir))
  assert again['step'] == first['step']
  assert again['ema']['average_mAP'] == pytest.approx(first['ema']['average_mAP'], abs=1e-9)


def test_eval_mode_reevaluates_the_checkpoint(trained):
  config, workdir, first = trained
  again = loop.train_and_evaluate(config, str(workdir), train=False)
  assert again['step'] == first['step'] and 'train_stats' not in again
  assert again['raw']['mAP'] == pytest.approx(first['raw']['mAP'], abs=1e-9)


def test_eval_mode_without_checkpoint_fails_clearly(tmp_path):
  config = tiny_config(tmp_path)
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    loop.train_and_evaluate(config, str(tmp_path / 'empty'), train=False)


def test_training_from_tfds_shards(tmp_path):
  """The same loop trains from built TFDS shards when data.tfds_dir is set."""
  from asl_jax.data import tfds_builder

  config = tiny_config(tmp_path)
  loop.maybe_synthesize(config.data)
  config.data.tfds_dir = tfds_builder.build(config.data, str(tmp_path / 'tfds'))
  result = loop.train_and_evaluate(config, str(tmp_path / 'workdir_tfds'))
  assert result['step'] == 2
  assert 0.0 <= result['ema']['average_mAP'] <= 1.0
