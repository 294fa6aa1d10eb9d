"""Action Sensitivity Evaluator modules (ASL sec. 3.2): class Gaussians, instance evaluators."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.layers import Dtype, MaskedConv1D, dense, layer_norm

GAUSSIAN_MODES = ('learnable', 'fixed', 'none')


class ClassGaussians(nn.Module):
  """Learnable per-class Gaussians over the normalised position inside an action.

  One Gaussian for classification (init mu 0, sigma 1) and, for localisation, two (start at
  mu -0.5, end at +0.5), one (mu 0) or none (paper Tables 6-7). ``shared`` makes every sub-task
  use the classification Gaussian. ``fixed`` keeps the initial values (no gradient).
  ``num_cls = 2`` (Table 7's "#cls = 2") gives classification two Gaussians whose sum is p_cls,
  as the two localisation ones sum to p_loc; the paper gives no initial values for them: we start
  them at mu -0.25 and +0.25 (the action's first and second half), sigma 1.
  """

  num_classes: int
  cls_mode: str = 'learnable'
  loc_mode: str = 'learnable'
  num_loc: int = 2
  shared: bool = False
  num_cls: int = 1  # Classification Gaussians: 1, or 2 summed (Table 7).

  def _pair(self, name: str, mu0: float, mode: str):
    k = self.num_classes
    mu = self.param(f'{name}_mu', nn.initializers.constant(mu0), (k,))
    sigma = self.param(f'{name}_sigma', nn.initializers.ones, (k,))
    if mode == 'fixed':
      mu, sigma = jax.lax.stop_gradient(mu), jax.lax.stop_gradient(sigma)
    return mu, sigma

  @nn.compact
  def __call__(self) -> dict:
    """Returns ``{'cls': (mu, sigma) | None, 'loc': [(mu, sigma), ...]}``, each ``[K]``."""
    for mode in (self.cls_mode, self.loc_mode):
      if mode not in GAUSSIAN_MODES:
        raise ValueError(f'Gaussian mode must be one of {GAUSSIAN_MODES}, got {mode!r}')
    if self.num_loc not in (0, 1, 2):
      raise ValueError(f'num_loc must be 0, 1 or 2, got {self.num_loc}')
    if self.num_cls not in (1, 2):
      raise ValueError(f'num_cls must be 1 or 2, got {self.num_cls}')
    if self.shared and self.num_cls != 1:
      raise ValueError('a shared Gaussian is one per class: num_cls must be 1 with shared')
    if self.shared:
      pair = self._pair('shared', 0.0, self.cls_mode) if self.cls_mode != 'none' else None
      loc = [pair] * self.num_loc if pair is not None and self.loc_mode != 'none' else []
      return {'cls': pair, 'loc': loc}
    cls, cls_extra = None, []
    if self.cls_mode != 'none' and self.num_cls == 1:
      cls = self._pair('cls', 0.0, self.cls_mode)
    elif self.cls_mode != 'none':
      cls = self._pair('cls', -0.25, self.cls_mode)
      cls_extra = [self._pair('cls2', 0.25, self.cls_mode)]
    loc = []
    if self.loc_mode != 'none':
      if self.num_loc == 2:
        loc = [self._pair('start', -0.5, self.loc_mode), self._pair('end', 0.5, self.loc_mode)]
      elif self.num_loc == 1:
        loc = [self._pair('loc', 0.0, self.loc_mode)]
    if cls_extra:
      return {'cls': cls, 'cls_extra': cls_extra, 'loc': loc}
    return {'cls': cls, 'loc': loc}


class InstanceEvaluator(nn.Module):
  """Per-point quality in (0, 1): masked conv -> LayerNorm -> ReLU -> linear -> sigmoid (eq. 5).

  Shared across pyramid levels, applied to the neck features (the heads' input).
  """

  features: int
  kernel_size: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], masks: list[jax.Array]) -> jax.Array:
    """Per-level ``[B, T_l, C]`` -> concatenated ``[B, P]`` float32 (0 on padding)."""
    conv = MaskedConv1D(
      self.features, self.kernel_size, use_bias=False, dtype=self.dtype, name='conv'
    )
    norm = layer_norm('norm', self.dtype)
    out = dense(1, name='fc', dtype=self.dtype)
    scores = []
    for f, m in zip(feats, masks):
      h, _ = conv(f, m)
      q = jax.nn.sigmoid(out(nn.relu(norm(h))).astype(jnp.float32))[..., 0]
      scores.append(q * m)
    return jnp.concatenate(scores, axis=1)
