"""The only place where a config becomes model constructor arguments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from asl_jax import configuration
from asl_jax.model.detector import ActionDetector

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_model(config: ml_collections.ConfigDict) -> ActionDetector:
  """Builds the detector from ``config.model`` and ``config.data`` (classes, window length)."""
  m = config.model
  num_embed_convs, num_stem, num_branch = m.arch
  return ActionDetector(
    num_classes=config.data.num_classes,
    embed_dim=m.embed_dim,
    num_heads=m.num_heads,
    num_embed_convs=num_embed_convs,
    num_stem=num_stem,
    num_branch=num_branch,
    embed_kernel_size=m.embed_kernel_size,
    window_sizes=configuration.window_sizes(config),
    mlp_ratio=m.mlp_ratio,
    dropout=m.dropout,
    droppath=m.droppath,
    neck=m.neck,
    fpn_dim=m.fpn_dim,
    head_dim=m.head_dim,
    head_num_layers=m.head_num_layers,
    head_kernel_size=m.head_kernel_size,
    cls_prior_prob=m.cls_prior_prob,
    empty_classes=tuple(m.empty_classes),
    channel_theta=m.channel_theta,
    cls_gaussian=m.ase.cls_gaussian,
    loc_gaussian=m.ase.loc_gaussian,
    num_loc_gaussians=m.ase.num_loc_gaussians,
    num_cls_gaussians=m.ase.get('num_cls_gaussians', 1),
    shared_gaussian=m.ase.shared_gaussian,
    instance_evaluator=m.ase.instance_evaluator,
    input_streams=tuple(m.input_streams),
    stream_embed_dims=tuple(m.stream_embed_dims),
    use_abs_pe=m.use_abs_pe,
    max_seq_len=config.data.max_seq_len,
    remat=m.get('remat', 'none'),
    dtype=DTYPES[m.dtype],
  )


def params_template(model: ActionDetector, config: ml_collections.ConfigDict):
  """The parameter tree ``model`` has for ``config`` (shapes only, nothing allocated)."""
  length, dim = config.data.max_seq_len, config.data.input_dim
  return jax.eval_shape(
    lambda: model.init(
      jax.random.PRNGKey(0),
      jnp.zeros((1, length, dim), jnp.float32),
      jnp.ones((1, length), bool),
    )['params']
  )
