"""The package as a user gets it: pyproject's dependencies, the wheel, its console scripts."""

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())


def _pins(path: pathlib.Path) -> dict[str, str]:
  """'name==version' lines of a requirements file -> {canonical name: version}."""
  pins = {}
  for line in path.read_text().splitlines():
    line = line.split('#', 1)[0].strip()
    if '==' in line and not line.startswith('-'):
      req = Requirement(line)
      (spec,) = req.specifier
      pins[canonicalize_name(req.name)] = spec.version
  return pins


def _applies(req: Requirement, extra: str = '') -> bool:
  return req.marker is None or req.marker.evaluate({**default_environment(), 'extra': extra})


def test_dependencies_admit_the_pinned_versions():
  """`pip install .` may resolve anything in range; `make` installs the pins: both must agree."""
  pins = _pins(REPO_ROOT / 'requirements.txt')
  extras = PYPROJECT['project']['optional-dependencies']
  deps = [Requirement(d) for d in PYPROJECT['project']['dependencies'] + extras['tf']]
  assert {canonicalize_name(d.name) for d in deps} >= {'jax', 'jaxlib', 'flax', 'optax'}
  # TensorFlow is the `tf` extra, not a core dependency (training on local files runs without it:
  # tests/train/test_without_tensorflow.py); the `make` venv pins it for the shards' tests.
  core = {canonicalize_name(Requirement(d).name) for d in PYPROJECT['project']['dependencies']}
  assert not core & {'tensorflow', 'tensorflow-cpu', 'tensorflow-datasets'}
  for req in deps:
    if not _applies(req):  # E.g. the full tensorflow off x86-64 Linux.
      continue
    name = canonicalize_name(req.name)
    assert name in pins, f'{req} is a dependency but requirements.txt does not pin it'
    assert req.specifier.contains(pins[name]), f'{req} excludes the pinned {name}=={pins[name]}'


def test_accelerator_extras_are_jax_extras_of_the_pinned_jax():
  pins = _pins(REPO_ROOT / 'requirements.txt')
  extras = PYPROJECT['project']['optional-dependencies']
  for extra, jax_extra in [('cuda', 'cuda12'), ('cuda13', 'cuda13'), ('tpu', 'tpu')]:
    req, *others = [Requirement(r) for r in extras[extra]]
    assert (req.name, req.extras) == ('jax', {jax_extra})
    assert req.specifier.contains(pins['jax'])
    # TPU pods read gs:// buckets (tf.io.gfile): the TPU extra brings our `tf` extra along.
    want = [('asl-jax', {'tf'})] if extra == 'tpu' else []
    assert [(canonicalize_name(r.name), r.extras) for r in others] == want
  # The pinned files for a `make` venv: the same extras at exactly the pinned jax.
  for path, jax_extra in [('requirements-cuda.txt', 'cuda12'), ('requirements-tpu.txt', 'tpu')]:
    text = (REPO_ROOT / path).read_text()
    assert '-r requirements.txt' in text.splitlines()
    assert f'jax[{jax_extra}]=={pins["jax"]}' in text.splitlines()


def test_console_scripts_name_cli_modules_that_define_run():
  scripts = PYPROJECT['project']['scripts']
  assert {'asl-train', 'asl-predict', 'asl-evaluate', 'asl-export'} <= set(scripts)
  for script, target in scripts.items():
    module, _, attr = target.partition(':')
    package, _, command = module.rpartition('.')
    assert (package, attr) == ('asl_jax.cli', 'run'), target
    assert script == 'asl-' + command.replace('_', '-'), (script, target)
    path = REPO_ROOT / 'asl_jax' / 'cli' / f'{command}.py'
    assert path.is_file(), f'{script} -> {target}, but {path} does not exist'
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'run' for n in tree.body), path
  # And every command module has its console script (common and flags are the shared parts).
  commands = {p.stem for p in (REPO_ROOT / 'asl_jax' / 'cli').glob('*.py')}
  commands -= {'__init__', 'common', 'flags'}
  assert {'asl-' + c.replace('_', '-') for c in commands} == set(scripts)


def _first_doc_line(path: pathlib.Path) -> str:
  return (ast.get_docstring(ast.parse(path.read_text())) or '').splitlines()[0]


