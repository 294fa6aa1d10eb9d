"""Checks our detector against an ActionFormer PyTorch fixture: every stage's outputs and gradients.

asl-parity --fixture=shared/fixtures/actionformer_tiny_a.npz [--tolerance=1e-4] [--nograds]

The fixture (layout in shared/fixtures/README.md) holds ActionFormer's weights (``param/*``), a
padded batch (``input/*``), its outputs per stage (``out/*``) and, optionally, the gradients of
its training loss (``grad/*``). Everything about the model is read from the fixture's
``config_json``: we build the equivalent ``ActionDetector`` from its ``model_kwargs`` (any arch,
widths, kernel sizes, head depth, class count, per-level attention windows with global ones,
several input streams with their projections, the absolute position embedding; options we do
not implement are refused by name), take the loss settings from its ``train_cfg``, import the
weights with :mod:`asl_jax.model.torch_import`, run the forward at
full float32 matmul precision and compare

* in eval mode (``deterministic=True``), and
* in training mode with dropout and drop-path off (``deterministic=False``, rates 0), which runs
  the training code path and must give the same numbers;

then d loss / d params (eval-mode forward, as the fixture was made) against ``grad/*``.

Every tensor is compared on all positions, padding included: our padding semantics are the
reference's (the embedding's padded columns hold ReLU(LN bias), the neck's hold the LN bias, later
stages are zero there), so nothing is excluded. A tensor passes when
``max|ours - ref| <= tol * max|ref|`` (gradients: ``+ 1e-8``, as some true gradients are 0 and
the reference holds float noise there). Prints a JSON report; exits 1 if anything fails.

An ``out/*`` intermediate the tool has no name for (a fixture made by a newer export script, say)
is reported as ``{'compared': False, 'reason': ...}`` and does not fail the check: only a real
mismatch does. ``out/embd_pe`` (the embedding after the absolute position encoding is added, in
fixtures made with ``use_abs_pe``) is compared: it is the input of the first transformer block.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import configuration
from asl_jax.model import torch_import
from asl_jax.model.detector import ActionDetector
from asl_jax.ops import segments as seg_ops
from asl_jax.train import step as step_lib

GRAD_ABS_FLOOR = 1e-8  # Gradients whose true value is 0 hold ~1e-10 of float noise.

# ActionFormer options our detector does not implement: (model_kwargs key, supported value).
# Its FPN (bias-free lateral convs, depthwise output convs) is not our FPN1D: identity neck only.
_REQUIRED = (
  ('backbone_type', 'convTransformer'),
  ('fpn_type', 'identity'),
  ('scale_factor', 2),
  ('embd_with_ln', True),
  ('fpn_with_ln', True),
  ('head_with_ln', True),
  ('fpn_start_level', 0),
  ('use_rel_pe', False),
)


def load_fixture(path: str | os.PathLike) -> dict[str, Any]:
  """The fixture's arrays, plus its parsed ``config_json`` under 'config'."""
  with np.load(path) as z:
    out = {k: z[k] for k in z.files}
  out['config'] = json.loads(str(out['config_json']))
  return out


def detector_kwargs(model_kwargs: Mapping[str, Any], *, training: bool = False) -> dict[str, Any]:
  """ActionFormer ``PtTransformer`` kwargs -> our ``ActionDetector`` kwargs.

  With ``training`` the dropout and drop-path rates are 0, so the training path is deterministic
  and comparable with the reference's eval-mode outputs.
  """
  for key, value in _REQUIRED:
    if key in model_kwargs and model_kwargs[key] != value:
      raise ValueError(f'the fixture uses {key}={model_kwargs[key]!r}; we only support {value!r}')
  # Several input streams: input_dim and embd_dim are lists, each stream gets a 1x1 projection to
  # its embd_dim and the embedding network runs on their concatenation.
  input_dim, embd_dim = model_kwargs['input_dim'], model_kwargs['embd_dim']
  streams = tuple(input_dim) if isinstance(input_dim, (list, tuple)) else ()
  stream_dims = tuple(embd_dim) if isinstance(embd_dim, (list, tuple)) else ()
  if bool(streams) != bool(stream_dims):
    raise ValueError(f'input_dim {input_dim!r} and embd_dim {embd_dim!r}: both lists or neither')
  num_embed_convs, num_stem, num_branch = model_kwargs['backbone_arch']
  window = model_kwargs['n_mha_win_size']
  windows = configuration.per_level(window, num_branch + 1)
  train_cfg = model_kwargs.get('train_cfg', {})
  return dict(
    num_classes=model_kwargs['num_classes'],
    embed_dim=sum(stream_dims) if stream_dims else embd_dim,
    num_heads=model_kwargs['n_head'],
    num_embed_convs=num_embed_convs,
    num_stem=num_stem,
    num_branch=num_branch,
    embed_kernel_size=model_kwargs['embd_kernel_size'],
    window_sizes=tuple(w if w > 1 else -1 for w in windows),  # ActionFormer: w <= 1 is global.
    mlp_ratio=4,  # ActionFormer's TransformerBlock hard-codes n_hidden = 4 * n_embd.
    dropout=0.0 if training else train_cfg.get('dropout', 0.0),
    droppath=0.0 if training else train_cfg.get('droppath', 0.1),
    neck='identity',
    fpn_dim=model_kwargs['fpn_dim'],
    head_dim=model_kwargs['head_dim'],
    head_num_layers=model_kwargs['head_num_layers'],
    head_kernel_size=model_kwargs['head_kernel_size'],
    cls_prior_prob=train_cfg.get('cls_prior_prob', 0.01),
    empty_classes=tuple(train_cfg.get('head_empty_cls', ())),
    input_streams=streams,
    stream_embed_dims=stream_dims,
    use_abs_pe=bool(model_kwargs.get('use_abs_pe', False)),
    max_seq_len=model_kwargs['max_seq_len'],
  )


