"""A run whose workdir is a bucket URI: every file goes through epath; figures reach TensorBoard.

No bucket is reachable from the tests, so TensorFlow's in-memory file system (``ram://``) stands in
for ``gs://``: epath is told to treat ``ram://`` exactly as it treats ``gs://`` (its TensorFlow
gfile backend), so anything written through ``pathlib``/``open`` instead lands in the local working
directory and fails the checks. Orbax writes arrays with TensorStore, which knows ``gs://`` but not
``ram://``, so checkpoints alone are redirected to a local folder; the test checks that the loop
hands the checkpointer the URI unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid

import pytest
import tensorflow as tf
from etils import epath
from etils.epath import backend, gpath, register

from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train import loop
from tests.train import helpers

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@contextlib.contextmanager
def ram_as_bucket():
  """epath handles ``ram://`` paths like ``gs://`` ones (etils 1.15 internals, patched back)."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(gpath, '_URI_PREFIXES', (*gpath._URI_PREFIXES, 'ram://'))
    patch.setattr(gpath, '_URI_SCHEMES', gpath._URI_SCHEMES | {'ram'})
    patch.setitem(gpath._URI_MAP_ROOT, 'ram://', '/ram/')
    patch.setitem(gpath._PREFIX_TO_BACKEND, 'ram', backend.tf_backend)
    patch.setitem(register._URI_PREFIXES_TO_CLS, 'ram://', gpath.PosixGPath)
    yield patch


def _local_checkpoints(patch, local_dir, seen: list):
  """Checkpointers that record the workdir they are given and write under ``local_dir``."""

  class Checkpointer(checkpoint_lib.Checkpointer):
    def __init__(self, workdir, **kwargs):
      seen.append(os.fspath(workdir))
      super().__init__(local_dir, **kwargs)

  class BestCheckpoint(checkpoint_lib.BestCheckpoint):
    def __init__(self, workdir):
      seen.append(os.fspath(workdir))
      super().__init__(local_dir)

  patch.setattr(checkpoint_lib, 'Checkpointer', Checkpointer)
  patch.setattr(checkpoint_lib, 'BestCheckpoint', BestCheckpoint)


@pytest.fixture(scope='module')
def remote_run(tiny_root, tmp_path_factory):
  """2 epochs of 2 steps, evaluated after each, figures on, workdir ``ram://<unique>/workdir``."""
  config = helpers.tiny_config(tiny_root)
  config.train.num_epochs = 2
  config.train.checkpoint_every_steps = 1000  # Only the final save.
  config.train.eval_every_epochs = 1
  config.train.write_figures = True
  workdir = f'ram://{uuid.uuid4().hex}/workdir'
  cwd = tmp_path_factory.mktemp('cwd')  # Anything written locally by mistake would land here.
  seen = []
  with ram_as_bucket() as patch:
    _local_checkpoints(patch, tmp_path_factory.mktemp('checkpoints'), seen)
    patch.chdir(cwd)
    result = loop.train_and_evaluate(config, workdir)
    stray = sorted(os.listdir(cwd))
  return config, workdir, result, seen, stray


def _read_events(workdir: str) -> list:
  files = tf.io.gfile.glob(f'{workdir}/events.out.tfevents.*')
  assert len(files) == 1, files
  return list(tf.compat.v1.train.summary_iterator(files[0]))


def test_every_workdir_file_is_written_to_the_uri(remote_run):
  config, workdir, result, seen, stray = remote_run
  assert stray == [], f'written to the local working directory instead of {workdir}: {stray}'
  assert seen == [workdir, workdir], 'the checkpointers must get the URI unchanged'
  with ram_as_bucket():
    root = epath.Path(workdir)
    assert str(root) == workdir
    names = {p.name for p in root.iterdir()}
    assert {'config.json', 'metrics.jsonl', 'metrics.json', 'detections.json', 'figures'} <= names
    assert json.loads((root / 'config.json').read_text())['data']['num_classes'] == 8
    steps = [json.loads(line)['step'] for line in (root / 'metrics.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 2, 3, 4, 4]  # Training steps and the two evaluations.
    metrics = json.loads((root / 'metrics.json').read_text())
    assert metrics['step'] == 4 and metrics['ema'] == result['ema']
    detections = json.loads((root / 'detections.json').read_text())['results']
    assert len(detections) == 3  # The tiny set's validation videos.
    pngs = sorted(p.name for p in (root / 'figures').iterdir())
    for kind in ('training_curves', 'class_gaussians', 'precision_recall', 'ap_per_class'):
      assert f'{kind}.png' in pngs, pngs
    per_video = [n for n in pngs if n.startswith('sensitivity_') and 'trajectories' not in n]
    assert len(per_video) == 3, pngs
    for name in pngs:
      data = (root / 'figures' / name).read_bytes()
      assert data.startswith(PNG_MAGIC) and len(data) > 10_000, (name, len(data))


def test_figures_reach_tensorboard_at_each_evaluation(remote_run):
  config, workdir, *_ = remote_run
  images = {}  # (step, tag) -> [(width, height, png bytes)]
  for event in _read_events(workdir):
    for value in event.summary.value:
      if value.HasField('image'):  # One image summary per picture, tagged '<name>/<i>'.
        tag = value.tag.rsplit('/', 1)[0]
        image = value.image
        images.setdefault((event.step, tag), []).append(
          (image.width, image.height, image.encoded_image_string)
        )
  # Step 2: the evaluation after epoch 1 (EVAL_FIGURE_VIDEOS videos). Step 4: the final one,
  # the figures also written as PNGs (the evaluation after epoch 2 does not repeat them).
  per_video = ('figures/sensitivity', 'figures/timeline')
  common = ('figures/class_gaussians', 'figures/precision_recall', 'figures/ap_per_class')
  assert set(images) == {(2, tag) for tag in per_video + common} | {
    (4, tag)
    for tag in (*per_video, *common, 'figures/training_curves', 'figures/sensitivity_trajectories')
  }
  for tag in per_video:
    assert len(images[2, tag]) == loop.EVAL_FIGURE_VIDEOS
    assert len(images[4, tag]) == 3
  for (step, tag), batch in images.items():
    for width, height, png in batch:
      assert width >= 400 and height >= 200, (step, tag, width, height)
      decoded = tf.io.decode_png(png).numpy()
      assert decoded.shape == (height, width, 3), (step, tag)
      drawn = (decoded != decoded[:1, :1]).any(axis=-1).mean()  # Pixels unlike the corner one.
      assert drawn > 0.02, f'{tag} at step {step} is (nearly) blank: {drawn:.3f} drawn'
