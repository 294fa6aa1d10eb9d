"""Config checks at load time, with errors a user can act on, and small typed views of fields."""

from __future__ import annotations

import difflib

import ml_collections

from asl_jax.errors import UserError

# train.peer_timeout_s: shorter than a few heartbeats misreads a busy peer as lost.
MIN_PEER_TIMEOUT_S, MAX_PEER_TIMEOUT_S = 5, 3600


class ConfigError(UserError, ValueError):
  """A config that cannot work; the message lists every problem found."""


def _base_config() -> ml_collections.ConfigDict:
  from asl_jax.configs import base

  return base.get_base_config()


def _flat_keys(config: ml_collections.ConfigDict, prefix: str = '') -> set[str]:
  keys = set()
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys |= _flat_keys(v, f'{prefix}{k}.')
    else:
      keys.add(prefix + k)
  return keys


def parse_subsets(value: str | tuple | list) -> tuple[str, ...]:
  """'training,validation' or a sequence -> ('training', 'validation')."""
  if isinstance(value, str):
    return tuple(s.strip() for s in value.split(',') if s.strip())
  return tuple(value)


def pyramid_stride(config: ml_collections.ConfigDict) -> int:
  """Total downsampling of the last pyramid level; every input length must be a multiple of it."""
  return config.model.scale_factor ** config.model.arch[2]


def per_level(value, num_levels: int) -> tuple:
  """A setting given once for every pyramid level, or as a per-level list -> one per level."""
  return tuple(value) if isinstance(value, (tuple, list)) else (value,) * num_levels


