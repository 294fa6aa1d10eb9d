"""Necks between the encoder pyramid and the heads: per-level LayerNorm, or a 1-D FPN."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.layers import Dtype, MaskedConv1D, layer_norm


class IdentityNeck(nn.Module):
  """One LayerNorm per level (the configuration ActionFormer and ASL use)."""

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], masks: list[jax.Array]):
    return [layer_norm(f'norm_{i}', self.dtype)(f) for i, f in enumerate(feats)], masks


class FPN1D(nn.Module):
  """Feature pyramid network: lateral 1x1 convs, top-down nearest upsampling, 3x3 output convs."""

  out_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], masks: list[jax.Array]):
    laterals = [
      MaskedConv1D(self.out_dim, 1, dtype=self.dtype, name=f'lateral_{i}')(f, m)[0]
      for i, (f, m) in enumerate(zip(feats, masks))
    ]
    for i in range(len(laterals) - 1, 0, -1):
      up = jnp.repeat(laterals[i], 2, axis=1)[:, : laterals[i - 1].shape[1]]
      laterals[i - 1] = laterals[i - 1] + up
    outs = []
    for i, (f, m) in enumerate(zip(laterals, masks)):
      y, _ = MaskedConv1D(self.out_dim, 3, use_bias=False, dtype=self.dtype, name=f'fpn_conv_{i}')(
        f, m
      )
      outs.append(layer_norm(f'norm_{i}', self.dtype)(y))
    return outs, masks
