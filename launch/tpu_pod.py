r"""Launches ``asl_jax.main`` on every worker of a Cloud TPU VM slice at once (see README.md).

python launch/tpu_pod.py --tpu=my-v4-32 --zone=us-central2-b --accelerator_type=v4-32 \
  --config=configs/custom.py --workdir=/mnt/shared/asl/thumos [--project=P] [--dry_run] \
  [--config.train.batch_size=16 ...]

Steps, each one ``gcloud compute tpus tpu-vm`` command over ``--worker=all``:
  1. code: a wheel of the package built here (``pip wheel``) packed with this checkout's files
     (tracked and untracked, not ignored) and copied with ``scp`` (default), or
     ``--code=git --git_url=URL [--git_ref=REF]`` cloned and built on the workers;
  2. install (unless --skip_install): a Python >= 3.11 venv in ``~/asl-jax/.venv`` (the first of
     ``python3.13``/``3.12``/``3.11`` on the worker, else ``uv`` from PyPI fetches 3.11: TPU VM
     images ship 3.10), checked first with one clear line, then the wheel with its ``tpu`` extra
     under the pins of ``requirements.txt``. ``--offline_site_packages=DIR`` installs without the
     network: the venv sees the dependencies already in ``DIR`` and gets only the wheel;
  3. data (optional, ``--sync_data=gs://SRC:/DST``): ``gcloud storage rsync`` onto every worker;
  4. run: ``asl-train --config=... --workdir=...`` plus every ``--config.*`` override, on all
     workers together, with ``--distributed`` whenever the slice has more than one host
     (``--detach``: in the background, logging to ``~/asl-jax/train.log``).
The run's exit status is this command's: 0 finished, 75 preempted or a worker lost (run the same
command again: it resumes from the last checkpoint), anything else an error (README "TPU pods").
``--dry_run`` prints the commands instead of running them. Nothing but the standard library is
imported, so this runs from any Python 3.11 with ``gcloud`` (and ``pip``, to build the wheel).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
REMOTE_DIR = '~/asl-jax'
REMOTE_TARBALL = '~/asl_jax_code.tgz'
LOG_FILE = f'{REMOTE_DIR}/train.log'
MIN_PYTHON = (3, 11)  # jax 0.10.2.
EXIT_PREEMPTED = 75  # asl_jax.errors.EXIT_PREEMPTED (this file imports only the standard library).
# Run on the worker by the venv's interpreter: one line and status 1 when it is too old.
PYTHON_CHECK = (
  'import sys; v = sys.version_info[:2]; '
  f'sys.exit(0 if v >= {MIN_PYTHON} else "asl-jax needs Python >= '
  f'{MIN_PYTHON[0]}.{MIN_PYTHON[1]} on the workers; %s is %d.%d" % (sys.executable, *v))'
)

# Accelerator family -> (TensorCores or chips named by the suffix per JAX device, devices per host).
# v2/v3: the suffix counts cores, one device per core, 8 per host. v4/v5p: the suffix counts
# TensorCores, two per chip, one device per chip (megacore), 4 chips per host. v5e/v6e: the
# suffix counts chips, one device each, 4 per host on multi-host slices (8 on one-host ones).
_FAMILIES = {
  'v2': (1, 8),
  'v3': (1, 8),
  'v4': (2, 4),
  'v5p': (2, 4),
  'v5litepod': (1, 4),
  'v5e': (1, 4),
  'v6e': (1, 4),
}


def tpu_topology(accelerator_type: str) -> tuple[int, int]:
  """``'v4-32'`` -> (JAX devices, hosts) = (16, 4); raises ValueError on an unknown type."""
  match = re.fullmatch(r'(v\d+[a-z]*)-(\d+)', accelerator_type)
  if not match or match.group(1) not in _FAMILIES:
    raise ValueError(
      f'unknown --accelerator_type {accelerator_type!r}; expected e.g. v4-32, v5p-64, '
      f'v5litepod-16, v6e-8 (families: {sorted(_FAMILIES)})'
    )
  family, count = match.group(1), int(match.group(2))
  per_device, per_host = _FAMILIES[family]
  devices = max(1, count // per_device)
  single_host = 8 if per_device == 1 else per_host
  hosts = 1 if devices <= single_host else math.ceil(devices / per_host)
  return devices, hosts


def linear_scaled_lr(base_lr: float, base_batch_size: int, batch_size: int) -> float:
  """Linear scaling: the learning rate grows with the global batch (Goyal et al. 2017)."""
  return base_lr * batch_size / base_batch_size


def _gcloud(args: argparse.Namespace, verb: str, *rest: str) -> list[str]:
  cmd = ['gcloud', 'compute', 'tpus', 'tpu-vm', verb, *rest, f'--zone={args.zone}', '--worker=all']
  if args.project:
    cmd.append(f'--project={args.project}')
  return cmd


def _ssh(args: argparse.Namespace, command: str) -> list[str]:
  return _gcloud(args, 'ssh', args.tpu, f'--command={command}')


def code_files(root: pathlib.Path = REPO_ROOT) -> list[str]:
  """Files of the checkout to ship: tracked and untracked, minus what .gitignore excludes."""
  out = subprocess.run(
    ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    cwd=root,
    check=True,
    capture_output=True,
  ).stdout.decode()
  return sorted(f for f in out.split('\0') if f and (root / f).is_file())


def build_wheel(out_dir: pathlib.Path, root: pathlib.Path = REPO_ROOT) -> pathlib.Path:
  """``pip wheel`` of a copy of the checkout's files (the checkout gets no build/ folder)."""
  with tempfile.TemporaryDirectory() as tmp:
    src = pathlib.Path(tmp) / 'src'
    for f in code_files(root):
      (src / f).parent.mkdir(parents=True, exist_ok=True)
      (src / f).write_bytes((root / f).read_bytes())
    cmd = [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', str(out_dir), str(src)]
    if importlib.util.find_spec('setuptools'):  # Else pip fetches the build backend itself.
      cmd.insert(4, '--no-build-isolation')
    subprocess.run(cmd, check=True)
  (wheel,) = pathlib.Path(out_dir).glob('asl_jax-*.whl')
  return wheel


def pack_code(
  tarball: pathlib.Path, wheel: pathlib.Path | None = None, root: pathlib.Path = REPO_ROOT
) -> int:
  """Writes the checkout's files (and ``wheel`` as ``dist/<name>``) into ``tarball``."""
  files = code_files(root)
  with tarfile.open(tarball, 'w:gz') as tar:
    for f in files:
      tar.add(root / f, arcname=f)
    if wheel is not None:
      tar.add(wheel, arcname=f'dist/{wheel.name}')
  return len(files)


def install_command(args: argparse.Namespace) -> str:
  """The worker's install step: a Python >= 3.11 venv (checked), then the package's wheel."""
  check = f'.venv/bin/python -c {shlex.quote(PYTHON_CHECK)}'
  if args.worker_python:
    # Offline, pip comes with the dependencies' folder (the .pth below).
    bare = ' --without-pip' if args.offline_site_packages else ''
    make_venv = f'{shlex.quote(args.worker_python)} -m venv{bare} .venv'
  else:
    # TPU VM images ship Python 3.10, often without python3-venv: uv brings its own 3.11.
    make_venv = (
      'PY=$(command -v python3.13 || command -v python3.12 || command -v python3.11 || true); '
      '{ test -n "$PY" && "$PY" -m venv .venv; } || { rm -rf .venv && '
      '{ python3 -m pip install -q --user uv || curl -LsSf https://astral.sh/uv/install.sh | sh; } '
      f'&& ~/.local/bin/uv venv -q --seed --python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} .venv; }}'
    )
  # A venv left by an older launcher on the system's 3.10 is replaced, not reused.
  steps = [
    f'cd {REMOTE_DIR}',
    f'{{ test -x .venv/bin/python && {check} 2>/dev/null || {{ rm -rf .venv && {make_venv}; }}; }}',
    check,
  ]
  if args.code == 'git':
    steps.append(
      'rm -rf dist && .venv/bin/python -m pip install -q build && .venv/bin/python -m build -q '
      '--wheel --outdir dist .'
    )
  if args.offline_site_packages:
    purelib = '.venv/bin/python -c \'import sysconfig; print(sysconfig.get_paths()["purelib"])\''
    steps += [
      f'echo {shlex.quote(args.offline_site_packages)} > "$({purelib})/asl_jax_offline_deps.pth"',
      '.venv/bin/python -m pip install -q --no-index --no-deps --force-reinstall '
      'dist/asl_jax-*.whl',
    ]
  else:
    steps += [
      '.venv/bin/python -m pip install -q --upgrade pip',
      '.venv/bin/python -m pip install -q --force-reinstall --no-deps dist/asl_jax-*.whl',
      '.venv/bin/python -m pip install -q -c requirements.txt "$(ls dist/asl_jax-*.whl)[tpu]"',
    ]
  return ' && '.join(steps)


def train_command(args: argparse.Namespace, overrides: list[str]) -> str:
  """The shell command each worker runs (the same on all: JAX finds the other hosts itself).

  ``--distributed`` whenever the slice has several hosts: without it each host would start a
  one-process runtime and train alone (or fail in the checkpointer).
  """
  _, hosts = tpu_topology(args.accelerator_type)
  main = [
    '.venv/bin/asl-train',  # The installed wheel, not the unpacked sources next to it.
    f'--config={args.config}',
    f'--workdir={args.workdir}',
    *(['--distributed'] if args.distributed or hosts > 1 else []),
    *overrides,
  ]
  # exec: the training process itself gets the worker's SIGTERM (a preemption notice).
  run = 'exec env TF_CPP_MIN_LOG_LEVEL=2 ' + shlex.join(main)
  if args.detach:
    # setsid + nohup: the job outlives the SSH session that started it.
    run = f'setsid nohup bash -c {shlex.quote(run)} > {LOG_FILE} 2>&1 < /dev/null &'
  return f'cd {REMOTE_DIR} && {run}'


def build_commands(
  args: argparse.Namespace, overrides: list[str], tarball: str
) -> list[tuple[str, list[str]]]:
  """(what, argv) for every step, in order."""
  steps = []
  if args.code == 'scp':
    steps.append(('copy code', _gcloud(args, 'scp', tarball, f'{args.tpu}:{REMOTE_TARBALL}')))
    unpack = f'rm -rf {REMOTE_DIR}/asl_jax {REMOTE_DIR}/dist && mkdir -p {REMOTE_DIR} && '
    unpack += f'tar xzf {REMOTE_TARBALL} -C {REMOTE_DIR}'
    steps.append(('unpack code', _ssh(args, unpack)))
  else:
    ref = shlex.quote(args.git_ref)
    clone = (
      f'(test -d {REMOTE_DIR}/.git || git clone {shlex.quote(args.git_url)} {REMOTE_DIR}) && '
      f'cd {REMOTE_DIR} && git fetch --all --tags && git checkout --force {ref}'
    )
    steps.append(('clone code', _ssh(args, clone)))
  if not args.skip_install:
    steps.append(('install', _ssh(args, install_command(args))))
  if args.sync_data:
    src, _, dst = args.sync_data.rpartition(':') if '://' in args.sync_data else ('', '', '')
    if not src.startswith('gs://') or not dst:
      raise SystemExit(f'--sync_data={args.sync_data!r}: expected gs://BUCKET/PATH:/LOCAL/PATH')
    sync = f'mkdir -p {shlex.quote(dst)} && gcloud storage rsync --recursive '
    sync += f'{shlex.quote(src)} {shlex.quote(dst)}'
    steps.append(('sync data', _ssh(args, sync)))
  steps.append(('train', _ssh(args, train_command(args, overrides))))
  return steps


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)
  parser.add_argument('--tpu', required=True, help='TPU VM name.')
  parser.add_argument('--zone', required=True, help='Its zone, e.g. us-central2-b.')
  parser.add_argument('--accelerator_type', required=True, help='e.g. v4-32 (checks batch size).')
  parser.add_argument('--config', required=True, help='Config file[:variant], relative to repo.')
  parser.add_argument('--workdir', required=True, help='Folder shared by all workers.')
  parser.add_argument('--project', default=None, help='GCP project (default: gcloud config).')
  parser.add_argument('--code', choices=('scp', 'git'), default='scp')
  parser.add_argument('--git_url', default=None, help='With --code=git: repository to clone.')
  parser.add_argument('--git_ref', default='main', help='With --code=git: branch, tag or commit.')
  parser.add_argument('--skip_install', action='store_true', help='Reuse the workers venv.')
  parser.add_argument(
    '--worker_python', default=None, help='Interpreter (>= 3.11) on the workers for the venv.'
  )
  parser.add_argument(
    '--offline_site_packages',
    default=None,
    help='Install without network: the venv uses the dependencies in this worker folder.',
  )
  parser.add_argument('--sync_data', default=None, help='gs://SRC:/DST copied to every worker.')
  parser.add_argument('--detach', action='store_true', help='Run in the background (train.log).')
  parser.add_argument(
    '--distributed',
    action='store_true',
    help='Pass --distributed on a one-host slice too (always passed with several hosts).',
  )
  parser.add_argument('--dry_run', action='store_true', help='Print the commands only.')
  args, rest = parser.parse_known_args(argv)
  unknown = [a for a in rest if not a.startswith('--config.')]
  if unknown:
    parser.error(f'unrecognized arguments: {unknown} (only --config.* overrides pass through)')
  if args.code == 'git' and not args.git_url:
    parser.error('--code=git needs --git_url')
  return args, rest