def window_sizes(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """One attention window per pyramid level (-1: global), from an int or a per-level list."""
  return per_level(config.model.window_size, config.model.arch[2] + 1)


# Allowed values of numeric fields: (field, low, high, low included, high included, what it is).
# None: unbounded on that side. Checked at load by validate_config; the error names the range.
RANGES = (
  ('train.learning_rate', 0, None, False, True, 'peak AdamW learning rate'),
  ('train.num_epochs', 0, None, True, True, 'epochs after warm-up'),
  ('train.warmup_epochs', 0, None, True, True, 'warm-up epochs'),
  ('train.weight_decay', 0, None, True, True, 'AdamW weight decay'),
  ('train.ema_decay', 0, 1, True, False, 'EMA decay'),
  ('train.init_loss_norm', 0, None, False, True, 'initial loss normaliser'),
  ('train.reg_loss_weight', 0, None, True, True, 'regression loss weight'),
  ('train.sensitivity_loss_weight', 0, None, True, True, 'sensitivity loss weight'),
  ('train.label_smoothing', 0, 1, True, False, 'label smoothing'),
  ('train.contrastive_weight', 0, None, True, True, 'lambda of the contrastive loss'),
  ('train.contrastive_delta', 0, 1, False, False, 'delta of the sensitive ranges'),
  ('train.contrastive_temperature', 0, None, False, True, 'contrastive temperature'),
  ('train.focal_alpha', 0, 1, True, True, 'focal loss alpha (a probability)'),
  ('train.focal_gamma', 0, None, True, True, 'focal loss gamma'),
  ('train.log_every_steps', 1, None, True, True, 'logging interval'),
  ('train.checkpoint_every_steps', 1, None, True, True, 'checkpoint interval'),
  ('train.keep_checkpoints', 1, None, True, True, 'checkpoints kept'),
  ('train.eval_every_epochs', 0, None, True, True, 'evaluation interval (0: at the end)'),
  ('model.channel_theta', 0, 1, True, True, 'theta of the channel attention fusion'),
  ('model.dropout', 0, 1, True, False, 'dropout rate'),
  ('model.droppath', 0, 1, True, False, 'stochastic depth rate'),
  ('model.cls_prior_prob', 0, 1, False, False, 'classifier prior probability'),
  ('model.mlp_ratio', 0, None, False, True, 'MLP width ratio'),
  ('model.embed_dim', 1, None, True, True, 'transformer width'),
  ('model.num_heads', 1, None, True, True, 'attention heads'),
  ('model.head_num_layers', 1, None, True, True, 'convs per head'),
  ('data.max_segments', 1, None, True, True, 'segments per video'),
  ('data.downsample_rate', 1, None, True, True, 'feature downsampling'),
  ('data.synthetic.weak_frame_prob', 0, 1, True, True, 'a probability'),
  ('test.pre_nms_thresh', 0, 1, True, True, 'a probability'),
  ('test.min_score', 0, 1, True, True, 'a probability'),
  ('test.pre_nms_topk', 1, None, True, True, 'candidates per level'),
  ('test.max_seg_num', 1, None, True, True, 'detections per video'),
  ('test.nms_sigma', 0, None, False, True, 'Soft-NMS sigma'),
  ('test.iou_threshold', 0, 1, True, True, 'an IoU'),
  ('test.voting_thresh', 0, 1, True, True, 'an IoU'),
  ('test.duration_thresh', 0, None, True, True, 'minimum candidate length'),
)


def _interval(low, high, low_in: bool, high_in: bool) -> str:
  if high is None:
    return f'{">=" if low_in else ">"} {low}'
  return f'in {"[" if low_in else "("}{low}, {high}{"]" if high_in else ")"}'


def range_problems(config: ml_collections.ConfigDict) -> list[str]:
  """One message per numeric field outside :data:`RANGES` (and epochs that train nothing)."""
  problems = []
  for field, low, high, low_in, high_in, what in RANGES:
    value = config
    for part in field.split('.'):
      value = value[part]
    number = float(value) if isinstance(value, (int, float)) else float('nan')
    ok = (number >= low if low_in else number > low) and (
      high is None or (number <= high if high_in else number < high)
    )
    if not ok:
      problems.append(
        f'{field} must be {_interval(low, high, low_in, high_in)} ({what}), got {value!r}'
      )
  train = config.train
  if min(train.num_epochs, train.warmup_epochs) >= 0 and train.num_epochs + train.warmup_epochs < 1:
    problems.append(
      'train.num_epochs + train.warmup_epochs must be >= 1 (num_epochs counts the epochs after '
      f'warm-up), got {train.num_epochs} + {train.warmup_epochs}'
    )
  return problems


def differing_fields(
  before: dict, after: dict, prefix: str = ''
) -> list[tuple[str, object, object]]:
  """``(dotted field, value before, value after)`` for every field that differs (JSON values)."""
  changes = []
  for key in sorted(set(before) | set(after)):
    old, new = before.get(key, '<absent>'), after.get(key, '<absent>')
    if isinstance(old, dict) and isinstance(new, dict):
      changes += differing_fields(old, new, f'{prefix}{key}.')
    elif old != new:
      changes.append((prefix + key, old, new))
  return changes


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError listing every inconsistency (unknown keys, shapes that cannot line up)."""
  problems = []
  known = _flat_keys(_base_config())
  for key in sorted(_flat_keys(config) - known):
    close = difflib.get_close_matches(key, known, n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    problems.append(f'unknown key {key!r}{hint}')
  if problems:  # Further checks could read a misspelt field: report the keys first.
    raise ConfigError('invalid config:\n  - ' + '\n  - '.join(problems))

  data, model, train, test = config.data, config.model, config.train, config.test
  if len(model.arch) != 3 or min(model.arch) < 0:
    problems.append(
      f'model.arch must be (embedding convs, stem blocks, branch blocks), got {model.arch}'
    )
  num_levels = model.arch[2] + 1
  if model.scale_factor != 2:
    problems.append(f'model.scale_factor must be 2, got {model.scale_factor}')
  stride = pyramid_stride(config)
  if data.max_seq_len <= 0 or data.max_seq_len % stride:
    problems.append(
      f'data.max_seq_len={data.max_seq_len} is not divisible by the pyramid stride '
      f'{model.scale_factor}**{model.arch[2]} = {stride}; '
      f'try {max(stride, data.max_seq_len // stride * stride)}'
    )
  if len(model.regression_ranges) != num_levels:
    problems.append(
      f'model.regression_ranges has {len(model.regression_ranges)} ranges but the pyramid has '
      f'{num_levels} levels (arch[2] + 1)'
    )
  for lo_hi in model.regression_ranges:
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
      problems.append(f'model.regression_ranges entry {lo_hi} is not a (lo, hi) pair with lo <= hi')
  windows = per_level(model.window_size, num_levels)
  if len(windows) != num_levels:
    problems.append(f'model.window_size lists {len(windows)} windows for {num_levels} levels')
  for w in windows:
    if w != -1 and (w < 1 or w % 2 == 0):
      problems.append(f'model.window_size {w} must be an odd positive number or -1 (global)')
  streams, stream_dims = tuple(model.input_streams), tuple(model.stream_embed_dims)
  if len(streams) != len(stream_dims):
    problems.append(
      f'model.input_streams {streams} and model.stream_embed_dims {stream_dims} must have one '
      'entry per feature stream'
    )
  if any(w < 1 for w in streams + stream_dims):
    problems.append(
      f'model.input_streams {streams} and model.stream_embed_dims {stream_dims} must be >= 1'
    )
  if streams and sum(streams) != data.input_dim:
    problems.append(
      f'model.input_streams {streams} sum to {sum(streams)} channels but data.input_dim is '
      f'{data.input_dim}: list the width of every concatenated feature set, in order'
    )
  if streams and model.arch[0] == 0 and sum(stream_dims) != model.embed_dim:
    problems.append(
      f'without embedding convs (model.arch[0] = 0) model.stream_embed_dims {stream_dims} must '
      f'sum to model.embed_dim ({model.embed_dim})'
    )
  if model.embed_dim % model.num_heads:
    problems.append(
      f'model.embed_dim={model.embed_dim} is not divisible by model.num_heads={model.num_heads}'
    )
  if model.neck not in ('identity', 'fpn'):
    problems.append(f"model.neck must be 'identity' or 'fpn', got {model.neck!r}")
  if model.neck == 'identity' and model.fpn_dim != model.embed_dim:
    problems.append(
      f'model.neck=identity needs model.fpn_dim ({model.fpn_dim}) '
      f'== model.embed_dim ({model.embed_dim})'
    )
  if model.dtype not in ('float32', 'bfloat16'):
    problems.append(f"model.dtype must be 'float32' or 'bfloat16', got {model.dtype!r}")
  if data.get('prefetch_batches', 0) < 0:
    problems.append(f'data.prefetch_batches must be >= 0, got {data.prefetch_batches}')
  if model.get('remat', 'none') not in ('none', 'full', 'dots'):
    problems.append(f"model.remat must be 'none', 'full' or 'dots', got {model.remat!r}")
  if data.num_classes < 1:
    problems.append(f'data.num_classes must be >= 1, got {data.num_classes}')
  if data.input_dim < 1:
    problems.append(f'data.input_dim must be >= 1, got {data.input_dim}')
  if data.feat_stride <= 0 or data.num_frames < 0:
    problems.append(
      'data.feat_stride must be > 0 and data.num_frames >= 0, '
      f'got {data.feat_stride}, {data.num_frames}'
    )
  if data.crop_ratio and (
    len(data.crop_ratio) != 2 or not 0 < data.crop_ratio[0] <= data.crop_ratio[1] <= 1
  ):
    problems.append(
      f'data.crop_ratio must be () or (lo, hi) with 0 < lo <= hi <= 1, got {data.crop_ratio}'
    )
  if not 0 <= data.trunc_thresh <= 1:
    problems.append(f'data.trunc_thresh must be in [0, 1], got {data.trunc_thresh}')
  if not data.annotation_file:
    problems.append('data.annotation_file is empty: set --config.data.annotation_file=PATH')
  if not data.feature_dir:
    problems.append('data.feature_dir is empty: set --config.data.feature_dir=PATH')
  for name in ('train_subset', 'eval_subset'):
    if not parse_subsets(data[name]):
      problems.append(f'data.{name} names no subset')
  if data.max_videos < 0:
    problems.append(f'data.max_videos must be >= 0 (0: every video), got {data.max_videos}')
  if data.max_videos and data.tfds_dir:
    problems.append(
      f'data.max_videos={data.max_videos} cannot cap the TFDS shards in data.tfds_dir: '
      "set --config.data.tfds_dir='' to train from the feature files"
    )
  if train.batch_size < 1 or test.batch_size < 1:
    problems.append(
      f'train.batch_size and test.batch_size must be >= 1 (and train.batch_size divisible by the '
      f'device count), got {train.batch_size} and {test.batch_size}'
    )
  problems += range_problems(config)
  if not MIN_PEER_TIMEOUT_S <= train.peer_timeout_s <= MAX_PEER_TIMEOUT_S:
    problems.append(
      f'train.peer_timeout_s must be in [{MIN_PEER_TIMEOUT_S}, {MAX_PEER_TIMEOUT_S}] seconds '
      f'(how long a lost peer process is waited for), got {train.peer_timeout_s}'
    )
  if test.nms_method not in ('gaussian', 'linear', 'hard'):
    problems.append(
      f"test.nms_method must be 'gaussian', 'linear' or 'hard', got {test.nms_method!r}"
    )
  if not test.tiou_thresholds or not all(0 < t <= 1 for t in test.tiou_thresholds):
    problems.append(
      f'test.tiou_thresholds must be non-empty values in (0, 1], got {test.tiou_thresholds}'
    )
  if problems:
    raise ConfigError('invalid config:\n  - ' + '\n  - '.join(problems))
