"""Writes an ActionFormer parity fixture (the layout of shared/fixtures/README.md) for a config.

  ASL_TORCH_REFERENCE=/path/to/actionformer_release \
    /path/to/torch/python bench/make_parity_fixture.py --out tests/data_fixtures/NAME.npz

Runs under an interpreter with torch (not our environment) and imports ActionFormer's model code
from the checkout named by ``ASL_TORCH_REFERENCE`` (see ``bench/torch_reference.py``). The
decoded detections (``pred/*``) need ActionFormer's compiled Soft-NMS: build it once in the
checkout with ``cd libs/utils && python setup.py build_ext --inplace``, or pass ``--no_nms`` to
leave ``pred/*`` out.

The default config (``CONFIG``) differs from the shipped fixture in everything our detector can
express: two input streams with their own 1x1 projections, the absolute position embedding, a
different arch (1 embedding conv, 1 stem block, 4 branch blocks: 5 levels), global attention on
some levels and local windows of 9 and 5 on others, 3 heads, embed 24 with heads of width 16,
kernel 5 in the embedding and heads, 2 head layers, 7 classes, centre radius 2, label smoothing
0.1, regression weight 0.5 and an initial loss normaliser of 50. The ground truth exercises
what the shipped one does not: equal-length ties (multi-hot targets), two segments competing for
a point, a segment shorter than one step, a distance landing exactly on a regression-range
boundary and pre-NMS top-k truncation.

As for the shipped fixture, every forward is in eval mode, targets and losses come from the
model's own ``label_points`` / ``losses`` on those outputs (normaliser reset to its initial value
first), gradients are d final_loss / d param of that forward, and the weights are moved away from
the initialisation so that every path matters (same rules; ``weights`` in the config JSON).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import pathlib
import platform
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench import reference_env, torch_reference  # noqa: E402  (stdlib only at import time)

SEED = 2025
FPS, FEAT_STRIDE, FEAT_NUM_FRAMES = 30.0, 4, 16
CONFIG = dict(
  backbone_type='convTransformer',
  fpn_type='identity',
  backbone_arch=(1, 1, 4),
  scale_factor=2,
  input_dim=[12, 20],  # Two feature streams, concatenated along channels.
  max_seq_len=128,
  max_buffer_len_factor=6.0,
  n_head=3,
  n_mha_win_size=[-1, 9, -1, 5, -1],  # Per level; <= 1 is global attention.
  embd_kernel_size=5,
  embd_dim=[8, 16],  # Per-stream projection widths: the embedding is 24 wide.
  embd_with_ln=True,
  fpn_dim=24,
  fpn_with_ln=True,
  fpn_start_level=0,
  head_dim=16,
  regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 10000)],
  head_num_layers=2,
  head_kernel_size=5,
  head_with_ln=True,
  use_abs_pe=True,
  use_rel_pe=False,
  num_classes=7,
  train_cfg=dict(
    center_sample='radius',
    center_sample_radius=2.0,
    loss_weight=0.5,
    cls_prior_prob=0.02,
    init_loss_norm=50,
    clip_grad_l2norm=1.0,
    head_empty_cls=[5],
    dropout=0.0,
    droppath=0.1,
    label_smoothing=0.1,
  ),
  test_cfg=dict(
    pre_nms_thresh=0.001,
    pre_nms_topk=200,
    iou_threshold=0.1,
    min_score=0.001,
    max_seg_num=100,
    nms_method='soft',
    nms_sigma=0.5,
    duration_thresh=0.05,
    multiclass_nms=True,
    ext_score_file=None,
    voting_thresh=0.7,
  ),
)
# Per video: valid length and ground truth ([start, end] grid units -> label).
VIDEOS = (
  (
    128,
    (
      ((10.0, 18.0), 1),  # From t = 14: max(left, right) = 4, on the level 0/1 range boundary.
      ((30.25, 46.75), 4),  # Equal lengths (16.5): multi-hot targets where both are candidates.
      ((31.0, 47.5), 2),
      ((60.4, 60.9), 0),  # Shorter than one step: no point lies strictly inside.
      ((70.3, 121.8), 6),
      ((75.0, 90.0), 3),  # Inside the previous one: the shorter segment wins shared points.
    ),
  ),
  (
    100,
    (
      ((2.0, 30.0), 3),
      ((10.0, 18.5), 5),
      ((40.2, 62.7), 0),
      ((85.0, 118.0), 2),  # Runs past the valid length.
    ),
  ),
)


def perturb_weights(model, modeling, generator) -> dict[str, int]:
  """Moves the weights off the initialisation (shared/fixtures/README.md, sec. 2); counts rules."""
  import torch

  rules = collections.Counter()
  done = set()
  normal = lambda p: torch.randn(p.shape, generator=generator)
  uniform = lambda p, lo, hi: lo + (hi - lo) * torch.rand(p.shape, generator=generator)
  with torch.no_grad():
    for name, module in model.named_modules():
      prefix = f'{name}.' if name else ''
      if isinstance(module, modeling.LayerNorm) and module.affine:
        module.weight.copy_(1 + 0.2 * normal(module.weight))
        module.bias.copy_(0.1 * normal(module.bias))
        done |= {prefix + 'weight', prefix + 'bias'}
        rules['LayerNorm weight 1 + 0.2 N(0,1), bias 0.1 N(0,1)'] += 2
      elif isinstance(module, modeling.AffineDropPath):
        module.scale.copy_(uniform(module.scale, 0.25, 0.75))
        done.add(prefix + 'scale')
        rules['U(0.25, 0.75) (init 1e-4)'] += 1
      elif isinstance(module, modeling.Scale):
        module.scale.copy_(uniform(module.scale, 1.0, 3.0))
        done.add(prefix + 'scale')
        rules['U(1, 3) (init 1)'] += 1
    params = dict(model.named_parameters())
    cls_w, cls_b = 'cls_head.cls_head.conv.weight', 'cls_head.cls_head.conv.bias'
    off_w, off_b = 'reg_head.offset_head.conv.weight', 'reg_head.offset_head.conv.bias'
    params[cls_w].mul_(4)
    params[cls_b].copy_(-math.log(99) + 0.75 * normal(params[cls_b]))
    params[off_w].mul_(2)
    params[off_b].copy_(0.5 + 0.1 * normal(params[off_b]))
    done |= {cls_w, cls_b, off_w, off_b}
    rules.update({'init x 4': 1, '-log(99) + 0.75 N(0,1)': 1, 'init x 2': 1, '0.5 + 0.1 N(0,1)': 1})
    for name, p in params.items():
      if name.endswith('.bias') and name not in done:
        p.copy_(0.1 * normal(p))
        done.add(name)
        rules['0.1 N(0,1)'] += 1
    rules['PyTorch default init under torch.manual_seed(seed)'] = len(set(params) - done)
  return dict(rules)


def make_videos(num_channels: int, generator) -> list[dict]:
  import torch

  videos = []
  for b, (length, gts) in enumerate(VIDEOS):
    videos.append(
      {
        'video_id': f'video_{b}',
        'feats': torch.randn((num_channels, length), generator=generator),
        'segments': torch.tensor([s for s, _ in gts], dtype=torch.float32),
        'labels': torch.tensor([c for _, c in gts], dtype=torch.int64),
        'fps': FPS,
        'duration': (length * FEAT_STRIDE + 0.5 * FEAT_NUM_FRAMES) / FPS,
        'feat_stride': FEAT_STRIDE,
        'feat_num_frames': FEAT_NUM_FRAMES,
      }
    )
  return videos


def generate(repo: str, with_nms: bool) -> tuple[dict, dict]:
  """The fixture's arrays (name -> numpy) and its config (the ``config_json`` dict)."""
  import numpy as np
  import torch

  torch.set_num_threads(2)
  modeling = torch_reference.load_actionformer(repo, with_nms=with_nms)
  torch.manual_seed(SEED)
  model = modeling.make_meta_arch('LocPointTransformer', **CONFIG)
  rules = perturb_weights(model, modeling, torch.Generator().manual_seed(SEED + 1000))
  videos = make_videos(sum(CONFIG['input_dim']), torch.Generator().manual_seed(SEED + 2000))
  arrays: dict[str, np.ndarray] = {}
  for name, value in model.state_dict().items():
    arrays[f'param/{name}'] = value.detach().numpy().copy()
  for b, v in enumerate(videos):
    arrays[f'input/feats_{b}'] = v['feats'].numpy()
    arrays[f'input/segments_{b}'] = v['segments'].numpy()
    arrays[f'input/labels_{b}'] = v['labels'].numpy()
  arrays['input/lengths'] = np.array([v['feats'].shape[1] for v in videos], np.int64)

  model.train()  # Training branch of the batching: pad every video to max_seq_len.
  feats, masks = model.preprocessing(videos)
  model.eval()
  arrays['input/batched_feats'] = feats.numpy()
  arrays['input/batched_masks'] = masks.numpy()

  captured = {}
  backbone = model.backbone
  hooks = [
    backbone.embd_norm[len(backbone.embd_norm) - 1].register_forward_hook(
      lambda m, i, o: captured.__setitem__('out/embd', torch.relu(o.detach().clone()))
    )
  ]
  for i, block in enumerate(backbone.stem):
    hooks.append(
      block.register_forward_hook(
        lambda m, i_, o, i=i: captured.__setitem__(f'out/stem_block_{i}', o[0].detach().clone())
      )
    )
  back_feats, back_masks = backbone(feats, masks)
  for h in hooks:
    h.remove()
  fpn_feats, fpn_masks = model.neck(back_feats, back_masks)
  points = model.point_generator(fpn_feats)
  cls_logits = [x.permute(0, 2, 1) for x in model.cls_head(fpn_feats, fpn_masks)]
  offsets = [x.permute(0, 2, 1) for x in model.reg_head(fpn_feats, fpn_masks)]
  fpn_masks = [x.squeeze(1) for x in fpn_masks]
  arrays.update({k: v.numpy() for k, v in captured.items()})
  arrays['out/stem'] = back_feats[0].detach().numpy()
  for level in range(len(back_feats)):
    arrays[f'out/backbone_feats_{level}'] = back_feats[level].detach().numpy()
    arrays[f'out/fpn_feats_{level}'] = fpn_feats[level].detach().numpy()
    arrays[f'out/fpn_masks_{level}'] = fpn_masks[level].numpy()
    arrays[f'out/cls_logits_{level}'] = cls_logits[level].detach().numpy()
    arrays[f'out/reg_offsets_{level}'] = offsets[level].detach().numpy()
    arrays[f'points_{level}'] = points[level].numpy()

  gt_cls, gt_offsets = model.label_points(
    points, [v['segments'] for v in videos], [v['labels'] for v in videos]
  )
  gt_cls, gt_offsets = torch.stack(gt_cls), torch.stack(gt_offsets)
  valid = torch.cat(fpn_masks, dim=1)
  pos = valid & (gt_cls.sum(-1) > 0)
  arrays['target/gt_cls'] = gt_cls.numpy().copy()
  arrays['target/gt_offsets'] = gt_offsets.numpy().copy()
  arrays['target/valid_mask'] = valid.numpy()
  arrays['target/pos_mask'] = pos.numpy()

  init_norm = float(CONFIG['train_cfg']['init_loss_norm'])
  model.loss_normalizer = init_norm
  losses = model.losses(
    fpn_masks, cls_logits, offsets, list(gt_cls.clone()), list(gt_offsets.clone())
  )
  model.zero_grad(set_to_none=True)
  losses['final_loss'].backward()
  for name, p in model.named_parameters():
    arrays[f'grad/{name}'] = p.grad.numpy().copy()
  for k in ('cls_loss', 'reg_loss', 'final_loss'):
    arrays[f'loss/{k}'] = np.float32(losses[k].item())
  num_pos = int(pos.sum())
  arrays['loss/num_pos'] = np.int64(num_pos)
  arrays['loss/loss_normalizer'] = np.float32(model.loss_normalizer)

  decode = {}
  if with_nms:
    decode = predictions(model, videos[0], points, fpn_masks, cls_logits, offsets, arrays)

  sizes = [int(p.shape[0]) for p in points]
  strides = [int(p[0, 3]) for p in points]
  offsets_flat = [int(x) for x in np.cumsum([0, *sizes[:-1]])]
  multi_hot = (gt_cls.sum(-1) > 1) & valid
  level_of = np.repeat(np.arange(len(sizes)), sizes)
  config = {
    'name': None,  # Set by main from the file name.
    'format_version': 1,
    'generator': 'bench/make_parity_fixture.py',
    'reference': {
      'repo': 'happyharrycn/actionformer_release',
      'commit': reference_env.git_commit(pathlib.Path(repo)),
      'meta_arch': 'LocPointTransformer',
      'torch': torch.__version__,
      'numpy': np.__version__,
      'python': platform.python_version(),
      'nms_1d_cpu': with_nms,
      'threads': torch.get_num_threads(),
    },
    'seed': SEED,
    'mode': (
      'model.eval() for every forward (dropout and drop-path off). The training targets and '
      "losses come from the model's own label_points/losses, called on the eval-mode outputs."
    ),
    'model_name': 'LocPointTransformer',
    'model_kwargs': json.loads(json.dumps(CONFIG)),
    'derived': {
      'fpn_strides': strides,
      'mha_win_size_per_level': list(model.mha_win_size),
      'max_div_factor': model.max_div_factor,
      'embed_dim': sum(CONFIG['embd_dim']),
    },
    'videos': [
      {k: v[k] for k in ('video_id', 'duration', 'fps', 'feat_stride', 'feat_num_frames')}
      | {'length': int(v['feats'].shape[1]), 'num_segments': len(v['labels'])}
      for v in videos
    ],
    'batch': {
      'batch_size': len(videos),
      'padded_len': int(feats.shape[2]),
      'lengths': arrays['input/lengths'].tolist(),
    },
    'levels': {
      'strides': strides,
      'lengths': sizes,
      'regression_range': [list(r) for r in CONFIG['regression_range']],
      'concat_offsets': offsets_flat,
      'total_points': sum(sizes),
    },
    'weights': {
      'how': (
        'torch.manual_seed(seed); make_meta_arch(...) (reference init); then perturbed with '
        'torch.Generator seeded seed+1000'
      ),
      'rules': rules,
    },
    'loss_normalizer': {
      'init': init_norm,
      'momentum': 0.9,
      'num_pos': num_pos,
      'formula': '0.9 * init + 0.1 * max(num_pos, 1), updated before dividing',
      'value': model.loss_normalizer,
    },
    'losses': {k: losses[k].item() for k in ('cls_loss', 'reg_loss', 'final_loss')},
    'decode': decode,
    'assignment_stats': {
      'positives_per_level': np.bincount(
        level_of[np.nonzero(pos.numpy())[1]], minlength=len(sizes)
      ).tolist(),
      'multi_hot_points': int(multi_hot.sum()),
      'assigned_but_padded_points': int(((gt_cls.sum(-1) > 0) & ~valid).sum()),
    },
  }
  return arrays, config


