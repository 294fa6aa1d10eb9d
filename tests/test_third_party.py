"""The third_party manifests are well-formed and their known checksums match the shared files."""

import hashlib
import json
import pathlib
import re

import pytest

MANIFESTS = sorted(
  (pathlib.Path(__file__).resolve().parents[1] / 'asl_jax' / 'third_party').glob('*.json')
)


@pytest.mark.parametrize('path', MANIFESTS, ids=lambda p: p.name)
def test_manifest_schema(path):
  m = json.loads(path.read_text())
  assert {'name', 'description', 'licence', 'citation', 'assets'} <= set(m)
  for asset in m['assets']:
    assert {'file', 'kind', 'source', 'url', 'sha256', 'layout', 'notes'} <= set(asset)
    assert asset['sha256'] is None or len(asset['sha256']) == 64
    if asset['url'] is not None:  # Direct downloads are pinned to a commit and verifiable.
      assert re.fullmatch(
        r'https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+', asset['url']
      )
      assert asset['sha256'] and '/' not in asset['file'], asset['file']


def test_checksums_of_shared_annotation_files(annotations_dir):
  by_hash = {
    hashlib.sha256(p.read_bytes()).hexdigest(): p.name
    for p in annotations_dir.iterdir()
    if p.is_file()
  }
  checked = 0
  for path in MANIFESTS:
    for asset in json.loads(path.read_text())['assets']:
      if asset['sha256'] and asset['kind'] in ('annotations', 'predictions'):
        # Files not in the shared folder were hashed from their pinned url's commit.
        assert asset['sha256'] in by_hash or asset['url'], (
          f'{path.name}: {asset["file"]} checksum matches no shared file'
        )
        checked += asset['sha256'] in by_hash
  assert checked >= 6
