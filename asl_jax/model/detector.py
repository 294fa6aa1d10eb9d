"""The one-stage detector: encoder pyramid -> neck -> shared classification and regression heads."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.encoder import ConvTransformerEncoder
from asl_jax.model.heads import ClassificationHead, RegressionHead
from asl_jax.model.layers import Dtype
from asl_jax.model.neck import FPN1D, IdentityNeck
from asl_jax.model.sensitivity import ClassGaussians, InstanceEvaluator


class ActionDetector(nn.Module):
  """Predicts per-point class logits and start/end distances on every pyramid level.

  Outputs are concatenated over levels in level-major order, matching the point grid of
  :func:`asl_jax.ops.segments.make_points`.
  """

  num_classes: int
  embed_dim: int = 512
  num_heads: int = 4
  num_embed_convs: int = 2
  num_stem: int = 2
  num_branch: int = 5
  embed_kernel_size: int = 3
  window_sizes: Sequence[int] = (19,) * 6
  mlp_ratio: int = 4
  dropout: float = 0.0
  droppath: float = 0.1
  neck: str = 'identity'  # 'identity' | 'fpn'
  fpn_dim: int = 512
  head_dim: int = 512
  head_num_layers: int = 3
  head_kernel_size: int = 3
  cls_prior_prob: float = 0.01
  empty_classes: Sequence[int] = ()
  # ASL (0 / 'none' / False everywhere gives the ActionFormer baseline).
  channel_theta: float = 0.0  # Weight of channel attention in the stem blocks (paper theta).
  cls_gaussian: str = 'none'  # Class-level Gaussian for classification: learnable | fixed | none.
  loc_gaussian: str = 'none'  # Class-level Gaussians for localisation: learnable | fixed | none.
  num_loc_gaussians: int = 2  # 2: start and end; 1: one for both.
  num_cls_gaussians: int = 1  # Classification Gaussians: 1, or 2 summed (Table 7).
  shared_gaussian: bool = False  # One Gaussian per class for every sub-task.
  instance_evaluator: bool = False  # Instance-level quality heads q_cls, q_loc.
  # Input embedding.
  input_streams: Sequence[int] = ()  # Channel widths of concatenated feature sets; () = one set.
  stream_embed_dims: Sequence[int] = ()  # Width each stream is projected to (1x1 masked conv).
  use_abs_pe: bool = False  # Sinusoid absolute position embedding after the embedding convs.
  max_seq_len: int = 0  # Position-table length (the training window); > 0 with use_abs_pe.
  remat: str = 'none'  # Encoder-block rematerialisation (encoder.REMAT_POLICIES).
  dtype: Dtype = jnp.float32  # Compute dtype; parameters stay float32.

  @nn.compact
  def __call__(self, feats: jax.Array, mask: jax.Array, *, deterministic: bool = True) -> dict:
    """feats ``[B, T, C_in]`` float, mask ``[B, T]`` bool (T divisible by 2**num_branch).

    Returns:
      dict with ``cls_logits`` ``[B, P, K]`` (float32), ``offsets`` ``[B, P, 2]`` (float32),
      ``mask`` ``[B, P]``, ``features`` (per-level neck outputs ``[B, T_l, C]``),
      ``encoder_level0`` ``[B, T, C]`` (read by the contrastive loss), ``gaussians`` (the class
      Gaussians, see ``ClassGaussians``) and, with the instance evaluator, ``q_cls`` / ``q_loc``
      ``[B, P]``.
    """
    x = feats.astype(self.dtype)
    levels, masks = ConvTransformerEncoder(
      embed_dim=self.embed_dim,
      num_heads=self.num_heads,
      num_embed_convs=self.num_embed_convs,
      num_stem=self.num_stem,
      num_branch=self.num_branch,
      embed_kernel_size=self.embed_kernel_size,
      window_sizes=tuple(self.window_sizes),
      mlp_ratio=self.mlp_ratio,
      dropout=self.dropout,
      droppath=self.droppath,
      channel_theta=self.channel_theta,
      input_streams=tuple(self.input_streams),
      stream_embed_dims=tuple(self.stream_embed_dims),
      use_abs_pe=self.use_abs_pe,
      max_seq_len=self.max_seq_len,
      remat=self.remat,
      dtype=self.dtype,
      name='encoder',
    )(x, mask, deterministic=deterministic)
    encoder_level0 = levels[0]
    if self.neck == 'identity':
      if self.fpn_dim != self.embed_dim:
        raise ValueError(
          f'the identity neck needs fpn_dim == embed_dim, got {self.fpn_dim} != {self.embed_dim}'
        )
      levels, masks = IdentityNeck(self.dtype, name='neck')(levels, masks)
    elif self.neck == 'fpn':
      levels, masks = FPN1D(self.fpn_dim, self.dtype, name='neck')(levels, masks)
    else:
      raise ValueError(f"unknown neck {self.neck!r}; expected 'identity' or 'fpn'")
    logits = ClassificationHead(
      self.num_classes,
      self.head_dim,
      self.head_num_layers,
      self.head_kernel_size,
      self.cls_prior_prob,
      tuple(self.empty_classes),
      self.dtype,
      name='cls_head',
    )(levels, masks)
    offsets = RegressionHead(
      self.head_dim,
      len(levels),
      self.head_num_layers,
      self.head_kernel_size,
      self.dtype,
      name='reg_head',
    )(levels, masks)
    outputs = {
      'cls_logits': jnp.concatenate(logits, axis=1),
      'offsets': jnp.concatenate(offsets, axis=1),
      'mask': jnp.concatenate(masks, axis=1),
      'features': levels,
      'encoder_level0': encoder_level0,
      'gaussians': ClassGaussians(
        self.num_classes,
        cls_mode=self.cls_gaussian,
        loc_mode=self.loc_gaussian,
        num_loc=self.num_loc_gaussians,
        num_cls=self.num_cls_gaussians,
        shared=self.shared_gaussian,
        name='class_gaussians',
      )(),
    }
    if self.instance_evaluator:
      outputs['q_cls'] = InstanceEvaluator(self.head_dim, dtype=self.dtype, name='q_cls')(
        levels, masks
      )
      outputs['q_loc'] = InstanceEvaluator(self.head_dim, dtype=self.dtype, name='q_loc')(
        levels, masks
      )
    return outputs
