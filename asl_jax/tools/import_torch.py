"""Imports an ActionFormer/ASL PyTorch checkpoint into an Orbax checkpoint of our model's params.

asl-import-torch --checkpoint=FILE.pth --config=X.py --out=DIR \
    [--config.model.embed_dim=512] [--nouse_ema] [--keep_unmapped] [--force]

``FILE`` is a PyTorch checkpoint (``.pth``/``.pt``/``.pth.tar``: needs ``torch``; the EMA weights
``state_dict_ema`` are taken when present, as ActionFormer evaluates them) or an ``.npz`` of
name -> array in PyTorch layout (a parity fixture's ``param/<name>`` entries are recognised).
The model is built from the config exactly as training builds it; the weights are mapped with
:func:`asl_jax.model.torch_import.torch_to_flax`, which refuses unknown, missing or mis-shaped
tensors. Our ASL parts follow the paper, not ASL's released code, so they have no counterpart
in its checkpoints (whose channel attention and Gaussians are reported as unknown): import into
an ActionFormer-baseline config (``:baseline``), or pass ``--keep_unmapped`` to start the ASL parts
from their initial values. Output: ``DIR/params`` (Orbax StandardCheckpointer; restore it with
``ocp.StandardCheckpointer().restore(DIR/'params', abstract_params)``) and
``DIR/import_report.json``, which is also printed.
"""

from __future__ import annotations

import functools
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from asl_jax.model import torch_import
from asl_jax.model.build import build_model

NPZ_PARAM_PREFIX = 'param/'  # Parity fixtures store the state dict under this prefix.

TORCH_MISSING_HELP = """reading {path} needs PyTorch: pip install torch, or convert it to .npz \
where torch is installed:

  import numpy as np, torch
  sd = torch.load('{path}', map_location='cpu')['state_dict_ema']  # or ['state_dict']
  np.savez('{stem}.npz', **{{k: v.float().numpy() for k, v in sd.items()}})
"""


class CheckpointReadError(RuntimeError):
  """A checkpoint file that cannot be read here (wrong format, or PyTorch missing for .pth)."""


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Name -> array from an .npz; with any ``param/`` keys, only those (a parity fixture)."""
  with np.load(path, allow_pickle=False) as z:
    arrays = {k: z[k] for k in z.files}
  if any(k.startswith(NPZ_PARAM_PREFIX) for k in arrays):
    arrays = {
      k[len(NPZ_PARAM_PREFIX) :]: v for k, v in arrays.items() if k.startswith(NPZ_PARAM_PREFIX)
    }
  return arrays


def read_torch(path: str | os.PathLike, *, use_ema: bool = True) -> dict[str, np.ndarray]:
  """The state dict of a PyTorch checkpoint (EMA copy preferred), as NumPy arrays."""
  try:
    import torch  # Optional: only this path needs it.
  except ImportError as e:
    p = pathlib.Path(path)
    stem = p.parent / p.name.split('.')[0]
    raise CheckpointReadError(TORCH_MISSING_HELP.format(path=path, stem=stem)) from e
  # weights_only: never execute pickled code from a downloaded file.
  checkpoint = torch.load(path, map_location='cpu', weights_only=True)
  return torch_import.select_state_dict(checkpoint, use_ema=use_ema)


def read_checkpoint(path: str | os.PathLike, *, use_ema: bool = True) -> dict[str, np.ndarray]:
  """Dispatches on the file name: .npz, or a PyTorch file (.pth, .pt, .pth.tar, .bin)."""
  name = str(path).lower()
  if name.endswith('.npz'):
    return read_npz(path)
  if name.endswith(('.pth', '.pt', '.pth.tar', '.tar', '.bin')):
    return read_torch(path, use_ema=use_ema)
  raise CheckpointReadError(f'{path}: unknown checkpoint format; expected .pth, .pt or .npz')


def import_checkpoint(
  state_dict: Mapping[str, Any], config: ml_collections.ConfigDict, *, keep_unmapped: bool = False
) -> tuple[dict[str, Any], torch_import.ImportReport]:
  """Maps a state dict onto the params of ``build_model(config)``.

  The template is abstract (shapes only), unless ``keep_unmapped``: then parameters without an
  ActionFormer counterpart keep the values of ``model.init`` seeded with ``config.seed``.
  """
  model = build_model(config)
  length = config.model.scale_factor ** config.model.arch[2]  # Any valid length gives the shapes.
  init = functools.partial(
    model.init,
    jax.random.key(config.seed),
    jnp.zeros((1, length, config.data.input_dim), jnp.float32),
    jnp.ones((1, length), bool),
  )
  template = jax.jit(init)() if keep_unmapped else jax.eval_shape(init)
  return torch_import.torch_to_flax(state_dict, template['params'], keep_unmapped=keep_unmapped)


def save_params(params: Mapping[str, Any], directory: pathlib.Path, *, force: bool) -> pathlib.Path:
  """Writes ``directory/params`` with Orbax; refuses to overwrite unless ``force``."""
  target = directory.absolute() / 'params'
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(target, params, force=force)
  checkpointer.wait_until_finished()
  checkpointer.close()
  return target