def check_batch_size(args: argparse.Namespace, overrides: list[str]) -> str:
  """A note on devices, hosts and the global batch; exits when the batch cannot be split."""
  devices, hosts = tpu_topology(args.accelerator_type)
  batch = next(
    (int(o.split('=', 1)[1]) for o in overrides if o.startswith('--config.train.batch_size=')),
    None,
  )
  note = f'{args.accelerator_type}: {devices} devices on {hosts} host(s)'
  if batch is not None and batch % devices:
    raise SystemExit(
      f'{note}: --config.train.batch_size={batch} is not divisible by {devices}; use a multiple '
      f'of {devices} and scale the learning rate with it (launch/README.md)'
    )
  if hosts > 1:
    note += f'; {args.workdir} must be the same folder on every host (launch/README.md)'
  if batch is None:
    note += (
      f'; the config batch size is used (it must be a multiple of {devices}; '
      'set --config.train.batch_size)'
    )
  return note


def main(argv: list[str]) -> int:
  args, overrides = parse_args(argv)
  print(check_batch_size(args, overrides))
  with tempfile.TemporaryDirectory() as tmp:
    tarball = str(pathlib.Path(tmp) / 'asl_jax_code.tgz')
    steps = build_commands(args, overrides, tarball)
    if args.code == 'scp':
      if args.dry_run:
        print(f'# build the wheel and pack {len(code_files())} files of {REPO_ROOT} into {tarball}')
      else:
        wheel = build_wheel(pathlib.Path(tmp) / 'dist')
        print(f'packed {wheel.name} and {pack_code(pathlib.Path(tarball), wheel)} files')
    for what, cmd in steps:
      print(f'# {what}\n{shlex.join(cmd)}', flush=True)
      if args.dry_run:
        continue
      status = subprocess.run(cmd).returncode
      if status == EXIT_PREEMPTED and what == 'train':
        print(
          f'preempted (status {status}): every worker saved the same step, or one was lost; '
          'run this same command again to resume',
          file=sys.stderr,
        )
        return status
      if status:
        print(f'{what} failed on a worker (status {status}); see the output above', file=sys.stderr)
        return status
  if args.detach and not args.dry_run:
    print(f'running in the background; logs: {shlex.join(_ssh(args, f"tail -f {LOG_FILE}"))}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
