r"""Prints one runnable command per run of a paper ablation: Tables 5-7, Fig. 3 and theta.

python -m launch.sweep --config=configs/multithumos_i3d.py --sweep=table5 [--seeds 1,2,3] \
  [--launcher local|gpu|tpu] [--workdir_root workdirs/sweeps] [--config.train.batch_size=4 ...]

Sweeps (configs/ablations.py defines the rows and values; the default row is the full ASL model):
  table5  components: class-level / instance-level sensitivity and ASCL, alone, paired, none, all
  table6  classification / localisation Gaussians: none, fixed, learnable
  table7  Gaussians: one or two for classification x one or two (start / end) for
          localisation, and one shared by every sub-task
  lambda  train.contrastive_weight in 0.1 .. 0.4 (Fig. 3)
  delta   train.contrastive_delta in 0.1 .. 0.4 (Fig. 3)
  theta   model.channel_theta in 0, 0.1, 0.2, 0.3
Each run writes to ``WORKDIR_ROOT/<config>/<sweep>/<row>[/seed<N>]``; ``--seeds`` repeats every
row with ``--config.seed=N``. Launchers:
  local  ``PYTHON -m asl_jax.cli.train --config=FILE:VARIANT --workdir=DIR --config.k=v``
  gpu    the same arguments through ``bash launch/gpu_local.sh`` (installs the CUDA jax, one GPU)
  tpu    ``PYTHON launch/tpu_pod.py --tpu=... --zone=... --accelerator_type=... ...`` (needs
         --tpu, --zone, --accelerator_type; --workdir_root should be gs://; runs one after the
         other on the slice, so the install step runs only for the first one; tpu_pod.py adds
         --distributed on slices of several hosts). TPU slices need a global batch divisible by
         their device count: pass --config.train.batch_size=N.
Trailing ``--config.*`` arguments are added to every command. Every run's config is loaded and its
overrides applied before anything is printed, so a wrong variant or key fails at once. The output
is a shell script: ``python -m launch.sweep ... > sweep.sh && bash sweep.sh``. PYTHON is the
interpreter that ran launch.sweep (``sys.executable``), so the script runs in the same venv whatever
``python`` means in the shell that runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import pathlib
import shlex
import sys
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
from asl_jax import configs  # noqa: E402
from asl_jax.configs import ablations  # noqa: E402

LAUNCHERS = ('local', 'gpu', 'tpu')
SWEEPS = ('table5', 'table6', 'table7', 'lambda', 'delta', 'theta')


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of a sweep."""

  row: str  # Directory name of the table row / swept value.
  variant: str  # Config variant ('' for the default, full ASL).
  overrides: tuple[tuple[str, Any], ...] = ()  # (dotted config key, value).
  seed: int | None = None  # --config.seed, when --seeds is given.


def _variant_rows(variants: list[str]) -> list[Run]:
  return [Run(v.replace(',', '+') or 'asl', v) for v in variants]


def _value_rows(name: str, sweep: list[dict]) -> list[Run]:
  return [
    Run(f'{name}_{"_".join(str(v) for v in overrides.values())}', '', tuple(overrides.items()))
    for overrides in sweep
  ]


def sweep_rows(sweep: str) -> list[Run]:
  """The rows of ``sweep`` (one of the names in this module's docstring), without seeds."""
  if sweep == 'table5':
    return _variant_rows(ablations.table5_variants())
  if sweep == 'table6':
    return _variant_rows(ablations.table6_variants())
  if sweep == 'table7':
    return _variant_rows(ablations.table7_variants())
  if sweep == 'lambda':
    return _value_rows('lambda', ablations.sweep_lambda())
  if sweep == 'delta':
    return _value_rows('delta', ablations.sweep_delta())
  if sweep == 'theta':
    return _value_rows('theta', ablations.sweep_theta())
  raise ValueError(f'unknown sweep {sweep!r}; known: {", ".join(SWEEPS)}')


def expand(sweep: str, seeds: list[int] | None = None) -> list[Run]:
  """Every run of ``sweep``: its rows, each once per seed (or once, with the config's seed)."""
  rows = sweep_rows(sweep)
  if not seeds:
    return rows
  return [dataclasses.replace(r, seed=s) for r in rows for s in seeds]


def _join_variants(*variants: str) -> str:
  return ','.join(v for v in variants if v)


