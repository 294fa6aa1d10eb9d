r"""asl-import-torch: an ActionFormer/ASL PyTorch checkpoint -> an Orbax checkpoint of our params.

  asl-import-torch --checkpoint=FILE.pth --config=X.py --out=DIR \
      [--config.model.embed_dim=512] [--nouse_ema] [--keep_unmapped] [--force]

What is mapped, and what ASL's released checkpoints lack: :mod:`asl_jax.tools.import_torch`.
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import flags

from asl_jax import errors
from asl_jax.cli import common
from asl_jax.cli import flags as cli_flags

_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'PyTorch .pth/.pt or .npz file.')
_CONFIG = cli_flags.define_config(help_string='Model config (a packaged name or a path).')
_OUT = flags.DEFINE_string('out', None, 'Output directory (params go to OUT/params).')
_USE_EMA = flags.DEFINE_bool('use_ema', True, "Prefer 'state_dict_ema' weights.")
_KEEP_UNMAPPED = flags.DEFINE_bool(
  'keep_unmapped', False, 'Parameters ActionFormer lacks (ASL parts) keep their init values.'
)
_FORCE = flags.DEFINE_bool('force', False, 'Overwrite an existing OUT/params.')
flags.mark_flags_as_required(['checkpoint', 'config', 'out'])


def main(argv: list[str]) -> None:
  del argv
  from asl_jax.model import torch_import
  from asl_jax.tools import import_torch

  checkpoint, out = _CHECKPOINT.value, pathlib.Path(_OUT.value)
  if (out / 'params').exists() and not _FORCE.value:
    raise errors.UserError(f'{out / "params"} exists; pass --force to overwrite it')
  try:
    state = import_torch.read_checkpoint(checkpoint, use_ema=_USE_EMA.value)
    params, report = import_torch.import_checkpoint(
      state, _CONFIG.value, keep_unmapped=_KEEP_UNMAPPED.value
    )
  except (import_torch.CheckpointReadError, torch_import.TorchImportError) as e:
    raise errors.UserError(str(e)) from e
  out.mkdir(parents=True, exist_ok=True)
  target = import_torch.save_params(params, out, force=_FORCE.value)
  summary = dict(report.to_dict(), checkpoint=str(checkpoint), params_dir=str(target))
  (out / 'import_report.json').write_text(json.dumps(summary, indent=1) + '\n')
  json.dump(summary, sys.stdout, indent=1)
  sys.stdout.write('\n')


def run() -> None:
  common.run(main)


if __name__ == '__main__':
  run()
