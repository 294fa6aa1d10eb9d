"""What the paper configs share: the paper's ASL settings and the ActionFormer recipe they build on.

Not a config: every paper config (configs/<dataset>_<features>.py) states its data and geometry
and calls these helpers for the model, training and inference sections, giving the values that
differ between benchmarks. Every field is set here explicitly, whatever configs/base.py defaults
to, so a paper config does not change when the defaults do. Imported as configs/base.py is
(the configs folder on sys.path).
"""

import ml_collections

from asl_jax.configs import ablations, base

# Regression range (grid units) of each pyramid level.
# ActionFormer's THUMOS14 / ActivityNet pyramid: 6 levels (strides 1..32), disjoint ranges.
THUMOS_RANGES = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
# ActionFormer's EPIC-Kitchens pyramid: 6 levels, overlapping ranges.
EPIC_RANGES = ((0, 4), (2, 8), (4, 16), (8, 32), (16, 64), (32, 10000))
# The authors' Ego4D pyramid: 10 levels (strides 1..512), overlapping ranges.
EGO4D_RANGES = (
  (0, 4),
  (2, 8),
  (4, 16),
  (8, 32),
  (16, 64),
  (32, 128),
  (64, 256),
  (128, 512),
  (256, 1024),
  (512, 10000),
)


def set_model(
  config: ml_collections.ConfigDict,
  *,
  width: int,
  window_size: int,
  regression_ranges: tuple,
  arch: tuple = (2, 2, 5),
  num_heads: int = 4,
  use_abs_pe: bool = False,
  dropout: float = 0.0,
) -> None:
  """The detector: ``width`` for the transformer, neck and heads; theta 0.2 (paper sec. 4.2).

  The defaults are ActionFormer's THUMOS14 model (6 levels, 4 heads, no position embedding).
  """
  model = config.model
  model.arch = arch
  model.embed_dim = model.fpn_dim = model.head_dim = width
  model.num_heads = num_heads
  model.window_size = window_size
  model.use_abs_pe = use_abs_pe
  model.regression_ranges = regression_ranges
  model.dropout = dropout
  model.droppath = 0.1
  model.channel_theta = 0.2  # theta (paper).


def set_thumos_model(config: ml_collections.ConfigDict) -> None:
  """ActionFormer's THUMOS14 model: 6 levels (strides 1..32), width 512, windows of 19 steps."""
  set_model(config, width=512, window_size=19, regression_ranges=THUMOS_RANGES)


def set_training(
  config: ml_collections.ConfigDict,
  *,
  batch_size: int,
  learning_rate: float,
  num_epochs: int,
  init_loss_norm: float = 100.0,
  label_smoothing: float = 0.0,
  reg_loss_weight: float = 1.0,
) -> None:
  """The paper's batch, learning rate and epochs; lambda 0.3 and delta 0.2 (paper sec. 4.2).

  ``num_epochs`` is counted after 5 warmup epochs: the paper's epoch counts are read as warmup
  included (its Ego4D / ActivityNet counts are the authors' / ActionFormer's + 5). The loss
  normaliser, label smoothing and DIoU weight are ActionFormer's (THUMOS14 by default).
  """
  train = config.train
  train.batch_size = batch_size
  train.learning_rate = learning_rate
  train.num_epochs = num_epochs
  train.warmup_epochs = 5
  train.weight_decay = 0.05
  train.init_loss_norm = init_loss_norm
  train.label_smoothing = label_smoothing
  train.reg_loss_weight = reg_loss_weight
  train.contrastive_weight = 0.3  # lambda (paper).
  train.contrastive_delta = 0.2  # delta (paper).


def set_soft_nms(
  config: ml_collections.ConfigDict,
  *,
  max_seg_num: int,
  tiou_thresholds: tuple,
  pre_nms_topk: int = 2000,
  min_score: float = 0.001,
  nms_sigma: float = 0.5,
  multiclass_nms: bool = True,
  voting_thresh: float = 0.7,
  duration_thresh: float = 0.05,
) -> None:
  """Gaussian Soft-NMS keeping the paper's ``max_seg_num`` predictions per video, evaluated at
  ``tiou_thresholds`` (a ``TIOU_PRESETS`` entry). The defaults are ActionFormer's THUMOS14."""
  test = config.test
  test.pre_nms_topk = pre_nms_topk
  test.max_seg_num = max_seg_num
  test.min_score = min_score
  test.nms_method = 'gaussian'
  test.nms_sigma = nms_sigma
  test.multiclass_nms = multiclass_nms
  test.voting_thresh = voting_thresh
  test.duration_thresh = duration_thresh
  test.tiou_thresholds = tiou_thresholds


def apply_variants(
  config: ml_collections.ConfigDict, arg: str | None, config_name: str, own=()
) -> set[str]:
  """``:small``, ``:baseline`` and the ablations of configs/ablations.py, from the variant string
  ``arg``; returns the config's ``own`` variants that were asked for (unknown ones raise)."""
  return ablations.apply_variants(config, base.parse_variant(arg), config_name=config_name, own=own)
