"""Downloads and verifies a benchmark's public files from its third_party manifest.

asl-fetch-assets NAME [--out=DIR] [--verify_only]

NAME is a manifest of asl_jax/third_party/ (thumos14, multithumos, charades, activitynet13, ego4d,
epic100) or a path to one. Files go to ``--out`` (default ``data/NAME``, where the packaged
configs look for them, relative to the folder you run from). For every asset of the manifest:
  * with a ``url`` (a raw file pinned to a commit): downloaded unless already there, and its
    sha256 checked; a file that fails the check is never kept;
  * without one (Google Drive / Box archives, licensed datasets, feature sets): a message says
    where to get it, where to put it and what it must look like; a file already in place is
    checked against the manifest's sha256 when one is known.
``--verify_only`` downloads nothing: it checks what is there and reports what is missing.
Exits 1 when a file is missing (with a url, under --verify_only), fails its checksum or cannot
be downloaded; assets to fetch by hand are listed but do not fail the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import urllib.error
import urllib.request

MANIFEST_DIR = pathlib.Path(__file__).resolve().parents[1] / 'third_party'
CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Report:
  """What happened to one asset: ``status`` is ok | fetched | manual | present | missing | bad."""

  file: str
  status: str
  message: str

  @property
  def failed(self) -> bool:
    return self.status in ('missing', 'bad')


def manifest_path(name: str) -> pathlib.Path:
  """``thumos14`` -> third_party/thumos14.json; a path to a .json file is used as it is."""
  path = pathlib.Path(name)
  if path.suffix == '.json' and path.is_file():
    return path
  path = MANIFEST_DIR / f'{name}.json'
  if not path.is_file():
    known = sorted(p.stem for p in MANIFEST_DIR.glob('*.json'))
    raise FileNotFoundError(f'no manifest {name!r}: expected one of {known} or a .json path')
  return path


def sha256_of(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(CHUNK), b''):
      digest.update(block)
  return digest.hexdigest()


def _is_plain_file(name: str) -> bool:
  """A single file name (checkable), not a folder pattern or a description."""
  return bool(name) and not any(c in name for c in '/<> ')


def download(url: str, target: pathlib.Path, sha256: str | None) -> str:
  """Streams ``url`` to ``target`` via a ``.part`` file; returns the sha256 (raises on mismatch)."""
  target.parent.mkdir(parents=True, exist_ok=True)
  part = target.with_name(target.name + '.part')
  digest = hashlib.sha256()
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(part, 'wb') as out:
      for block in iter(lambda: response.read(CHUNK), b''):
        digest.update(block)
        out.write(block)
    got = digest.hexdigest()
    if sha256 and got != sha256:
      raise ValueError(f'sha256 of the download is {got}, the manifest says {sha256}')
    os.replace(part, target)
    return got
  finally:
    part.unlink(missing_ok=True)


def manual_message(asset: dict, target: pathlib.Path) -> str:
  lines = [
    f'get it from: {asset["source"]}',
    f'put it at:   {target}',
    f'layout:      {asset["layout"]}',
  ]
  if asset.get('notes'):
    lines.append(f'notes:       {asset["notes"]}')
  return '\n'.join(lines)


def fetch_asset(asset: dict, out: pathlib.Path, *, verify_only: bool) -> Report:
  """Downloads (unless ``verify_only``) and verifies one manifest asset under ``out``."""
  name, url, sha256 = asset['file'], asset.get('url'), asset.get('sha256')
  target = out / name
  checkable = _is_plain_file(name)
  if checkable and target.is_file():
    got = sha256_of(target)
    if sha256 and got != sha256:
      return Report(name, 'bad', f'{target}: sha256 {got}, the manifest says {sha256}')
    if sha256:
      return Report(name, 'ok', f'{target} (sha256 verified)')
    return Report(name, 'present', f'{target} (no checksum known; sha256 {got})')
  if not url:
    return Report(name, 'manual', manual_message(asset, target))
  if verify_only:
    return Report(name, 'missing', f'{target} is missing; download it from {url}')
  try:
    download(url, target, sha256)
  except (OSError, ValueError, urllib.error.URLError) as e:
    return Report(name, 'bad', f'download of {url} failed: {e}')
  return Report(name, 'fetched', f'{target} <- {url} (sha256 verified)')


def fetch(name: str, out: str | os.PathLike | None = None, *, verify_only: bool = False):
  """Every asset of manifest ``name``, in manifest order; returns the :class:`Report` list."""
  path = manifest_path(name)
  manifest = json.loads(path.read_text())
  out = pathlib.Path(out) if out is not None else pathlib.Path('data') / manifest['name']
  return [fetch_asset(a, out, verify_only=verify_only) for a in manifest['assets']]
