"""Convolutional embedding and the transformer encoder that builds the temporal feature pyramid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.model.attention import MaskedMHCA
from asl_jax.model.channel_attention import ChannelAttention
from asl_jax.model.embedding import StreamProjection, absolute_position_embedding
from asl_jax.model.layers import (
  AffineDropPath,
  Dtype,
  MaskedConv1D,
  dense,
  layer_norm,
  max_pool_skip,
)


class TransformerBlock(nn.Module):
  """Pre-LN block: ``y = skip(x) + ADP(A(LN(x)))``; ``y = y + ADP(MLP(LN(y)))``.

  ``A`` is temporal attention (MHCA) or, with ``channel_theta > 0`` (ASL eq. 1), the fusion
  ``(1 - theta) MHCA + theta CA`` of temporal and channel attention computed in parallel on the
  same normalised input, before the residual and the MLP as in the paper (the released code
  fuses after each branch's own MLP). Channel attention runs only in stride-1 blocks.
  With ``stride == 2`` the attention's q/k/v convs and the max-pool skip halve the length.
  """

  embed_dim: int
  num_heads: int
  window_size: int = -1
  stride: int = 1
  mlp_ratio: int = 4
  dropout: float = 0.0  # After the attention projection and inside the MLP.
  droppath: float = 0.0
  channel_theta: float = 0.0  # ASL's theta; 0 disables channel attention.
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, deterministic: bool) -> tuple[jax.Array, jax.Array]:
    """x ``[B, T, C]``, mask ``[B, T]`` -> (``[B, T/stride, C]``, mask).

    ``deterministic`` may be passed positionally: :data:`REMAT_POLICIES` needs it static (argnum 3).
    """
    c = self.embed_dim
    h_in = layer_norm('ln1', self.dtype)(x)
    attn, out_mask = MaskedMHCA(
      c, self.num_heads, self.window_size, self.stride, self.dropout, self.dtype, name='attn'
    )(h_in, mask, deterministic=deterministic)
    if self.channel_theta > 0 and self.stride == 1:
      channel = ChannelAttention(c, self.num_heads, self.dtype, name='channel_attn')(h_in, mask)
      attn = (1.0 - self.channel_theta) * attn + self.channel_theta * channel
    m = out_mask[..., None].astype(x.dtype)
    y = max_pool_skip(x, self.stride) * m
    y = y + AffineDropPath(self.droppath, name='drop_path_attn')(attn, deterministic=deterministic)
    h = dense(self.mlp_ratio * c, name='mlp_fc1', dtype=self.dtype)(
      layer_norm('ln2', self.dtype)(y)
    )
    h = nn.Dropout(self.dropout)(nn.gelu(h, approximate=False), deterministic=deterministic)
    h = dense(c, name='mlp_fc2', dtype=self.dtype)(h)
    h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    y = y + AffineDropPath(self.droppath, name='drop_path_mlp')(h * m, deterministic=deterministic)
    return y, out_mask


# Rematerialisation of each transformer block in the backward pass (``model.remat``): what the
# forward pass keeps for the backward pass inside a block. 'full' keeps only the block's input and
# recomputes the rest; 'dots' keeps the outputs of the projections (matmuls without batch
# dimensions) and recomputes attention scores, softmax, norms and activations. Measured in
# bench/RESULTS.md ("step memory"); docs/design.md says when each pays.
REMAT_POLICIES: dict[str, Any] = {
  'none': None,
  'full': jax.checkpoint_policies.nothing_saveable,
  'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class ConvTransformerEncoder(nn.Module):
  """Embedding convs, ``num_stem`` stride-1 blocks, then ``num_branch`` stride-2 blocks.

  Optionally, before the embedding convs, each concatenated input stream gets its own 1x1
  projection (``input_streams``), and after them a sinusoid absolute position embedding is added
  at valid positions (``use_abs_pe``; indexed by absolute position, stretched linearly for inputs
  longer than ``max_seq_len``). Returns one feature map per pyramid level: level 0 is the stem
  output, level ``l`` the output of branch block ``l - 1``.
  """

  embed_dim: int
  num_heads: int
  num_embed_convs: int = 2
  num_stem: int = 2
  num_branch: int = 5
  embed_kernel_size: int = 3
  window_sizes: Sequence[int] = (19,) * 6  # One per level (stem blocks use level 0's).
  mlp_ratio: int = 4
  dropout: float = 0.0
  droppath: float = 0.1
  channel_theta: float = 0.0  # ASL's theta for the stride-1 (stem) blocks; 0 disables.
  input_streams: Sequence[int] = ()  # Channel widths of concatenated input streams; () = one.
  stream_embed_dims: Sequence[int] = ()  # Projected width of each stream (concatenated).
  use_abs_pe: bool = False  # Add the sinusoid absolute position embedding after the embedding.
  max_seq_len: int = 0  # Length of the position table (training window); > 0 with use_abs_pe.
  remat: str = 'none'  # Block rematerialisation: a key of REMAT_POLICIES.
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, *, deterministic: bool) -> tuple[list[jax.Array], list[jax.Array]]:
    """x ``[B, T, C_in]``, mask ``[B, T]`` -> per-level features ``[B, T_l, C]`` and masks."""
    if len(self.window_sizes) != self.num_branch + 1:
      raise ValueError(
        f'window_sizes has {len(self.window_sizes)} entries; need num_branch + 1 = '
        f'{self.num_branch + 1} (one per pyramid level)'
      )
    if self.input_streams:
      x = StreamProjection(
        tuple(self.input_streams), tuple(self.stream_embed_dims), self.dtype, name='input_proj'
      )(x, mask)
    for i in range(self.num_embed_convs):
      x, mask = MaskedConv1D(
        self.embed_dim,
        self.embed_kernel_size,
        use_bias=False,
        dtype=self.dtype,
        name=f'embed_conv_{i}',
      )(x, mask)
      x = nn.relu(layer_norm(f'embed_norm_{i}', self.dtype)(x))
    if self.use_abs_pe:
      # Added only at valid positions, so a video's outputs do not depend on its padding (as
      # long as the padded length stays within max_seq_len: beyond it the table is stretched).
      pe = absolute_position_embedding(x.shape[1], x.shape[-1], self.max_seq_len)
      x = x + jnp.asarray(pe, x.dtype)[None] * mask[..., None].astype(x.dtype)

    if self.remat not in REMAT_POLICIES:
      raise ValueError(f'remat must be one of {sorted(REMAT_POLICIES)}, got {self.remat!r}')
    block_class = TransformerBlock
    if self.remat != 'none':  # Same parameters and values; less memory, more compute.
      block_class = nn.remat(
        TransformerBlock, static_argnums=(3,), policy=REMAT_POLICIES[self.remat]
      )

    def block(name, stride, window):
      return block_class(
        embed_dim=self.embed_dim,
        num_heads=self.num_heads,
        window_size=window,
        stride=stride,
        mlp_ratio=self.mlp_ratio,
        dropout=self.dropout,
        droppath=self.droppath,
        channel_theta=self.channel_theta,
        dtype=self.dtype,
        name=name,
      )

    for i in range(self.num_stem):
      x, mask = block(f'stem_{i}', 1, self.window_sizes[0])(x, mask, deterministic)
    feats, masks = [x], [mask]
    for i in range(self.num_branch):
      x, mask = block(f'branch_{i}', 2, self.window_sizes[i + 1])(x, mask, deterministic)
      feats.append(x)
      masks.append(mask)
    return feats, masks