def load_run_config(config_arg: str, run: Run):
  """The run's config: ``config_arg`` (FILE[:VARIANT]) plus the run's variant and overrides."""
  path, _, base_variant = configs.resolve(config_arg).partition(':')
  spec = importlib.util.spec_from_file_location('sweep_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(_join_variants(base_variant, run.variant) or None)
  for key, value in run.overrides:
    node, leaf = _field(config, key, path)
    node[leaf] = value
  return config


def _field(config, key: str, path: str):
  """(parent ConfigDict, leaf name) of a dotted ``key``; ValueError if the config lacks it."""
  *parents, leaf = key.split('.')
  node = config
  for p in parents:
    if p not in node:
      break
    node = node[p]
  else:
    if leaf in node:
      return node, leaf
  raise ValueError(f'{path}: {key!r} is not a config field')


def command(
  run: Run,
  *,
  config_arg: str,
  workdir: str,
  launcher: str = 'local',
  extra: list[str] = (),
  tpu: dict[str, str] | None = None,
  first: bool = True,
) -> list[str]:
  """The argv of one run; ``first`` says whether it is the first run (TPU: installs once)."""
  path, _, base_variant = config_arg.partition(':')
  variant = _join_variants(base_variant, run.variant)
  args = [f'--config={path}:{variant}' if variant else f'--config={path}', f'--workdir={workdir}']
  overrides = [f'--config.{k}={v}' for k, v in run.overrides]
  if run.seed is not None:
    overrides.append(f'--config.seed={run.seed}')
  overrides += list(extra)
  if launcher == 'local':
    return [sys.executable, '-m', 'asl_jax.cli.train', *args, *overrides]
  if launcher == 'gpu':
    return ['bash', 'launch/gpu_local.sh', *args, *overrides]
  if launcher == 'tpu':
    tpu = tpu or {}
    missing = [k for k in ('tpu', 'zone', 'accelerator_type') if not tpu.get(k)]
    if missing:
      raise ValueError(f'--launcher=tpu needs {", ".join("--" + k for k in missing)}')
    flags = [
      f'--{k}={tpu[k]}' for k in ('tpu', 'zone', 'accelerator_type', 'project') if tpu.get(k)
    ]
    install = [] if first else ['--skip_install']
    return [sys.executable, 'launch/tpu_pod.py', *flags, *args, *install, *overrides]
  raise ValueError(f'unknown launcher {launcher!r}; known: {", ".join(LAUNCHERS)}')


def run_workdir(root: str, config_arg: str, sweep: str, run: Run) -> str:
  path, _, base_variant = config_arg.partition(':')
  name = pathlib.Path(path).stem + (f'_{base_variant.replace(",", "+")}' if base_variant else '')
  parts = [root.rstrip('/'), name, sweep, run.row]
  if run.seed is not None:
    parts.append(f'seed{run.seed}')
  return '/'.join(parts)


def build_commands(args: argparse.Namespace, extra: list[str]) -> list[list[str]]:
  """Every run's argv, after loading each run's config (errors surface before any output)."""
  seeds = [int(s) for s in args.seeds.split(',') if s.strip()] if args.seeds else None
  runs = expand(args.sweep, seeds)
  tpu = {'tpu': args.tpu, 'zone': args.zone, 'accelerator_type': args.accelerator_type}
  tpu['project'] = args.project
  commands = []
  for i, run in enumerate(runs):
    config = load_run_config(args.config, run)
    for arg in extra:  # --config.a.b=value: the field must exist (its value is main's to parse).
      _field(config, arg.split('=', 1)[0].removeprefix('--config.'), args.config)
    commands.append(
      command(
        run,
        config_arg=args.config,
        workdir=run_workdir(args.workdir_root, args.config, args.sweep, run),
        launcher=args.launcher,
        extra=extra,
        tpu=tpu,
        first=i == 0,
      )
    )
  return commands


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(
    prog='python -m launch.sweep', description=__doc__.split('\n')[0], allow_abbrev=False
  )
  parser.add_argument('--config', required=True, help='Config file[:variant], relative to repo.')
  parser.add_argument('--sweep', required=True, choices=SWEEPS)
  parser.add_argument('--seeds', default=None, help='Comma-separated seeds, e.g. 1,2,3.')
  parser.add_argument('--launcher', choices=LAUNCHERS, default='local')
  parser.add_argument('--workdir_root', default='workdirs/sweeps')
  parser.add_argument('--tpu', default=None, help='TPU VM name (--launcher=tpu).')
  parser.add_argument('--zone', default=None, help='TPU zone (--launcher=tpu).')
  parser.add_argument('--accelerator_type', default=None, help='e.g. v4-32 (--launcher=tpu).')
  parser.add_argument('--project', default=None, help='GCP project (--launcher=tpu, optional).')
  args, rest = parser.parse_known_args(argv)
  unknown = [a for a in rest if not a.startswith('--config.')]
  if unknown:
    parser.error(f'unrecognized arguments: {unknown} (only --config.* overrides pass through)')
  return args, rest


def main(argv: list[str]) -> int:
  args, extra = parse_args(argv)
  try:
    commands = build_commands(args, extra)
  except (ValueError, FileNotFoundError) as e:
    print(f'launch.sweep: {e}', file=sys.stderr)
    return 2
  print(f'# {len(commands)} runs of --sweep={args.sweep} on {args.config}; run from the repo root')
  for cmd in commands:
    print(shlex.join(cmd))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
