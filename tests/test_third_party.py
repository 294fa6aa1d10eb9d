"""The third_party manifests are well-formed and their known checksums match the shared files."""

import hashlib
import json
import pathlib

import pytest

MANIFESTS = sorted((pathlib.Path(__file__).resolve().parents[1] / 'third_party').glob('*.json'))


@pytest.mark.parametrize('path', MANIFESTS, ids=lambda p: p.name)
def test_manifest_schema(path):
  m = json.loads(path.read_text())
  assert {'name', 'description', 'licence', 'citation', 'assets'} <= set(m)
  for asset in m['assets']:
    assert {'file', 'kind', 'source', 'sha256', 'layout', 'notes'} <= set(asset)
    assert asset['sha256'] is None or len(asset['sha256']) == 64


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
        assert asset['sha256'] in by_hash, (
          f'{path.name}: {asset["file"]} checksum matches no shared file'
        )
        checked += 1
  assert checked >= 6
