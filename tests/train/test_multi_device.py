"""Data parallelism: three steps over 8 fake CPU devices match one device on the same batches."""

import numpy as np

from tests.train import helpers


def test_eight_devices_match_one_device(tiny_root, tmp_path):
  def start(n: int):
    out = ('--root', str(tiny_root), '--out', str(tmp_path / f'{n}.npz'))
    return helpers.run_module(
      'tests.train.sharded_steps', *out, log=tmp_path / f'{n}.log', devices=n
    )

  runs = {n: start(n) for n in (1, 8)}  # Both at once: one core each.
  for n, process in runs.items():
    process.wait(timeout=600)
    assert process.returncode == 0, f'{n} device(s):\n{helpers.tail(tmp_path / f"{n}.log")}'
  one, eight = np.load(tmp_path / '1.npz'), np.load(tmp_path / '8.npz')
  assert int(one['num_devices']) == 1 and int(eight['num_devices']) == 8
  assert int(one['num_steps']) == 3
  assert sorted(one.files) == sorted(eight.files)
  names = [k for k in one.files if k.startswith(('state/', 'metrics/'))]
  assert any('contrastive_loss' in k for k in names)  # The batch-wide ASL loss is included.
  for name in names:
    if one[name].dtype.kind == 'f':
      # Reduction order differs (all-reduce of per-device sums): float32 round-off only.
      np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
    else:
      np.testing.assert_array_equal(eight[name], one[name], err_msg=name)
  assert float(one['metrics/2/learning_rate']) > 0  # Past the warmup's lr(0) = 0: real updates.
