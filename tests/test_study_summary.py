"""launch/summarize_study.py: Welch's t against the baseline row, and rows with options."""

import json
import math

import pytest
from scipy import stats

from launch import summarize_study


def test_welch_t_by_hand():
  # Means 72 and 63; sample variances 4 (n 3) and 18 (n 2): t = 9 / sqrt(4/3 + 9).
  t, df, p = summarize_study.welch_t([60.0, 66.0], [70.0, 74.0, 72.0])
  assert t == pytest.approx(9 / math.sqrt(4 / 3 + 9))
  assert df == pytest.approx((4 / 3 + 9) ** 2 / ((4 / 3) ** 2 / 2 + 9**2 / 1))
  ref = stats.ttest_ind([70.0, 74.0, 72.0], [60.0, 66.0], equal_var=False)
  assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
  assert summarize_study.welch_t([60.0], [70.0, 71.0]) is None


def test_option_rows_and_welch_column(tmp_path, capsys):
  values = {
    'no_class_level+no_instance_level+no_ascl': [0.60, 0.66],
    'asl': [0.70, 0.74, 0.72],
    'normalize_sensitivity': [0.71],
  }
  for row, per_seed in values.items():
    for seed, value in enumerate(per_seed, start=1):
      run = tmp_path / 'demo_dense' / 'table5' / row / f'seed{seed}'
      run.mkdir(parents=True)
      metrics = {'tious': [0.3, 0.7], 'mAP': [value + 0.1, value - 0.1], 'average_mAP': value}
      (run / 'metrics.json').write_text(json.dumps({'ema': metrics}))
  assert summarize_study.main([str(tmp_path), '--out', str(tmp_path / 'table.md')]) == 0
  lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
  assert lines[0].endswith('| Welch t vs baseline | beyond the paper |')
  baseline, full, option = lines[1:4]
  assert baseline.endswith('| 73.00 | 53.00 |  |  |')
  assert full.endswith('| t = +2.80 (df 1.3, p = 0.169) |  |')
  assert option.startswith('| ✓ | ✓ | ✓ | 71.00 | n/a | n/a | **71.00 (1 seed)** |')
  assert option.endswith('| n/a | normalize_sensitivity |')  # One seed: no t.
  summary = json.loads((tmp_path / 'table.json').read_text())['demo_dense']
  assert summary[1]['welch_t']['t'] == pytest.approx(2.7998, abs=1e-4)
  assert summarize_study.components_of('normalize_sensitivity') == (True, True, True)
  assert summarize_study.options_of('no_ascl+positives_inside') == ('positives_inside',)
