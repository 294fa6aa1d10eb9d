"""launch.sweep: each sweep expands to the paper's rows, and each printed command's config loads."""

import json
import shlex
import sys

import pytest

from asl_jax import configuration
from launch import sweep
from tests.test_configs import load

ROWS = {'table5': 6, 'table6': 5, 'table7': 5, 'lambda': 4, 'delta': 4, 'theta': 4}


def _run_main(capsys, *argv):
  status = sweep.main(list(argv))
  out = capsys.readouterr()
  lines = [line for line in out.out.splitlines() if not line.startswith('#')]
  return status, [shlex.split(line) for line in lines], out.err


def _config_of(argv):
  """The config a printed command trains: --config=FILE[:VARIANT] plus its --config.* overrides."""
  (spec,) = [a.split('=', 1)[1] for a in argv if a.startswith('--config=')]
  config = load(spec.removeprefix('configs/'))
  for arg in argv:
    if arg.startswith('--config.'):
      key, value = arg.removeprefix('--config.').split('=', 1)
      *parents, leaf = key.split('.')
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = type(node[leaf])(float(value) if isinstance(node[leaf], float) else int(value))
  return config


@pytest.mark.parametrize('name', sorted(ROWS))
def test_every_sweep_expands_and_each_command_loads(name, capsys):
  status, commands, _ = _run_main(
    capsys, '--config=configs/charades_i3d.py', f'--sweep={name}', '--seeds', '1,2'
  )
  assert status == 0 and len(commands) == 2 * ROWS[name]
  workdirs = [a for argv in commands for a in argv if a.startswith('--workdir=')]
  assert len(set(workdirs)) == len(commands)  # One folder per run.
  for argv in commands:
    assert argv[:3] == [sys.executable, '-m', 'asl_jax.cli.train']  # The venv that ran the sweep.
    configuration.validate_config(_config_of(argv))


def test_swept_values_reach_the_config(capsys):
  _, commands, _ = _run_main(capsys, '--config=configs/thumos14_i3d.py', '--sweep=lambda')
  assert [_config_of(c).train.contrastive_weight for c in commands] == [0.1, 0.2, 0.3, 0.4]
  _, commands, _ = _run_main(capsys, '--config=configs/thumos14_i3d.py', '--sweep=theta')
  assert [_config_of(c).model.channel_theta for c in commands] == [0.0, 0.1, 0.2, 0.3]
  _, commands, _ = _run_main(capsys, '--config=configs/thumos14_i3d.py', '--sweep=table5')
  rows = [_config_of(c) for c in commands]
  assert [r.train.contrastive_weight for r in rows] == [0.0, 0.0, 0.0, 0.3, 0.0, 0.3]
  assert [r.model.ase.instance_evaluator for r in rows] == [False, False, True, False, True, True]


def test_base_variant_and_extra_overrides_are_kept(capsys):
  status, commands, _ = _run_main(
    capsys,
    '--config=configs/ego4d_egovlp.py:small',
    '--sweep=table7',
    '--workdir_root=/runs',
    '--config.train.num_epochs=2',
  )
  assert status == 0
  assert commands[0][3:5] == [
    '--config=configs/ego4d_egovlp.py:small,loc_gaussians_1',
    '--workdir=/runs/ego4d_egovlp_small/table7/loc_gaussians_1',
  ]
  assert all(c[-1] == '--config.train.num_epochs=2' for c in commands)
  assert _config_of(commands[2]).model.ase.num_cls_gaussians == 2
  assert _config_of(commands[4]).model.ase.shared_gaussian


def test_gpu_and_tpu_launchers(capsys):
  _, commands, _ = _run_main(
    capsys, '--config=configs/charades_i3d.py', '--sweep=delta', '--launcher=gpu'
  )
  assert all(c[:2] == ['bash', 'launch/gpu_local.sh'] for c in commands)
  tpu = ['--launcher=tpu', '--tpu=vm', '--zone=z', '--accelerator_type=v4-8']
  _, commands, _ = _run_main(capsys, '--config=configs/charades_i3d.py', '--sweep=delta', *tpu)
  assert all(
    c[:5] == [sys.executable, 'launch/tpu_pod.py', '--tpu=vm', '--zone=z'] + tpu[3:]
    for c in commands
  )
  assert ['--skip_install' in c for c in commands] == [False, True, True, True]


@pytest.mark.parametrize('accelerator, hosts', [('v4-32', 4), ('v4-8', 1)])
def test_tpu_lines_start_the_distributed_runtime_on_multi_host_slices(capsys, accelerator, hosts):
  from tests.test_launch import _tpu_pod

  tpu_pod = _tpu_pod()
  tpu = ['--launcher=tpu', '--tpu=vm', '--zone=z', f'--accelerator_type={accelerator}']
  _, commands, _ = _run_main(capsys, '--config=configs/charades_i3d.py', '--sweep=delta', *tpu)
  for c in commands:  # What tpu_pod.py runs on the workers for each sweep line.
    args, overrides = tpu_pod.parse_args(c[2:])
    train = dict(tpu_pod.build_commands(args, overrides, 'code.tgz'))['train'][6]
    assert ('--distributed' in shlex.split(train.split(' && ', 1)[1])) == (hosts > 1), train


@pytest.mark.parametrize(
  'argv, message',
  [
    (['--sweep=table5', '--launcher=tpu'], '--launcher=tpu needs --tpu'),
    (['--sweep=table5', '--config.train.nope=1'], "'train.nope' is not a config field"),
  ],
)
def test_mistakes_fail_before_printing(capsys, argv, message):
  status, commands, err = _run_main(capsys, '--config=configs/charades_i3d.py', *argv)
  assert status == 2 and commands == [] and message in err


def test_study_summary_gives_mean_and_sample_std_per_row(tmp_path, capsys):
  from launch import summarize_study

  values = {'asl': [0.70, 0.74, 0.72], 'no_class_level+no_instance_level+no_ascl': [0.60, 0.66]}
  for row, per_seed in values.items():
    for seed, value in enumerate(per_seed, start=1):
      run = tmp_path / 'demo' / 'table5' / row / f'seed{seed}'
      run.mkdir(parents=True)
      metrics = {'tious': [0.3, 0.7], 'mAP': [value + 0.1, value - 0.1], 'average_mAP': value}
      (run / 'metrics.json').write_text(json.dumps({'ema': metrics, 'raw': metrics}))

  assert summarize_study.main([str(tmp_path), '--out', str(tmp_path / 'table.md')]) == 0
  lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
  baseline, full = lines[1], lines[2]  # Ordered by the number of components kept.
  assert baseline.startswith('| – | – | – | 60.00 | 66.00 | n/a | **63.00 ± 4.24** | 73.00 | 53.00')
  assert full.startswith('| ✓ | ✓ | ✓ | 70.00 | 74.00 | 72.00 | **72.00 ± 2.00** | 82.00 | 62.00')
  summary = json.loads((tmp_path / 'table.json').read_text())
  assert [r['row'] for r in summary['demo']] == list(reversed(values))


def test_study_summary_rejects_rows_that_are_not_table5():
  from launch import summarize_study

  with pytest.raises(ValueError, match='not a Table 5 row'):
    summarize_study.components_of('no_ascl+lambda_0.1')
