"""Classification and regression heads, shared across pyramid levels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.layers import Dtype, MaskedConv1D, Scale, layer_norm


class _ConvTower(nn.Module):
  """``num_layers`` x (masked conv without bias -> LayerNorm -> ReLU)."""

  features: int
  num_layers: int
  kernel_size: int
  dtype: Dtype

  @nn.compact
  def __call__(self, x, mask):
    for i in range(self.num_layers):
      x, _ = MaskedConv1D(
        self.features, self.kernel_size, use_bias=False, dtype=self.dtype, name=f'conv_{i}'
      )(x, mask)
      x = nn.relu(layer_norm(f'norm_{i}', self.dtype)(x))
    return x


def prior_bias(num_classes: int, prior_prob: float, empty_classes: Sequence[int] = ()) -> jax.Array:
  """Logit bias so that initial probabilities are ``prior_prob`` (1e-6 for classes with no data)."""
  bias = jnp.full((num_classes,), -math.log((1 - prior_prob) / prior_prob), jnp.float32)
  if empty_classes:
    bias = bias.at[jnp.asarray(empty_classes)].set(-math.log((1 - 1e-6) / 1e-6))
  return bias


class ClassificationHead(nn.Module):
  """Per-point class logits ``[B, T_l, K]`` for every level, with shared weights."""

  num_classes: int
  head_dim: int
  num_layers: int = 3  # Including the output conv.
  kernel_size: int = 3
  prior_prob: float = 0.01
  empty_classes: Sequence[int] = ()
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], masks: list[jax.Array]) -> list[jax.Array]:
    tower = _ConvTower(
      self.head_dim, self.num_layers - 1, self.kernel_size, self.dtype, name='tower'
    )
    bias = prior_bias(self.num_classes, self.prior_prob, tuple(self.empty_classes))
    out = MaskedConv1D(
      self.num_classes,
      self.kernel_size,
      bias_init=lambda *_: bias,
      dtype=self.dtype,
      name='cls_conv',
    )
    return [out(tower(f, m), m)[0].astype(jnp.float32) for f, m in zip(feats, masks)]


class RegressionHead(nn.Module):
  """Per-point distances to start and end ``[B, T_l, 2]`` in units of the level's stride (>= 0)."""

  head_dim: int
  num_levels: int
  num_layers: int = 3
  kernel_size: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], masks: list[jax.Array]) -> list[jax.Array]:
    tower = _ConvTower(
      self.head_dim, self.num_layers - 1, self.kernel_size, self.dtype, name='tower'
    )
    out = MaskedConv1D(2, self.kernel_size, dtype=self.dtype, name='offset_conv')
    offsets = []
    for level, (f, m) in enumerate(zip(feats, masks)):
      y, _ = out(tower(f, m), m)
      offsets.append(nn.relu(Scale(name=f'scale_{level}')(y.astype(jnp.float32))))
    return offsets