def loss_config(model_kwargs: Mapping[str, Any]) -> step_lib.LossConfig:
  """ActionFormer's ``train_cfg`` (defaults: ``libs/core/config.py``) -> our ``LossConfig``."""
  train_cfg = model_kwargs.get('train_cfg', {})
  center_sample = train_cfg.get('center_sample', 'radius')
  radius = train_cfg.get('center_sample_radius', 1.5)
  if center_sample == 'none':
    radius = 0.0  # Our radius <= 0: any point strictly inside the segment, as 'none' does.
  elif center_sample != 'radius' or radius <= 0:
    raise ValueError(f'center_sample={center_sample!r} with radius {radius} is not implemented')
  loss_weight = train_cfg.get('loss_weight', 1.0)
  if loss_weight <= 0:
    raise ValueError(f'loss_weight={loss_weight} (automatic balancing) is not implemented')
  return step_lib.LossConfig(
    num_classes=model_kwargs['num_classes'],
    center_sample_radius=radius,
    reg_loss_weight=loss_weight,
    focal_alpha=0.25,  # ActionFormer's sigmoid_focal_loss.
    focal_gamma=2.0,
    label_smoothing=train_cfg.get('label_smoothing', 0.0),
    sensitivity_loss_weight=1.0,  # No instance evaluators in ActionFormer: L_s is not computed.
    contrastive_weight=0.0,  # ActionFormer has no ASCL.
    contrastive_delta=0.2,
    contrastive_temperature=0.07,
    cls_positives='centre',
    normalize_sensitivity=False,
  )


def fixture_params(fx: Mapping[str, Any], model: ActionDetector) -> dict[str, Any]:
  """The fixture's ``param/*`` imported into ``model``'s parameter tree."""
  state = {k[len('param/') :]: v for k, v in fx.items() if k.startswith('param/')}
  feats = fx['input/batched_feats']
  template = jax.eval_shape(
    model.init,
    jax.random.key(0),
    jnp.zeros((1, feats.shape[2], feats.shape[1])),
    jnp.ones((1, feats.shape[2]), bool),
  )
  params, _ = torch_import.torch_to_flax(state, template['params'])
  return params


