"""Multi-seed runs: statistics on hand values, runs in sequence, finished seeds not run again."""

import json
import math

import pytest

from asl_jax.configs import demo
from asl_jax.train import seeds


def _metrics(at, average):
  return {'tious': [0.3, 0.5], 'mAP': at, 'average_mAP': average}


def test_summarize_hand_values():
  summary = seeds.summarize({2: _metrics([0.5, 0.3], 0.4), 1: _metrics([0.7, 0.1], 0.4)})
  assert summary['seeds'] == [1, 2]
  assert summary['mAP']['mean'] == pytest.approx([60.0, 20.0])
  # Sample std of (70, 50) and of (10, 30): sqrt(200) = 14.142...
  assert summary['mAP']['std'] == pytest.approx([math.sqrt(200)] * 2)
  assert summary['average_mAP']['mean'] == pytest.approx(40.0)
  assert summary['average_mAP']['std'] == pytest.approx(0.0)
  table = seeds.format_table(summary)
  assert '| 1 | 70.00 | 10.00 | 40.00 |' in table
  assert '**60.00 ± 14.14**' in table and '**40.00 ± 0.00**' in table


def test_one_seed_has_no_std_and_tious_must_agree():
  assert math.isnan(seeds.summarize({1: _metrics([0.5, 0.3], 0.4)})['average_mAP']['std'])
  with pytest.raises(ValueError, match='tIoUs'):
    seeds.summarize({1: _metrics([0.5, 0.3], 0.4), 2: {**_metrics([0.5], 0.5), 'tious': [0.5]}})


def test_runs_in_sequence_and_skips_finished_seeds(tmp_path, monkeypatch):
  from asl_jax.train import loop

  calls = []

  def fake_train(config, workdir):
    calls.append((config.seed, workdir))
    value = config.seed / 10
    metrics = {'ema': _metrics([value, value / 2], 0.75 * value), 'raw': _metrics([0, 0], 0)}
    (tmp_path / f'seed{config.seed}').mkdir(parents=True, exist_ok=True)
    (tmp_path / f'seed{config.seed}' / 'metrics.json').write_text(json.dumps(metrics))
    return metrics

  monkeypatch.setattr(loop, 'train_and_evaluate', fake_train)
  config = demo.get_config('tiny')
  summary = seeds.run_seeds(config, str(tmp_path), [1, 3])
  assert calls == [(1, str(tmp_path / 'seed1')), (3, str(tmp_path / 'seed3'))]
  assert config.seed == demo.get_config('tiny').seed  # The caller's config is left alone.
  assert summary['mAP']['mean'] == pytest.approx([20.0, 10.0])
  assert summary['average_mAP']['std'] == pytest.approx(math.sqrt(2 * 7.5**2))
  assert json.loads((tmp_path / 'seeds.json').read_text())['seeds'] == [1, 3]
  assert 'mean ± std' in (tmp_path / 'seeds.md').read_text()
  calls.clear()
  seeds.run_seeds(config, str(tmp_path), [1, 2, 3])  # Only seed 2 is new.
  assert [c[0] for c in calls] == [2]
  assert seeds.run_seeds(config, str(tmp_path), [1], train=False)['seeds'] == [1]


def test_command_collects_finished_seeds(tmp_path):
  import os
  import pathlib
  import subprocess
  import sys

  repo = pathlib.Path(__file__).resolve().parents[2]
  for seed, value in ((1, 0.2), (2, 0.4)):
    (tmp_path / f'seed{seed}').mkdir()
    metrics = {'ema': _metrics([value, value], value)}
    (tmp_path / f'seed{seed}' / 'metrics.json').write_text(json.dumps(metrics))
  args = [sys.executable, '-m', 'asl_jax.cli.seeds', '--config=demo.py:tiny']
  args += [f'--workdir={tmp_path}', '--seeds=1,2', '--collect_only']
  env = dict(os.environ, PYTHONPATH=str(repo))
  run = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  assert f'**30.00 ± {math.sqrt(200):.2f}**' in run.stdout
  bad = subprocess.run(
    [*args[:-2], '--seeds=1,x'], cwd=repo, env=env, capture_output=True, text=True, timeout=300
  )
  assert bad.returncode == 2 and '--seeds must be integers' in bad.stderr
