"""The parity tool on a fixture holding intermediates beyond the ones it was written for."""

import json
import pathlib

import numpy as np
import pytest

from asl_jax.tools import parity

TOL = 1e-4
FIXTURE_B = (
  pathlib.Path(__file__).resolve().parents[1] / 'data_fixtures' / 'actionformer_tiny_b.npz'
)


def _actionformer_position_table(n_position, dim):
  """ActionFormer's ``get_sinusoid_encoding(max_len, dim) / dim**0.5``, as [n_position, dim]."""
  pos = np.arange(n_position)[:, None]
  angle = pos / np.power(10000.0, 2 * (np.arange(dim)[None] // 2) / dim)
  table = np.where(np.arange(dim)[None] % 2 == 0, np.sin(angle), np.cos(angle))
  return table / np.sqrt(dim)


def _with_extra_keys(tmp_path, *, shift=0.0):
  """Fixture b plus ``out/embd_pe`` (embedding + masked encoding) and an unknown intermediate."""
  with np.load(FIXTURE_B) as z:
    arrays = {k: z[k] for k in z.files}
  fx = parity.load_fixture(FIXTURE_B)
  kwargs = fx['config']['model_kwargs']
  embd = arrays['out/embd']  # [B, C, T]
  dim, length = embd.shape[1], embd.shape[2]
  table = _actionformer_position_table(kwargs['max_seq_len'], dim)[:length].T  # [C, T]
  mask = arrays['input/batched_masks'].astype(np.float32)  # [B, 1, T]
  arrays['out/embd_pe'] = (embd + table[None] * mask + shift).astype(np.float32)
  arrays['out/attn_map_stem_0'] = np.zeros((2, 3), np.float32)
  path = tmp_path / 'extra.npz'
  np.savez(path, **arrays)
  return path


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  return parity.run_parity(_with_extra_keys(tmp_path_factory.mktemp('fx')), tol=TOL, grads=False)


def test_extra_intermediates_pass_and_embd_pe_is_compared(report):
  assert report['ok'], parity.failures(report)
  for mode in ('eval', 'train_no_dropout'):
    embd_pe = report[mode]['out/embd_pe']
    assert embd_pe['ok'] and embd_pe['max_rel'] < TOL
    unknown = report[mode]['out/attn_map_stem_0']
    assert unknown['compared'] is False and 'no counterpart' in unknown['reason']
  assert parity.failures(report) == []
  assert parity.not_compared(report) == [
    f'{mode}: out/attn_map_stem_0 (' + report[mode]['out/attn_map_stem_0']['reason'] + ')'
    for mode in ('eval', 'train_no_dropout')
  ]
  # Not-compared tensors stay out of the per-group summary.
  assert 'out/attn_map_stem' not in parity.summarize(report['eval'])


def test_a_wrong_embd_pe_still_fails(tmp_path):
  path = _with_extra_keys(tmp_path, shift=1e-2)
  report = parity.run_parity(path, tol=TOL, grads=False)
  assert not report['ok']
  assert parity.failures(report) == ['eval: out/embd_pe', 'train_no_dropout: out/embd_pe']


def test_cli_exits_0_and_lists_what_it_did_not_compare(tmp_path):
  from tests.model.test_parity import _run_cli

  done = _run_cli(_with_extra_keys(tmp_path))
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'not compared:' in done.stderr and 'out/attn_map_stem_0' in done.stderr
  assert json.loads(done.stdout)['eval']['out/embd_pe']['ok']
