"""bench.run's Accelerators section: kept device runs, with ratios against the reference."""

import json

from bench import run


def test_no_device_runs_says_so(tmp_path):
  assert run.accelerators(tmp_path) == [run.NO_GPU_NOTE, '']
  assert run.accelerators(tmp_path / 'missing') == [run.NO_GPU_NOTE, '']


def test_device_run_with_reference_gives_ratios(tmp_path):
  ref_row = {'attention': 'local', 'step': {'median_s': 0.1}, 'forward_b1': {'median_s': 0.03}}
  result = {
    'device': 'gpu: NVIDIA H200',
    'date': '2026-11-27 07:22 UTC',
    'jax': '0.11.2',
    'rows': [{'dtype': 'float32', 'step_s_median': 0.02, 'ms_per_video': 15.0}],
    'table_markdown': '| ours |',
    'notes': ['a note'],
    'torch_reference': {'status': 'ok', 'table_markdown': '| reference |', 'rows': [ref_row]},
  }
  (tmp_path / 'run.json').write_text(json.dumps(result))
  text = '\n'.join(run.accelerators(tmp_path))
  assert '### gpu: NVIDIA H200, 2026-11-27 07:22 UTC, jax 0.11.2 (`run.json`)' in text
  assert '| ours |' in text and '| reference |' in text and '- a note' in text
  assert 'reference local / ours (float32): training step 5.00x, inference 2.00x' in text


def test_device_run_without_reference_names_why(tmp_path):
  result = {
    'device': 'gpu: NVIDIA H100',
    'rows': [{'dtype': 'float32', 'step_s_median': 0.02, 'ms_per_video': 15.0}],
    'torch_reference': {'status': 'reference not available: no torch'},
  }
  (tmp_path / 'run.json').write_text(json.dumps(result))
  text = '\n'.join(run.accelerators(tmp_path))
  assert 'date not recorded' in text
  assert 'PyTorch reference: reference not available: no torch' in text
