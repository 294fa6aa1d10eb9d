"""Inference bundles: EMA weights, resolved config, label map, and the detector as StableHLO.

Written by :func:`export_bundle` (the ``asl-export`` command).

A bundle is a folder, local or in a bucket (``gs://...``; every path here is an ``etils.epath``):

  manifest.json             format version, jax version, source checkpoint, geometry, signatures
  config.json               the resolved config (read over ``configs/base.py``'s defaults)
  class_names.json          label id -> class name
  params/                   orbax checkpoint of the parameters (EMA unless --use_raw_weights)
  detector_L<L>.jaxexport   ``jax.export`` of features ``[1, L, C]`` float32 + mask ``[1, L]``
                            bool -> segments ``[1, N, 2]`` (grid units), scores ``[1, N]``,
                            labels ``[1, N]`` int32, valid ``[1, N]`` bool; decoding and NMS
                            included, the weights baked in.

``load_bundle`` gives (model, params, config, class_names) for the Python detector, without any
training state. The ``.jaxexport`` files need only ``jax`` to run
(``jax.export.deserialize(bytearray(data)).call(feats, mask)``): ``detect_exported`` shows the
whole recipe (pad to a bucket, call, keep ``valid`` rows, grid units -> seconds).

Lengths are buckets, not symbolic: the network alone exports with a symbolic length (``L =
stride * k``), but decoding builds its point grid on the host from a concrete length and sizes
each level's top-k as ``min(pre_nms_topk, T_l * K)``, both of which need static level lengths.
A video of ``T`` features is padded to ``max_seq_len * ceil(T / max_seq_len)``, as the evaluator
does, so the default buckets (1 and 2 times ``max_seq_len``) give the evaluator's exact inputs for
videos up to twice the training window; pass ``--lengths`` for longer ones.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax import export as jax_export

from asl_jax import configuration
from asl_jax import workdir as workdir_lib
from asl_jax.model.build import build_model, params_template
from asl_jax.train import checkpoint as checkpoint_lib
from asl_jax.train.checkpoint import absolute_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')


# ----------------------------------------------------------------------------------------------
# Exporting.


def default_lengths(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  return (config.data.max_seq_len, 2 * config.data.max_seq_len)


def export_detector(
  detector, params, *, length: int, input_dim: int, platforms: Sequence[str] | None = None
) -> jax_export.Exported:
  """``jax.export`` of the detector at padded length ``length``, with ``params`` baked in."""
  detect = detector._fn(length)  # The evaluator's own jitted forward, decoding and NMS.
  closed = jax.jit(lambda feats, mask: detect(params, feats, mask))
  return jax_export.export(closed, platforms=None if platforms is None else tuple(platforms))(
    jax.ShapeDtypeStruct((1, length, input_dim), jnp.float32),
    jax.ShapeDtypeStruct((1, length), jnp.bool_),
  )


def export_bundle(
  workdir: str | os.PathLike,
  out: str | os.PathLike,
  *,
  config: ml_collections.ConfigDict | None = None,
  lengths: Sequence[int] | None = None,
  platforms: Sequence[str] | None = DEFAULT_PLATFORMS,
  use_raw_weights: bool = False,
  class_names: Sequence[str] | None = None,
) -> epath.Path:
  """Writes the bundle of ``workdir``'s latest checkpoint into ``out``; returns ``out``."""
  from asl_jax.train.build import build_detector

  config = workdir_lib.read_config(workdir, config)
  lengths = tuple(sorted({int(n) for n in (lengths or default_lengths(config))}))
  stride = configuration.pyramid_stride(config)
  bad = [n for n in lengths if n <= 0 or n % config.data.max_seq_len]
  if bad:
    raise ValueError(
      f'--lengths {bad}: every length must be a positive multiple of data.max_seq_len='
      f'{config.data.max_seq_len} (the evaluator pads to those; the pyramid stride is {stride})'
    )
  out = absolute_path(out)
  if out.exists() and any(out.iterdir()):
    raise FileExistsError(f'{out} exists and is not empty: choose a new --out')
  out.mkdir(parents=True, exist_ok=True)
  model = build_model(config)
  params, directory, step = checkpoint_lib.restore_params(
    workdir, params_template(model, config), use_raw_weights=use_raw_weights
  )
  class_names = list(class_names or workdir_lib.read_class_names(workdir, config))

  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(out / 'params', params)
  checkpointer.wait_until_finished()
  checkpointer.close()
  (out / 'config.json').write_text(config.to_json_best_effort(indent=2))
  (out / 'class_names.json').write_text(json.dumps(class_names, indent=1))

  detector = build_detector(config, model)
  files = {}
  for length in lengths:
    exported = export_detector(
      detector, params, length=length, input_dim=config.data.input_dim, platforms=platforms
    )
    name = f'detector_L{length}.jaxexport'
    (out / name).write_bytes(exported.serialize())
    files[str(length)] = name
    logger.info('exported length %d for %s -> %s', length, exported.platforms, out / name)
  data = config.data
  manifest = {
    'format_version': FORMAT_VERSION,
    'jax_version': jax.__version__,
    'source': {
      'checkpoint': str(directory / str(step)),
      'step': step,
      'weights': 'params' if use_raw_weights else 'ema_params',
    },
    'num_classes': data.num_classes,
    'input_dim': data.input_dim,
    'max_seq_len': data.max_seq_len,
    'geometry': {
      'feat_stride': float(data.feat_stride),
      'num_frames': float(data.num_frames),
      'default_fps': float(data.default_fps),
      'grid_to_sec': 'sec = (grid * feat_stride + 0.5 * num_frames) / fps, clipped to [0, T_sec]',
    },
    'exported': files,
    'platforms': list(platforms) if platforms else [jax.default_backend()],
    'inputs': {'feats': '[1, L, input_dim] float32', 'mask': '[1, L] bool (True on features)'},
    'outputs': {
      'segments': '[1, N, 2] float32, grid units',
      'scores': '[1, N] float32',
      'labels': '[1, N] int32 label ids (class_names.json)',
      'valid': '[1, N] bool, rows to keep (scores descending)',
    },
  }
  (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
  return out


# ----------------------------------------------------------------------------------------------
# Loading.


def is_bundle(path: str | os.PathLike) -> bool:
  return (epath.Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
  path = epath.Path(path)
  if not is_bundle(path):
    raise FileNotFoundError(f'{path} is not an export bundle (no {MANIFEST})')
  manifest = json.loads((path / MANIFEST).read_text())
  if manifest.get('format_version') != FORMAT_VERSION:
    raise ValueError(
      f'{path / MANIFEST}: format_version {manifest.get("format_version")}, this code reads '
      f'{FORMAT_VERSION}'
    )
  return manifest


def load_bundle(path: str | os.PathLike):
  """A bundle -> ``(model, params, config, class_names)``, params on the default device."""
  path = absolute_path(path)
  read_manifest(path)
  config = workdir_lib.load_config_json(path / 'config.json')
  class_names = json.loads((path / 'class_names.json').read_text())
  model = build_model(config)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
    params_template(model, config),
  )
  checkpointer = ocp.StandardCheckpointer()
  try:
    params = checkpointer.restore(path / 'params', target)
  finally:
    checkpointer.close()
  return model, params, config, class_names


def load_exported(path: str | os.PathLike) -> dict[int, jax_export.Exported]:
  """The bundle's serialized detectors, by padded length."""
  path = epath.Path(path)
  manifest = read_manifest(path)
  return {
    int(length): jax_export.deserialize(bytearray((path / name).read_bytes()))
    for length, name in manifest['exported'].items()
  }


def detect_exported(
  exported: Mapping[int, jax_export.Exported],
  feats: np.ndarray,
  *,
  manifest: Mapping,
  fps: float,
  duration: float | None = None,
) -> dict[str, np.ndarray]:
  """One video's detections from the serialized detector alone (no model code involved).

  Args:
    exported: from :func:`load_exported`; manifest from :func:`read_manifest`.
    feats: ``[T, C]`` features.
    fps: the video's frame rate; duration its length in seconds (default: end of the last
      feature window).

  Returns:
    ``segments`` ``[D, 2]`` seconds, ``scores`` ``[D]``, ``labels`` ``[D]``, best first.
  """
  feats = np.asarray(feats, np.float32)
  t = len(feats)
  window = int(manifest['max_seq_len'])
  length = window * max(1, math.ceil(t / window))  # The evaluator's padding rule.
  if length not in exported:
    raise ValueError(
      f'a video of {t} features is padded to {length}, which is not among the exported lengths '
      f'{sorted(exported)}: re-export with --lengths={length}'
    )
  padded = np.zeros((1, length, feats.shape[1]), np.float32)
  padded[0, :t] = feats
  mask = np.zeros((1, length), bool)
  mask[0, :t] = True
  segments, scores, labels, valid = jax.device_get(exported[length].call(padded, mask))
  keep = valid[0]
  stride, frames = manifest['geometry']['feat_stride'], manifest['geometry']['num_frames']
  if duration is None:
    duration = ((t - 1) * stride + frames) / fps
  seconds = (segments[0][keep].astype(np.float64) * stride + 0.5 * frames) / fps
  return {
    'segments': np.clip(seconds, 0.0, duration),
    'scores': scores[0][keep].astype(np.float64),
    'labels': labels[0][keep].astype(np.int64),
  }
