"""Maps ActionFormer/ASL PyTorch state dicts onto our Flax parameter tree, and back (pure NumPy)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class TorchImportError(ValueError):
  """A state dict does not fit the model: unknown, missing or mis-shaped tensors (all named)."""


# State-dict entries that exist in ActionFormer/ASL checkpoints but never influence the forward
# pass, so importing ignores them (and says so in the report). Anything else that our model has
# no place for is an error: silently dropping a used tensor would change the outputs.
KNOWN_UNUSED: tuple[tuple[str, str], ...] = (
  (r'(^|\.)num_batches_tracked$', 'BatchNorm step counter, not a parameter'),
  (r'^backbone_m\.', 'ASL momentum-encoder copy of the backbone, never called'),
  (r'^neck_m\.', 'ASL momentum-encoder copy of the neck, never called'),
  (r'^seg_conv\.', 'ASL segmentation head: computed every forward, used by no loss or output'),
  (r'^backbone\.downsample_conv\.', 'ASL depthwise conv that is constructed but never called'),
  (
    r'^backbone\.(stem|branch)\.\d+\.channel_attn\.norm1\.',
    'ASL ChannelBlock.norm1: the block is fed LN1(x) and never applies its own norm1',
  ),
  (
    r'^backbone\.branch\.\d+\.channel_attn\.',
    'ASL ChannelBlock of a stride-2 block: constructed, only stride-1 blocks call it',
  ),
  (
    r'^backbone\.xlnet\.(word_embedding\.|mask_emb$)',
    'XLNet token embeddings: ASL feeds inputs_embeds and no perm/target mapping',
  ),
  (
    r'^backbone\.xlnet\.layer\.\d+\.rel_attn\.(seg_embed|r_s_bias)$',
    'XLNet segment terms: only used with token_type_ids, which ASL never passes',
  ),
)

# Prefixes that wrappers add to every key: nn.DataParallel / DistributedDataParallel ('module.'),
# and ModelEma, whose copy is stored as '.module' of the (possibly already wrapped) model.
_WRAPPER_PREFIXES = ('module.', 'model.')


# Layout conversions, torch -> flax and flax -> torch, keyed by the kind of tensor.
def _conv_to_flax(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 1, 0)  # [out, in/g, k] -> [k, in/g, out]


def _conv1x1_to_flax(w: np.ndarray) -> np.ndarray:
  if w.ndim == 3 and w.shape[2] == 1:
    return w[:, :, 0].T  # Conv1d(k=1) [out, in, 1] -> Dense [in, out]
  return w.T if w.ndim == 2 else w  # nn.Linear [out, in]; other ranks fail the shape check.


def _channel_to_flax(w: np.ndarray) -> np.ndarray:
  # Channels-first LayerNorm / AffineDropPath params [1, C, 1] -> [C]. Only that exact layout is
  # squeezed: anything else keeps its shape and fails the shape check with its torch shape.
  return w.reshape(-1) if w.ndim == 3 and w.shape[0] == 1 and w.shape[2] == 1 else w


_TO_FLAX: dict[str, Callable[[np.ndarray], np.ndarray]] = {
  'conv': _conv_to_flax,
  'conv1x1': _conv1x1_to_flax,
  'channel': _channel_to_flax,
  'vector': lambda w: w,
  'scalar': lambda w: w.reshape(()) if w.size == 1 and w.ndim <= 1 else w,
}

_TO_TORCH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
  'conv': lambda w: w.transpose(2, 1, 0),
  'conv1x1': lambda w: w.T[:, :, None],
  'channel': lambda w: w.reshape(1, -1, 1),
  'vector': lambda w: w,
  'scalar': lambda w: w,
}

_BLOCK = r'encoder/(stem|branch)_(\d+)'
_HEAD = r'(cls|reg)_head'

# (regex over our module path, torch module name, module kind). A module kind fixes the torch
# name and layout of each of its leaves (see _LEAVES).
_MODULES: tuple[tuple[str, str, str], ...] = (
  # Per-stream input projections (input_dim given as a list): MaskedConv1D(k=1) [out, in, 1].
  (r'encoder/input_proj/stream_(\d+)/conv', r'backbone.proj.\1.conv', 'conv'),
  (r'encoder/embed_conv_(\d+)/conv', r'backbone.embd.\1.conv', 'conv'),
  (r'encoder/embed_norm_(\d+)', r'backbone.embd_norm.\1', 'norm'),
  (_BLOCK + r'/(ln1|ln2)', r'backbone.\1.\2.\3', 'norm'),
  (_BLOCK + r'/attn/(query|key|value)_conv/conv', r'backbone.\1.\2.attn.\3_conv.conv', 'conv'),
  (_BLOCK + r'/attn/(query|key|value)_norm', r'backbone.\1.\2.attn.\3_norm', 'norm'),
  (_BLOCK + r'/attn/(query|key|value|proj)', r'backbone.\1.\2.attn.\3', 'conv1x1'),
  (_BLOCK + r'/mlp_fc1', r'backbone.\1.\2.mlp.0', 'conv1x1'),
  (_BLOCK + r'/mlp_fc2', r'backbone.\1.\2.mlp.3', 'conv1x1'),
  (_BLOCK + r'/(drop_path_attn|drop_path_mlp)', r'backbone.\1.\2.\3', 'affine_drop_path'),
  (r'neck/norm_(\d+)', r'neck.fpn_norms.\1', 'norm'),
  # Our FPN1D has biased laterals and full output convs where ActionFormer's FPN1D has neither
  # (bias-free laterals, depthwise output convs): its checkpoints fail with named mismatches.
  (r'neck/lateral_(\d+)/conv', r'neck.lateral_convs.\1.conv', 'conv'),
  (r'neck/fpn_conv_(\d+)/conv', r'neck.fpn_convs.\1.conv', 'conv'),
  (_HEAD + r'/tower/conv_(\d+)/conv', r'\1_head.head.\2.conv', 'conv'),
  (_HEAD + r'/tower/norm_(\d+)', r'\1_head.norm.\2', 'norm'),
  (r'cls_head/cls_conv/conv', r'cls_head.cls_head.conv', 'conv'),
  (r'reg_head/offset_conv/conv', r'reg_head.offset_head.conv', 'conv'),
  (r'reg_head/scale_(\d+)', r'reg_head.scale.\1', 'scale'),
)

# Per module kind: our leaf name -> (torch leaf name, tensor kind).
_LEAVES: dict[str, dict[str, tuple[str, str]]] = {
  'conv': {'kernel': ('weight', 'conv'), 'bias': ('bias', 'vector')},
  'conv1x1': {'kernel': ('weight', 'conv1x1'), 'bias': ('bias', 'vector')},
  'norm': {'scale': ('weight', 'channel'), 'bias': ('bias', 'channel')},
  'affine_drop_path': {'scale': ('scale', 'channel')},
  'scale': {'scale': ('scale', 'scalar')},
}

# Module kinds whose torch module is an identity when absent: ActionFormer builds AffineDropPath
# only when droppath > 0, so a checkpoint trained without it has no scale, which means scale 1.
_IDENTITY_WHEN_ABSENT = {'affine_drop_path': 1.0}


@dataclasses.dataclass
class ImportReport:
  """What an import did, for logs and the CLI's JSON: every tensor is accounted for."""

  mapped: list[str] = dataclasses.field(default_factory=list)  # Torch names that were loaded.
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)  # Torch name -> reason.
  filled: dict[str, str] = dataclasses.field(default_factory=dict)  # Our path -> reason.
  num_params: int = 0  # Scalars in the resulting tree.

  def to_dict(self) -> dict[str, Any]:
    return {
      'mapped': len(self.mapped),
      'ignored': dict(sorted(self.ignored.items())),
      'filled': dict(sorted(self.filled.items())),
      'num_params': self.num_params,
    }