def _inputs(fx: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
  """[B, C, T] features and [B, 1, T] masks -> our [B, T, C] and [B, T]."""
  return (
    jnp.asarray(fx['input/batched_feats']).transpose(0, 2, 1),
    jnp.asarray(fx['input/batched_masks'])[:, 0],
  )


def _wanted(model: ActionDetector):
  """capture_intermediates filter: the modules whose outputs the fixture stores."""
  paths = {('encoder',), ('neck',), ('encoder', f'embed_norm_{model.num_embed_convs - 1}')}
  paths |= {('encoder', f'stem_{i}') for i in range(model.num_stem)}
  return lambda mdl, method: method == '__call__' and tuple(mdl.path) in paths


def forward_stages(
  model: ActionDetector, params: Mapping[str, Any], fx: Mapping[str, Any], *, deterministic: bool
) -> dict[str, np.ndarray]:
  """Our outputs under the fixture's ``out/*`` names and layouts (features channels-first)."""
  feats, mask = _inputs(fx)
  first_block = ('encoder', 'stem_0' if model.num_stem else 'branch_0')

  def apply(p, x, m):
    block_input = {}

    def record(next_fun, args, kwargs, context):
      if context.method_name == '__call__' and tuple(context.module.path) == first_block:
        block_input['x'] = args[0]
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
      out, state = model.apply(
        {'params': p},
        x,
        m,
        deterministic=deterministic,
        capture_intermediates=_wanted(model),
        mutable=['intermediates'],
      )
    return out, state, block_input.get('x')

  with jax.default_matmul_precision('highest'):
    out, state, block_input = jax.jit(apply)(params, feats, mask)
  inter = state['intermediates']
  channels_first = lambda x: np.asarray(x).transpose(0, 2, 1)
  stages = {}
  if model.num_embed_convs:
    # The embedding ends with ReLU(LayerNorm); the norm is the last module we can capture.
    norm = inter['encoder'][f'embed_norm_{model.num_embed_convs - 1}']['__call__'][0]
    stages['out/embd'] = channels_first(jax.nn.relu(norm))
  if model.use_abs_pe and block_input is not None:
    # ActionFormer's embedding plus the position encoding: what the first block reads.
    stages['out/embd_pe'] = channels_first(block_input)
  for i in range(model.num_stem):
    stages[f'out/stem_block_{i}'] = channels_first(inter['encoder'][f'stem_{i}']['__call__'][0][0])
  levels, _ = inter['encoder']['__call__'][0]
  stages['out/stem'] = channels_first(levels[0])
  fpn_feats, fpn_masks = inter['neck']['__call__'][0]
  start = 0
  for level, (backbone, fpn, m) in enumerate(zip(levels, fpn_feats, fpn_masks)):
    size = m.shape[1]
    stages[f'out/backbone_feats_{level}'] = channels_first(backbone)
    stages[f'out/fpn_feats_{level}'] = channels_first(fpn)
    stages[f'out/fpn_masks_{level}'] = np.asarray(m)
    stages[f'out/cls_logits_{level}'] = np.asarray(out['cls_logits'][:, start : start + size])
    stages[f'out/reg_offsets_{level}'] = np.asarray(out['offsets'][:, start : start + size])
    start += size
  return stages


def compare(ours: np.ndarray, ref: np.ndarray, tol: float, abs_floor: float = 0.0) -> dict:
  """max|Δ|, max|Δ| / max|ref| and pass/fail (``max|Δ| <= tol * max|ref| + abs_floor``)."""
  if ours.shape != ref.shape:
    return {'ok': False, 'error': f'shape {list(ours.shape)} != reference {list(ref.shape)}'}
  if ref.dtype == bool:
    mismatches = int((ours != ref).sum())
    return {'max_abs': mismatches, 'max_rel': float(mismatches), 'ok': mismatches == 0}
  diff = float(np.max(np.abs(ours.astype(np.float64) - ref), initial=0.0))
  scale = float(np.max(np.abs(ref), initial=0.0))
  rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float('inf'))
  return {'max_abs': diff, 'max_rel': rel, 'ok': bool(diff <= tol * scale + abs_floor)}


def compare_forward(
  fx: Mapping[str, Any], *, training: bool, tol: float
) -> dict[str, dict[str, Any]]:
  """Every ``out/*`` tensor of the fixture vs ours, in eval or dropout-free training mode."""
  model = ActionDetector(**detector_kwargs(fx['config']['model_kwargs'], training=training))
  params = fixture_params(fx, model)
  ours = forward_stages(model, params, fx, deterministic=not training)
  results = {}
  for key in sorted(k for k in fx if k.startswith('out/')):
    if key in ours:
      results[key] = compare(ours[key], fx[key], tol)
    else:
      results[key] = {
        'compared': False,
        'reason': 'an intermediate this tool has no name for (no counterpart in our model)',
      }
  return results


def not_compared(report: Mapping[str, Any]) -> list[str]:
  """``'<mode>: <key> (<reason>)'`` for every tensor the report could not compare."""
  return [
    f'{mode}: {key} ({result["reason"]})'
    for mode, section in report.items()
    if isinstance(section, dict)
    for key, result in section.items()
    if isinstance(result, dict) and result.get('compared') is False
  ]


