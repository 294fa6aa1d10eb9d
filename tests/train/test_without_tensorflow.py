"""Training with TensorFlow, TFDS and clu unimportable, and the events it writes for TensorBoard."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.train import reporting
from tests.train import helpers

# Loaded by sitecustomize: the path finder no longer sees these packages, so importing them fails
# and importlib.util.find_spec says None, as on a machine that does not have them.
BLOCKER = """
import importlib.machinery
import sys

BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu')


class _PathFinderWithout(importlib.machinery.PathFinder):
  @classmethod
  def find_spec(cls, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      return None
    return super().find_spec(name, path, target)


sys.meta_path[:] = [
  _PathFinderWithout if f is importlib.machinery.PathFinder else f for f in sys.meta_path
]
"""


def read_events(logdir) -> list:
  """Every Event in ``logdir``'s event files, read by TensorBoard's own record reader."""
  from tensorboard.backend.event_processing import event_file_loader
  from tensorboard.compat.proto import event_pb2

  events = []
  for path in sorted(logdir.glob('events.out.tfevents.*')):
    records = event_file_loader.RawEventFileLoader(str(path)).Load()
    events += [event_pb2.Event.FromString(record) for record in records]
  return events


def test_events_read_back_by_tensorboard(tmp_path):
  writer = reporting.MetricWriter(tmp_path)
  writer.write_scalars(3, {'loss': 1.25, 'learning_rate': 1e-4})
  image = np.zeros((2, 5, 7, 3), np.uint8)
  image[1, 2, 3] = (255, 10, 0)
  writer.write_images(4, {'figures/x': image})
  writer.close()
  events = read_events(tmp_path)
  assert events[0].file_version == 'brain.Event:2'
  scalars = {v.tag: (e.step, v.simple_value) for e in events for v in e.summary.value}
  assert scalars['loss'] == (3, 1.25)
  assert scalars['learning_rate'][1] == pytest.approx(1e-4)
  images = {v.tag: v.image for e in events for v in e.summary.value if v.HasField('image')}
  assert sorted(images) == ['figures/x/0', 'figures/x/1']
  import io

  import matplotlib.image

  decoded = matplotlib.image.imread(io.BytesIO(images['figures/x/1'].encoded_image_string))
  np.testing.assert_array_equal(np.round(decoded * 255).astype(np.uint8), image[1])


def test_just_logging_writes_nothing(tmp_path):
  writer = reporting.MetricWriter(tmp_path / 'logs', just_logging=True)
  writer.write_scalars(1, {'loss': 1.0})
  writer.close()
  assert not (tmp_path / 'logs').exists()


def test_parameter_table_counts_every_parameter():
  params = {'a': {'kernel': np.zeros((3, 4)), 'bias': np.zeros(4)}, 'b': np.zeros((2, 2, 2))}
  table = reporting.parameter_table(params)
  assert 'a/kernel' in table and '(3, 4)' in table
  assert table.splitlines()[-1] == 'total: 24 parameters in 3 arrays'


@pytest.mark.slow
def test_tiny_demo_trains_without_tensorflow(tiny_root, tmp_path):
  """``python -m asl_jax.main`` end to end (training, evaluation, figures) with no TF at all."""
  (tmp_path / 'site').mkdir()
  (tmp_path / 'site' / 'sitecustomize.py').write_text(BLOCKER)
  config = helpers.tiny_config(tiny_root)
  workdir = tmp_path / 'workdir'
  env = dict(os.environ, JAX_PLATFORMS='cpu', ASL_JAX_HUGEPAGES='0')
  env['PYTHONPATH'] = os.pathsep.join([str(tmp_path / 'site'), str(helpers.REPO_ROOT)])
  env['JAX_COMPILATION_CACHE_DIR'] = str(helpers.REPO_ROOT / '.jax_cache')
  check = subprocess.run(
    [sys.executable, '-c', 'import clu'], env=env, capture_output=True, text=True
  )
  assert "No module named 'clu'" in check.stderr  # The blocker is in force in the child.
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.main',
      '--config=demo.py:tiny',
      f'--workdir={workdir}',
      f'--config.data.annotation_file={config.data.annotation_file}',
      f'--config.data.feature_dir={config.data.feature_dir}',
      '--config.train.num_epochs=1',
      '--config.train.warmup_epochs=0',
      '--config.train.log_every_steps=1',
      '--config.train.write_figures=True',
    ],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  metrics = json.loads((workdir / 'metrics.json').read_text())
  assert np.isfinite(metrics['ema']['average_mAP'])
  assert (workdir / 'detections.json').exists() and list((workdir / 'figures').glob('*.png'))
  events = read_events(workdir)
  tags = {v.tag for e in events for v in e.summary.value}
  assert {'loss', 'eval/ema/average_mAP'} <= tags
  assert any(t.startswith('figures/') for t in tags)  # The figures as TensorBoard images.

  # Predict and export of that workdir, side by side (each its own process), without TF too.
  features = sorted(pathlib.Path(config.data.feature_dir).glob('*.npy'))[0]
  commands = {
    'predict': [
      'asl_jax.cli.predict',
      f'--workdir={workdir}',
      f'--features={features}',
      f'--out={tmp_path / "pred.json"}',
    ],
    'export': [
      'asl_jax.cli.export',
      f'--workdir={workdir}',
      f'--out={tmp_path / "bundle"}',
      '--platforms=cpu',
      '--lengths=' + str(config.data.max_seq_len),
    ],
  }
  running = {
    name: subprocess.Popen(
      [sys.executable, '-m', *argv],
      cwd=tmp_path,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for name, argv in commands.items()
  }
  for name, child in running.items():
    _, err = child.communicate(timeout=600)
    assert child.returncode == 0, (name, err[-4000:])
  predicted = json.loads((tmp_path / 'pred.json').read_text())['results']
  assert list(predicted) == [features.stem] and predicted[features.stem]
  assert any((tmp_path / 'bundle').iterdir())

  # What does need TensorFlow (the package's `tf` extra) says so in one line, exit status 2.
  shards = subprocess.run(
    [
      sys.executable,
      '-m',
      'asl_jax.main',
      '--config=demo.py:tiny',
      f'--workdir={tmp_path / "shards_run"}',
      f'--config.data.annotation_file={config.data.annotation_file}',
      f'--config.data.feature_dir={config.data.feature_dir}',
      f'--config.data.tfds_dir={tmp_path / "shards"}',
    ],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert shards.returncode == 2, shards.stderr[-4000:]
  assert 'Traceback' not in shards.stderr
  assert (
    'error: TensorFlow is needed for TFDS shards (asl-build-dataset, data.tfds_dir) but is not '
    'installed: pip install "asl-jax[tf]"'
  ) in shards.stderr