def torch_name(path: tuple[str, ...]) -> tuple[str, str, str]:
  """Our param path (without the 'params' collection) -> (torch name, tensor kind, module kind).

  Raises:
    TorchImportError: the path belongs to a module with no ActionFormer counterpart.
  """
  module, leaf = '/'.join(path[:-1]), path[-1]
  for pattern, replacement, module_kind in _MODULES:
    match = re.fullmatch(pattern, module)
    if match and leaf in _LEAVES[module_kind]:
      torch_leaf, kind = _LEAVES[module_kind][leaf]
      return f'{match.expand(replacement)}.{torch_leaf}', kind, module_kind
  raise TorchImportError(f'no PyTorch name is known for our parameter {"/".join(path)}')


def ignored_reason(name: str) -> str | None:
  """Why a state-dict entry can be skipped, or None if it must be used."""
  for pattern, reason in KNOWN_UNUSED:
    if re.search(pattern, name):
      return reason
  return None


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Drops 'module.'-style prefixes that every key shares (DataParallel, ModelEma wrappers)."""
  out = dict(state_dict)
  while out:
    prefix = next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in out)), None)
    if prefix is None:
      break
    out = {k[len(prefix) :]: v for k, v in out.items()}
  return out


def _to_numpy(value: Any) -> np.ndarray:
  """A torch tensor (duck-typed, so torch stays optional) or array-like -> NumPy array."""
  if hasattr(value, 'detach'):
    value = value.detach().cpu()
    if str(value.dtype) == 'torch.bfloat16':  # NumPy has no bfloat16.
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def select_state_dict(checkpoint: Mapping[str, Any], use_ema: bool = True) -> dict[str, np.ndarray]:
  """The model weights inside a loaded ActionFormer/ASL checkpoint, as name -> NumPy array.

  Training checkpoints hold 'state_dict' and 'state_dict_ema' (evaluation uses the EMA copy);
  other tools save 'model'; a bare state dict is accepted as is. Wrapper prefixes are removed.
  """
  keys = ('state_dict_ema', 'state_dict', 'model') if use_ema else ('state_dict', 'model')
  state = next((checkpoint[k] for k in keys if isinstance(checkpoint.get(k), Mapping)), None)
  if state is None:
    if not use_ema and 'state_dict_ema' in checkpoint and 'state_dict' not in checkpoint:
      raise TorchImportError('the checkpoint has only EMA weights (state_dict_ema); use_ema=True')
    nested = [k for k, v in checkpoint.items() if isinstance(v, Mapping)]
    if nested:
      raise TorchImportError(
        f'no state dict found: expected one of {keys} at the top level, got {sorted(checkpoint)}'
      )
    state = checkpoint
  return {k: _to_numpy(v) for k, v in strip_wrapper_prefixes(state).items()}


def _unwrap(template: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
  """Accepts ``{'params': tree}`` (a Flax variables dict) or the params tree itself."""
  if set(template) == {'params'}:
    return template['params'], True
  return template, False


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for path, value in flat.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


def _leaf_shape_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
  return tuple(leaf.shape), np.dtype(leaf.dtype)


def _torch_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
  return tuple(_TO_TORCH[kind](np.empty(shape, np.int8)).shape)


def torch_to_flax(
  state_dict: Mapping[str, Any],
  params_template: Mapping[str, Any],
  *,
  keep_unmapped: bool = False,
) -> tuple[dict[str, Any], ImportReport]:
  """Fills the structure of ``params_template`` from an ActionFormer/ASL-style state dict.

  Args:
    state_dict: torch name -> array (torch layout); wrapper prefixes are removed here.
    params_template: our params (``{'params': ...}`` or the inner tree), arrays or
      ``jax.ShapeDtypeStruct`` leaves; only shapes and dtypes are read, except with
      ``keep_unmapped``.
    keep_unmapped: our parameters that no ActionFormer tensor corresponds to (the ASL parts:
      class Gaussians, channel attention, instance evaluators) keep the template's values, which
      must then be arrays: e.g. to start ASL from a trained ActionFormer. Off, they are errors.

  Returns:
    (params with the template's structure and dtypes as NumPy arrays, report).

  Raises:
    TorchImportError: naming every unknown tensor, every shape mismatch (in torch layout),
      every tensor our model needs that the state dict lacks and (unless ``keep_unmapped``)
      every parameter of ours without a PyTorch counterpart.
  """
  state = {k: _to_numpy(v) for k, v in strip_wrapper_prefixes(state_dict).items()}
  tree, wrapped = _unwrap(params_template)
  report = ImportReport()
  flat_out: dict[tuple[str, ...], np.ndarray] = {}
  missing, mismatched, unnamed = [], [], []
  used: set[str] = set()
  for path, leaf in _flatten(tree).items():
    shape, dtype = _leaf_shape_dtype(leaf)
    try:
      name, kind, module_kind = torch_name(path)
    except TorchImportError:
      if keep_unmapped:
        flat_out[path] = np.array(leaf, dtype=dtype)
        report.filled['/'.join(path)] = 'no ActionFormer counterpart: kept its initial value'
      else:
        unnamed.append('/'.join(path))
      continue
    if name not in state:
      if module_kind in _IDENTITY_WHEN_ABSENT:
        flat_out[path] = np.full(shape, _IDENTITY_WHEN_ABSENT[module_kind], dtype)
        report.filled['/'.join(path)] = f'{name} absent (built without drop-path): identity scale'
      else:
        missing.append(f'{name} {list(_torch_shape(shape, kind))}')
      continue
    used.add(name)
    value = _TO_FLAX[kind](state[name])
    if value.shape != shape:
      mismatched.append(
        f'{name}: checkpoint has {list(state[name].shape)}, '
        f'the model needs {list(_torch_shape(shape, kind))}'
      )
      continue
    flat_out[path] = np.array(value, dtype=dtype)  # A C-contiguous copy; keeps 0-d shape.
    report.mapped.append(name)
  unknown = []
  for name in sorted(set(state) - used):
    reason = ignored_reason(name)
    if reason is None:
      unknown.append(f'{name} {list(state[name].shape)}')
    else:
      report.ignored[name] = reason
  problems = [
    (f'{len(unknown)} tensor(s) the model has no place for', unknown),
    (f'{len(mismatched)} shape mismatch(es)', mismatched),
    (f'{len(missing)} tensor(s) the model needs but the checkpoint lacks', missing),
    (f'{len(unnamed)} model parameter(s) with no PyTorch counterpart', unnamed),
  ]
  message = [f'{title}:\n  ' + '\n  '.join(items) for title, items in problems if items]
  if message:
    if missing or mismatched:
      message.append(
        '(do the model settings match the checkpoint: arch, embed_dim, num_heads, num_classes, '
        'input_dim, input_streams / stream_embed_dims, head_num_layers, neck?)'
      )
    if unnamed:
      message.append(
        '(ActionFormer has no such parts: import into the ActionFormer baseline (ASL parts off), '
        'or keep their initial values with keep_unmapped=True / --keep_unmapped)'
      )
    raise TorchImportError('cannot import the state dict:\n' + '\n'.join(message))
  report.num_params = int(sum(v.size for v in flat_out.values()))
  params = _unflatten(flat_out)
  return ({'params': params} if wrapped else params), report


def flax_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Our params -> ActionFormer state-dict names and layouts (the inverse of torch_to_flax)."""
  tree, _ = _unwrap(params)
  out = {}
  for path, leaf in _flatten(tree).items():
    name, kind, _ = torch_name(path)
    out[name] = np.array(_TO_TORCH[kind](np.asarray(leaf)))  # Contiguous copy, 0-d kept.
  return out
