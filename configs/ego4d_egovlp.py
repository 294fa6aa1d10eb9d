r"""Ego4D Moment Queries v1.0 with EgoVLP features: Table 2 row (val average mAP 22.83).

Launch:

  python -m asl_jax.main --config=configs/ego4d_egovlp.py --workdir=workdirs/ego4d_egovlp

Files (manifest third_party/ego4d.json; ``python -m asl_jax.tools.fetch_assets ego4d`` downloads
the clip annotations and says how to get the features, which need an Ego4D licence):
  data/ego4d/ego4d_clip_annotations_v2.json  the authors' clip-level MQ annotations (110 classes)
  data/ego4d/egovlp/<clip_uid>.pt            EgoVLP features per clip, [T, 256], 1.875 per second

Reproduces: Table 2, Ego4D-MQ v1.0 validation average mAP 22.83 over tIoU 0.1:0.1:0.5.

Settings: paper sec. 4.2 (batch 2, lr 2e-4, 15 epochs, lambda 0.3, theta 0.2, delta 0.2, 2000
predictions per video); everything else from the authors' Ego4D config (ego4d_asl
configs/baseline_1.yaml: 10 levels with overlapping ranges, global attention, width 1024, 16
heads, features resized to 1024 steps). That config was written for four feature sets; keeping
its width for EgoVLP alone is our choice. Its lr (1e-4), XLNet layer and video-level label loss
(al_loss 0.2) are not in the paper and not used here. ``.pt`` files need PyTorch to read; or
convert them once to ``.npy`` and set ``--config.data.feature_ext=.npy``.
Variants: ``:small``, ``:baseline`` and configs/ablations.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ablations  # noqa: E402
import base  # noqa: E402

# The authors' 10-level pyramid (strides 1..512) with overlapping ranges.
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


def ego4d_config():
  """The shared Ego4D setup; the feature sets (data and input streams) are set by the caller."""
  config = base.get_base_config()
  data, model, train, test = config.data, config.model, config.train, config.test
  data.name = 'ego4d'
  data.annotation_file = 'data/ego4d/ego4d_clip_annotations_v2.json'
  data.annotation_format = 'flat'
  data.num_classes = 110
  data.feature_ext = '.pt'
  # One vector per feature step at the JSON's fps (1.874, the features' rate); every clip is
  # resized to exactly 1024 steps (force_upsampling), as in the authors' config.
  data.feat_stride = 1.0
  data.num_frames = 1.0
  data.default_fps = -1.0
  data.force_upsampling = True
  data.max_seq_len = 1024
  data.train_subset = 'train'  # The paper reports validation; the challenge trains on train,val.
  data.eval_subset = 'val'
  data.trunc_thresh = 0.3
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 96  # Most annotations of one clip: 88.

  model.arch = (3, 3, 9)
  model.embed_dim = model.fpn_dim = model.head_dim = 1024
  model.num_heads = 16
  model.window_size = -1  # Global attention (the authors' code ignores windows).
  model.use_abs_pe = True
  model.regression_ranges = EGO4D_RANGES
  model.dropout = 0.1
  model.droppath = 0.1
  model.channel_theta = 0.2  # theta (paper; the authors' t_c_alpha 0.8 = 1 - theta).

  train.batch_size = 2  # Paper.
  train.learning_rate = 2e-4  # Paper (the authors' config: 1e-4).
  train.num_epochs = 10  # Paper: 15 epochs = the authors' 10 + 5 warmup.
  train.warmup_epochs = 5
  train.weight_decay = 0.05
  train.init_loss_norm = 100.0
  train.label_smoothing = 0.0
  train.contrastive_weight = 0.3  # lambda (paper).
  train.contrastive_delta = 0.2  # delta (paper).

  test.pre_nms_topk = 5000
  test.max_seg_num = 2000  # Paper: 2000 predictions per video.
  test.min_score = 1e-4
  test.nms_method = 'gaussian'
  test.nms_sigma = 0.99
  test.multiclass_nms = True
  test.voting_thresh = 0.9
  test.duration_thresh = 0.01
  test.tiou_thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)  # TIOU_PRESETS['ego4d'].
  return config


def get_config(arg: str | None = None):
  config = ego4d_config()
  config.data.feature_dir = 'data/ego4d/egovlp'
  config.data.input_dim = 256
  ablations.apply_variants(config, base.parse_variant(arg), config_name='configs/ego4d_egovlp.py')
  return config