@pytest.mark.slow
def test_wheel_installs_and_trains_the_tiny_demo_from_an_empty_folder(tmp_path):
  # Build from a copy: an in-tree build leaves build/ and *.egg-info in a checkout others use.
  src = tmp_path / 'src'
  src.mkdir()
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(REPO_ROOT / name, src / name)
  shutil.copytree(
    REPO_ROOT / 'asl_jax', src / 'asl_jax', ignore=shutil.ignore_patterns('__pycache__')
  )
  pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
  offline = ['--no-deps', '--no-index', '--quiet']
  env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
  subprocess.run(
    [*pip, 'wheel', *offline, '--no-build-isolation', '-w', tmp_path / 'dist', src],
    check=True,
    env=env,
  )
  (wheel,) = (tmp_path / 'dist').glob('asl_jax-*.whl')

  names = zipfile.ZipFile(wheel).namelist()
  configs = sorted(p.name for p in (REPO_ROOT / 'asl_jax' / 'configs').glob('*.py'))
  assert 'demo.py' in configs and 'base.py' in configs
  for config in configs:
    assert f'asl_jax/configs/{config}' in names
  manifests = sorted((REPO_ROOT / 'asl_jax' / 'third_party').glob('*.json'))
  assert manifests
  for manifest in manifests:
    assert f'asl_jax/third_party/{manifest.name}' in names
  tops = {n.split('/')[0] for n in names}
  assert tops == {'asl_jax', f'asl_jax-{PYPROJECT["project"]["version"]}.dist-info'}
  assert not [n for n in names if re.search(r'(^|/)(tests?|conftest)(/|\.py$)', n)]

  site = tmp_path / 'site'
  subprocess.run([*pip, 'install', *offline, '--target', site, wheel], check=True, env=env)
  # An empty folder outside the checkout; the wheel's package first on the path (the venv's
  # site-packages, after it, provide the dependencies).
  empty = tmp_path / 'empty'
  empty.mkdir()
  env = {
    **os.environ,
    'PYTHONPATH': str(site),
    'JAX_COMPILATION_CACHE_DIR': str(REPO_ROOT / '.jax_cache'),
    'TF_CPP_MIN_LOG_LEVEL': '2',
  }
  where = subprocess.run(
    [sys.executable, '-c', 'import asl_jax; print(asl_jax.__file__)'],
    cwd=empty,
    env=env,
    capture_output=True,
    text=True,
    check=True,
  )
  assert pathlib.Path(where.stdout.strip()).is_relative_to(site)

  # Every console script starts and its --help shows the command (absl exits 1 after help).
  helps = {
    script: subprocess.Popen(
      [site / 'bin' / script, '--help'],
      cwd=empty,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for script in PYPROJECT['project']['scripts']
  }
  for script, proc in helps.items():
    out, _ = proc.communicate(timeout=120)
    command = PYPROJECT['project']['scripts'][script].split(':')[0].rsplit('.', 1)[1]
    assert proc.returncode in (0, 1) and 'Traceback' not in out, (script, out[-2000:])
    source = site / 'asl_jax' / 'cli' / f'{command}.py'
    assert _first_doc_line(source) in out, (script, out)
    own_flags = re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source.read_text())
    assert any(f'--{name}' in out for name in own_flags) or not own_flags, (script, out)

  run = subprocess.run(
    [site / 'bin' / 'asl-train', '--config=demo.py:tiny', '--workdir=run'],
    cwd=empty,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  # The data was generated where the user stands, the artefacts are in the workdir.
  annotations = json.loads((empty / 'data/synthetic_tiny/annotations.json').read_text())
  validation = {v for v, a in annotations['database'].items() if a['subset'] == 'validation'}
  metrics = json.loads((empty / 'run' / 'metrics.json').read_text())
  for weights in ('ema', 'raw'):
    m = metrics[weights]
    assert m['tious'] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert all(0.0 <= x <= 1.0 for x in m['mAP'])
    assert m['average_mAP'] == pytest.approx(sum(m['mAP']) / len(m['mAP']))
  detections = json.loads((empty / 'run' / 'detections.json').read_text())['results']
  assert detections and set(detections) <= validation
  for dets in detections.values():
    assert all(d['segment'][0] < d['segment'][1] and d['label'].startswith('action_') for d in dets)
  assert (empty / 'run' / 'config.json').is_file()
  assert not (REPO_ROOT / 'run').exists()
