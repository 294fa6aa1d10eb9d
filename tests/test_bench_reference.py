"""bench.torch_reference never fails: without a usable reference it says why and skips."""

import json
import sys

import pytest

from bench import reference_env, torch_reference


@pytest.mark.parametrize(
  'setup, reason',
  [
    (lambda tmp, mp: mp.delenv(reference_env.ENV_REPO, raising=False), 'is not set'),
    (lambda tmp, mp: mp.setenv(reference_env.ENV_REPO, str(tmp)), 'not an ActionFormer checkout'),
  ],
)
def test_not_available_reasons(tmp_path, monkeypatch, setup, reason):
  setup(tmp_path, monkeypatch)
  result = torch_reference.run_benchmark(quick=True)
  assert result['rows'] == [] and result['reference']['available'] is False
  assert result['status'].startswith(torch_reference.NOT_AVAILABLE)
  assert reason in result['status']


def _fake_checkout(tmp_path, monkeypatch, python: str):
  (tmp_path / 'libs' / 'modeling').mkdir(parents=True)
  (tmp_path / 'libs' / 'modeling' / 'meta_archs.py').write_text('')
  monkeypatch.setenv(reference_env.ENV_REPO, str(tmp_path))
  monkeypatch.setenv(reference_env.ENV_PYTHON, python)


def test_missing_interpreter_is_named(tmp_path, monkeypatch):
  _fake_checkout(tmp_path, monkeypatch, str(tmp_path / 'no_such_python'))
  status = reference_env.status()
  assert not status['available'] and 'no_such_python' in status['reason']


def test_interpreter_without_torch_is_reported_not_raised(tmp_path, monkeypatch, capsys):
  import importlib.util

  if importlib.util.find_spec('torch') is not None:
    pytest.skip('torch is importable here: the probe would get further')
  _fake_checkout(tmp_path, monkeypatch, sys.executable)
  out = tmp_path / 'result.json'
  torch_reference.main(['--quick', '--out', str(out)])
  result = json.loads(out.read_text())
  assert result['status'].startswith(torch_reference.NOT_AVAILABLE)
  assert 'cannot run it' in result['status']
  assert torch_reference.NOT_AVAILABLE in capsys.readouterr().out
