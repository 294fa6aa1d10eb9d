"""The only place where a config becomes model constructor arguments."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from asl_jax.model.detector import ActionDetector

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_model(config: ml_collections.ConfigDict) -> ActionDetector:
  """Builds the detector from ``config.model`` and ``config.data`` (classes, window length)."""
  m = config.model
  num_embed_convs, num_stem, num_branch = m.arch
  window_sizes = (
    m.window_size
    if isinstance(m.window_size, (tuple, list))
    else (m.window_size,) * (num_branch + 1)
  )
  return ActionDetector(
    num_classes=config.data.num_classes,
    embed_dim=m.embed_dim,
    num_heads=m.num_heads,
    num_embed_convs=num_embed_convs,
    num_stem=num_stem,
    num_branch=num_branch,
    embed_kernel_size=m.embed_kernel_size,
    window_sizes=tuple(window_sizes),
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
    shared_gaussian=m.ase.shared_gaussian,
    instance_evaluator=m.ase.instance_evaluator,
    input_streams=tuple(m.input_streams),
    stream_embed_dims=tuple(m.stream_embed_dims),
    use_abs_pe=m.use_abs_pe,
    max_seq_len=config.data.max_seq_len,
    dtype=DTYPES[m.dtype],
  )
