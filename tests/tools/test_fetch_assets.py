"""fetch_assets: checks against the shared files, manual-download messages, stubbed downloads."""

import io
import shutil
import subprocess
import sys
import urllib.request

import pytest

from asl_jax.tools import fetch_assets


def _cli(*argv) -> tuple[int, str, str]:
  """``asl-fetch-assets`` as a user runs it."""
  proc = subprocess.run(
    [sys.executable, '-m', 'asl_jax.cli.fetch_assets', *map(str, argv)],
    capture_output=True,
    text=True,
    timeout=120,
  )
  return proc.returncode, proc.stdout, proc.stderr


# Shared file -> the name its manifest gives it.
SHARED_AS = {
  'activitynet13': {
    'anet_bsn_anno_action.json': 'anet_anno_action.json',
    'anet_bsn_video_info.csv': 'video_info_new.csv',
    'anet_bsn_action_name.csv': 'action_name.csv',
    'anet_sample_detection_prediction.json': 'sample_detection_prediction.json',
  },
  'thumos14': {'thumos14.json': 'thumos14.json'},
  'charades': {'charades_superevents.json': 'charades.json'},
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('a test tried to reach the network')

  monkeypatch.setattr(urllib.request, 'urlopen', refuse)


def _copy_shared(annotations_dir, name, out):
  out.mkdir(parents=True, exist_ok=True)
  for shared, target in SHARED_AS[name].items():
    shutil.copy(annotations_dir / shared, out / target)


@pytest.mark.parametrize('name', sorted(SHARED_AS))
def test_verify_only_accepts_the_shared_files(annotations_dir, tmp_path, name):
  _copy_shared(annotations_dir, name, tmp_path)
  reports = fetch_assets.fetch(name, tmp_path, verify_only=True)
  assert {r.file for r in reports if r.status == 'ok'} == set(SHARED_AS[name].values())
  assert all(r.status == 'manual' for r in reports if r.file not in SHARED_AS[name].values())
  assert not any(r.failed for r in reports)


def test_manual_download_message_says_where_from_and_where_to(tmp_path):
  code, out, _ = _cli('ego4d', f'--out={tmp_path}', '--verify_only')
  assert code == 1  # No json.
  assert 'MANUAL   egovlp/<clip_uid>.pt: get it from: EgoVLP repository' in out
  assert f'put it at:   {tmp_path / "egovlp/<clip_uid>.pt"}' in out
  assert 'layout:      torch tensor [T, 256]' in out
  assert 'MISSING  ego4d_clip_annotations_v2.json' in out and 'raw.githubusercontent.com' in out


def test_a_file_with_the_wrong_checksum_fails(annotations_dir, tmp_path):
  _copy_shared(annotations_dir, 'thumos14', tmp_path)
  (tmp_path / 'thumos14.json').write_text('{}')
  (report,) = [r for r in fetch_assets.fetch('thumos14', tmp_path) if r.file == 'thumos14.json']
  assert report.status == 'bad' and 'sha256' in report.message
  code, out, _ = _cli('thumos14', f'--out={tmp_path}', '--verify_only')
  assert code == 1 and '1 missing or bad' in out


def test_download_is_verified_then_kept(annotations_dir, tmp_path, monkeypatch):
  payload = (annotations_dir / 'charades_superevents.json').read_bytes()
  urls = []

  def fake_urlopen(url, timeout):
    urls.append(url)
    return io.BytesIO(payload)

  monkeypatch.setattr(urllib.request, 'urlopen', fake_urlopen)
  statuses = {r.file: r.status for r in fetch_assets.fetch('charades', tmp_path)}
  assert statuses['charades.json'] == 'fetched'
  assert (tmp_path / 'charades.json').read_bytes() == payload
  assert urls == [
    'https://raw.githubusercontent.com/MCG-NJU/PointTAD/'
    'ea3169db2a29c760d2fe26a3d98669845af6299a/datasets/charades.json'
  ]
  # Present and verified: a second run downloads nothing.
  monkeypatch.setattr(urllib.request, 'urlopen', lambda *a, **k: pytest.fail('downloaded again'))
  statuses = {r.file: r.status for r in fetch_assets.fetch('charades', tmp_path)}
  assert statuses['charades.json'] == 'ok'


def test_a_corrupt_download_is_not_kept(tmp_path, monkeypatch):
  monkeypatch.setattr(urllib.request, 'urlopen', lambda url, timeout: io.BytesIO(b'not it'))
  reports = {r.file: r for r in fetch_assets.fetch('charades', tmp_path)}
  assert reports['charades.json'].status == 'bad'
  assert 'sha256 of the download' in reports['charades.json'].message
  assert list(tmp_path.iterdir()) == []  # Neither the file nor its .part.


def test_unknown_manifest():
  code, _, err = _cli('no_such_benchmark')
  assert code == 2 and 'thumos14' in err and 'Traceback' not in err
