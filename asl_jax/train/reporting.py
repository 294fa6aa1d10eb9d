"""What training reports without TensorFlow: TensorBoard event files and the parameter table.

TensorBoard reads a folder of ``events.out.tfevents.*`` files: TFRecord-framed ``Event``
protocol buffers (length, masked CRC-32C, bytes, masked CRC-32C). :class:`MetricWriter` writes
them with the ``tensorboard`` package's own protocol buffers and checksum (pure Python; it imports
no TensorFlow) through ``etils.epath``, so a ``gs://`` workdir works as a local one. Where
``tensorboard`` is not installed, scalars still reach the log and ``metrics.jsonl`` and the writer
says once that no events are written. Why not clu's writers: see docs/design.md ("Training
without TensorFlow").
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
import zlib
from collections.abc import Mapping

import numpy as np
from etils import epath

logger = logging.getLogger(__name__)


def _protos():
  """(event_pb2, summary_pb2, masked_crc32c) from ``tensorboard``, or None when it is absent."""
  try:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
  except ImportError:
    return None
  return event_pb2, summary_pb2, masked_crc32c


def encode_png(image: np.ndarray) -> bytes:
  """``[H, W, 3]`` (or ``[H, W]``) uint8 -> PNG bytes (8-bit RGB or grey, no filtering)."""
  image = np.asarray(image, np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  height, width, channels = image.shape
  colour = {1: 0, 3: 2, 4: 6}[channels]  # PNG colour types: grey, RGB, RGBA.
  rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  header = struct.pack('>IIBBBBB', width, height, 8, colour, 0, 0, 0)
  return b''.join(
    [
      b'\x89PNG\r\n\x1a\n',
      chunk(b'IHDR', header),
      chunk(b'IDAT', zlib.compress(rows.tobytes(), 6)),
      chunk(b'IEND', b''),
    ]
  )


class MetricWriter:
  """Scalars and images as TensorBoard events in ``logdir`` (chief process); scalars logged.

  The methods of clu's ``MetricWriter`` that the loop uses: ``write_scalars``, ``write_images``,
  ``flush``, ``close``. With ``just_logging`` (the other processes of a multi-host run) nothing is
  written to disk.
  """

  def __init__(self, logdir: str | os.PathLike, *, just_logging: bool = False):
    self.protos = None if just_logging else _protos()
    # epath's open is a context manager for buckets (a plain file only locally): kept open here.
    self.files = contextlib.ExitStack()
    self.file = None
    if not just_logging and self.protos is None:
      logger.warning('tensorboard is not installed: no TensorBoard events (metrics.jsonl only)')
    if self.protos is not None:
      logdir = epath.Path(logdir)
      logdir.mkdir(parents=True, exist_ok=True)
      name = f'events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.asl'
      self.file = self.files.enter_context((logdir / name).open('wb'))
      self._write(self.protos[0].Event(wall_time=time.time(), file_version='brain.Event:2'))

  def _write(self, event) -> None:
    data = event.SerializeToString()
    crc = self.protos[2]
    length = struct.pack('<Q', len(data))
    self.file.write(length + struct.pack('<I', crc(length)) + data + struct.pack('<I', crc(data)))

  def _summary(self, step: int, values: list) -> None:
    event_pb2, summary_pb2, _ = self.protos
    summary = summary_pb2.Summary(value=values)
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    logger.info(
      '[%d] %s', step, ', '.join(f'{k}={float(v):.6g}' for k, v in sorted(scalars.items()))
    )
    if self.file is None:
      return
    value = self.protos[1].Summary.Value
    self._summary(step, [value(tag=k, simple_value=float(v)) for k, v in scalars.items()])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """``{name: [N, H, W, C] uint8}``: image i of ``name`` is written under ``name/i``."""
    if self.file is None:
      return
    summary_pb2 = self.protos[1]
    values = []
    for name, batch in images.items():
      batch = np.asarray(batch)
      batch = batch[None] if batch.ndim == 3 else batch
      for i, image in enumerate(batch):
        encoded = summary_pb2.Summary.Image(
          height=image.shape[0],
          width=image.shape[1],
          colorspace=image.shape[2] if image.ndim == 3 else 1,
          encoded_image_string=encode_png(image),
        )
        values.append(summary_pb2.Summary.Value(tag=f'{name}/{i}', image=encoded))
    self._summary(step, values)

  def flush(self) -> None:
    if self.file is not None:
      self.file.flush()

  def close(self) -> None:
    self.files.close()
    self.file = None


def parameter_table(params) -> str:
  """One row per parameter array (path, shape, size) and the total, for the training log."""
  import jax

  rows = [
    ('/'.join(str(getattr(k, 'key', k)) for k in path), str(tuple(np.shape(leaf))), np.size(leaf))
    for path, leaf in jax.tree_util.tree_leaves_with_path(params)
  ]
  width = max([len(name) for name, _, _ in rows] + [4])
  lines = [f'{"name":<{width}}  {"shape":<18} {"size":>12}']
  lines += [f'{name:<{width}}  {shape:<18} {size:>12,}' for name, shape, size in rows]
  lines.append(f'total: {sum(size for _, _, size in rows):,} parameters in {len(rows)} arrays')
  return '\n'.join(lines)