def _ground_truth(fx: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Each video's segments and labels, padded to the longest list, with a validity mask."""
  num_videos = len(fx['input/lengths'])
  segs = [fx[f'input/segments_{b}'].reshape(-1, 2) for b in range(num_videos)]
  width = max(1, max(len(s) for s in segs))
  batch = {
    'segments': np.zeros((num_videos, width, 2), np.float32),
    'labels': np.zeros((num_videos, width), np.int32),
    'segment_valid': np.zeros((num_videos, width), bool),
  }
  for b, s in enumerate(segs):
    batch['segments'][b, : len(s)] = s
    batch['labels'][b, : len(s)] = fx[f'input/labels_{b}']
    batch['segment_valid'][b, : len(s)] = True
  return batch


def loss_gradients(fx: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """d final_loss / d params of the eval-mode forward, in torch names and layouts, and the losses.

  The loss normaliser starts from ``init_loss_norm``: the reference updates it once, before
  dividing, exactly as :func:`asl_jax.train.step.compute_losses` does.
  """
  kwargs = fx['config']['model_kwargs']
  train_cfg = kwargs.get('train_cfg', {})
  cfg = loss_config(kwargs)
  model = ActionDetector(**detector_kwargs(kwargs))
  params = fixture_params(fx, model)
  feats, mask = _inputs(fx)
  points = seg_ops.make_points(
    feats.shape[1],
    [tuple(r) for r in kwargs['regression_range']],
    scale_factor=kwargs.get('scale_factor', 2),
  )
  batch = _ground_truth(fx)
  init_norm = jnp.float32(train_cfg.get('init_loss_norm', 100.0))

  def loss_fn(p):
    outputs = model.apply({'params': p}, feats, mask, deterministic=True)
    return step_lib.compute_losses(outputs, batch, points, init_norm, cfg)

  with jax.default_matmul_precision('highest'):
    grads, terms = jax.jit(jax.grad(loss_fn, has_aux=True))(params)
  losses = {k: float(terms[k]) for k in ('loss', 'cls_loss', 'reg_loss', 'loss_norm', 'num_pos')}
  return torch_import.flax_to_torch(grads), losses


def compare_gradients(fx: Mapping[str, Any], *, tol: float) -> dict[str, dict[str, Any]]:
  """Every ``grad/*`` tensor vs ours (``|Δ| <= tol * max|g_ref| + 1e-8``), plus the losses, the
  positive count (exact) and the updated loss normaliser."""
  grads, losses = loss_gradients(fx)
  results = {}
  for key in sorted(k for k in fx if k.startswith('grad/')):
    name = key[len('grad/') :]
    if name in grads:
      results[key] = compare(grads[name], fx[key], tol, GRAD_ABS_FLOOR)
    else:
      results[key] = {'ok': False, 'error': 'no counterpart in our model'}
  for ours_key, ref_key in (
    ('loss', 'final_loss'),
    ('cls_loss', 'cls_loss'),
    ('reg_loss', 'reg_loss'),
  ):
    if f'loss/{ref_key}' in fx:
      results[f'loss/{ref_key}'] = compare(
        np.float64(losses[ours_key]), np.asarray(fx[f'loss/{ref_key}'], np.float64), tol
      )
  if 'loss/num_pos' in fx:  # Positive points over the batch: exact.
    results['loss/num_pos'] = compare(
      np.float64(losses['num_pos']), np.asarray(fx['loss/num_pos'], np.float64), 0.0
    )
  if 'loss/loss_normalizer' in fx:
    results['loss/loss_normalizer'] = compare(
      np.float64(losses['loss_norm']), np.asarray(fx['loss/loss_normalizer'], np.float64), tol
    )
  return results


def run_parity(path: str | os.PathLike, *, tol: float = 1e-4, grads: bool = True) -> dict:
  """The full report: per mode, tensor -> {max_abs, max_rel, ok}; 'ok' is the overall verdict."""
  fx = load_fixture(path)
  report: dict[str, Any] = {'fixture': str(path), 'tolerance': tol}
  report['eval'] = compare_forward(fx, training=False, tol=tol)
  report['train_no_dropout'] = compare_forward(fx, training=True, tol=tol)
  if grads and any(k.startswith('grad/') for k in fx):
    report['gradients'] = compare_gradients(fx, tol=tol)
  sections = [v for v in report.values() if isinstance(v, dict)]
  report['ok'] = all(r['ok'] for section in sections for r in section.values() if 'ok' in r)
  return report


def summarize(section: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
  """Worst relative error per tensor group (the key without its level/block index)."""
  groups: dict[str, float] = {}
  for key, result in section.items():
    if 'ok' not in result:
      continue
    group = re.sub(r'\.\d+\.', '.*.', re.sub(r'_\d+$', '', key))
    groups[group] = max(groups.get(group, 0.0), float(result.get('max_rel', float('inf'))))
  return groups


def failures(report: Mapping[str, Any]) -> list[str]:
  """``'<mode>: <key>'`` for every compared tensor that did not pass."""
  return [
    f'{mode}: {key}'
    for mode, section in report.items()
    if isinstance(section, dict)
    for key, result in section.items()
    if isinstance(result, dict) and 'ok' in result and not result['ok']
  ]