def predictions(model, video, points, fpn_masks, cls_logits, offsets, arrays) -> dict:
  """``pred/*`` of video 0 (row 0 of the batched outputs): candidates, Soft-NMS, seconds."""
  import numpy as np
  import torch
  from libs.utils import batched_nms

  with torch.no_grad():
    row = lambda xs: [x[0] for x in xs]
    cand = model.inference_single_video(points, row(fpn_masks), row(cls_logits), row(offsets))
    per_level = [
      int(model.inference_single_video([p], [m], [c], [o])['scores'].shape[0])
      for p, m, c, o in zip(points, row(fpn_masks), row(cls_logits), row(offsets))
    ]
    meta = {k: video[k] for k in ('video_id', 'fps', 'duration', 'feat_stride', 'feat_num_frames')}
    method = model.test_nms_method
    model.test_nms_method = 'none'
    (no_nms,) = model.postprocessing([dict(cand, **meta)])
    model.test_nms_method = method
    (final,) = model.postprocessing([dict(cand, **meta)])
    tc = CONFIG['test_cfg']
    nms_grid, _, _ = batched_nms(
      cand['segments'],
      cand['scores'],
      cand['labels'],
      tc['iou_threshold'],
      tc['min_score'],
      tc['max_seg_num'],
      use_soft_nms=tc['nms_method'] == 'soft',
      multiclass=tc['multiclass_nms'],
      sigma=tc['nms_sigma'],
      voting_thresh=tc['voting_thresh'],
    )
  arrays['pred/pre_nms_segments'] = cand['segments'].numpy()
  arrays['pred/pre_nms_scores'] = cand['scores'].numpy()
  arrays['pred/pre_nms_labels'] = cand['labels'].numpy()
  arrays['pred/pre_nms_level'] = np.repeat(np.arange(len(per_level)), per_level).astype(np.int64)
  arrays['pred/pre_nms_segments_sec'] = no_nms['segments'].numpy()
  arrays['pred/nms_segments_grid'] = nms_grid.numpy()
  arrays['pred/segments_sec'] = final['segments'].numpy()
  arrays['pred/scores'] = final['scores'].numpy()
  arrays['pred/labels'] = final['labels'].numpy()
  return {
    'pre_nms_count': int(cand['scores'].shape[0]),
    'pre_nms_per_level': per_level,
    'post_nms_count': int(final['scores'].shape[0]),
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', required=True, help='the .npz to write')
  parser.add_argument('--no_nms', action='store_true', help='leave pred/* out (no compiled NMS)')
  args = parser.parse_args(argv)
  repo = os.environ.get(reference_env.ENV_REPO)
  if not repo:
    parser.error(f'set {reference_env.ENV_REPO} to an ActionFormer checkout')
  import numpy as np

  arrays, config = generate(repo, with_nms=not args.no_nms)
  out = pathlib.Path(args.out)
  config['name'] = out.stem
  config['keys'] = {k: [list(v.shape), str(v.dtype)] for k, v in sorted(arrays.items())}
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, config_json=np.array(json.dumps(config)), **arrays)
  print(json.dumps({k: config[k] for k in ('losses', 'loss_normalizer', 'decode')}))
  print(f'wrote {out} ({out.stat().st_size / 1e3:.0f} kB, {len(arrays) + 1} keys)', file=sys.stderr)


if __name__ == '__main__':
  main()
