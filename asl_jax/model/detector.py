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
  dtype: Dtype = jnp.float32  # Compute dtype; parameters stay float32.

  @nn.compact
  def __call__(self, feats: jax.Array, mask: jax.Array, *, deterministic: bool = True) -> dict:
    """feats ``[B, T, C_in]`` float, mask ``[B, T]`` bool (T divisible by 2**num_branch).

    Returns:
      dict with ``cls_logits`` ``[B, P, K]`` (float32), ``offsets`` ``[B, P, 2]`` (float32),
      ``mask`` ``[B, P]`` and ``features`` (per-level neck outputs ``[B, T_l, C]``).
    """
    x = feats.astype(self.dtype)
    levels, masks = ConvTransformerEncoder(
      self.embed_dim,
      self.num_heads,
      self.num_embed_convs,
      self.num_stem,
      self.num_branch,
      self.embed_kernel_size,
      tuple(self.window_sizes),
      self.mlp_ratio,
      self.dropout,
      self.droppath,
      self.dtype,
      name='encoder',
    )(x, mask, deterministic=deterministic)
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
    return {
      'cls_logits': jnp.concatenate(logits, axis=1),
      'offsets': jnp.concatenate(offsets, axis=1),
      'mask': jnp.concatenate(masks, axis=1),
      'features': levels,
    }
