r"""THUMOS14 with two-stream I3D features: the paper's Table 4 row (average mAP 67.9).

Launch:

  python -m asl_jax.main --config=configs/thumos14_i3d.py --workdir=workdirs/thumos14_i3d

Files (manifest third_party/thumos14.json; ``python -m asl_jax.tools.fetch_assets thumos14``
downloads the annotations and says where to get the features):
  data/thumos14/thumos14.json            ActionFormer annotations, 20 classes (Validation / Test)
  data/thumos14/i3d_features/<vid>.npy   ActionFormer's two-stream I3D, float32 [T, 2048]

Reproduces: Table 4, THUMOS14 average mAP 67.9 over tIoU 0.3:0.1:0.7 (test set; training
evaluates there at the end, and ``python -m asl_jax.evaluate --gt data/thumos14/thumos14.json
--pred workdirs/thumos14_i3d/detections.json --subset test --tiou-preset thumos14`` re-scores).

Settings: paper sec. 4.2 (batch 2, lr 1e-4, 30 epochs, lambda 0.3, theta 0.2, delta 0.2, 200
predictions per video); everything else from ActionFormer's thumos_i3d.yaml, which the paper
builds on (the authors released no THUMOS14 config).
Variants: ``:small``, ``:baseline`` and the ablations of configs/ablations.py (e.g. ``:no_ascl``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ablations  # noqa: E402
import base  # noqa: E402


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data, model, train, test = config.data, config.model, config.train, config.test
  data.name = 'thumos14'
  data.annotation_file = 'data/thumos14/thumos14.json'
  data.annotation_format = 'actionformer'
  data.feature_dir = 'data/thumos14/i3d_features'
  data.feature_ext = '.npy'
  data.num_classes = 20
  # ActionFormer's I3D: one 2048-d vector per 4 frames, each seeing 16 frames; fps from the JSON.
  data.input_dim = 2048
  data.feat_stride = 4.0
  data.num_frames = 16.0
  data.default_fps = -1.0
  data.train_subset = 'validation'
  data.eval_subset = 'test'
  data.max_seq_len = 2304
  data.trunc_thresh = 0.5
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 128  # Most annotations of one training video in thumos14.json: 128.

  # ActionFormer's THUMOS14 model: 6 levels (strides 1..32), local attention of 19 steps.
  model.arch = (2, 2, 5)
  model.embed_dim = model.fpn_dim = model.head_dim = 512
  model.num_heads = 4
  model.window_size = 19
  model.use_abs_pe = False
  model.regression_ranges = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
  model.dropout = 0.0
  model.droppath = 0.1
  model.channel_theta = 0.2  # theta (paper sec. 4.2).

  train.batch_size = 2  # Paper.
  train.learning_rate = 1e-4  # Paper.
  # Paper: 30 epochs, read as warmup included (its Ego4D / ANet counts are the configs' + 5).
  train.num_epochs = 25
  train.warmup_epochs = 5
  train.weight_decay = 0.05
  train.init_loss_norm = 100.0
  train.label_smoothing = 0.0
  train.reg_loss_weight = 1.0
  train.contrastive_weight = 0.3  # lambda (paper).
  train.contrastive_delta = 0.2  # delta (paper).

  test.pre_nms_topk = 2000
  test.max_seg_num = 200  # Paper: 200 predictions per video.
  test.min_score = 0.001
  test.nms_method = 'gaussian'
  test.nms_sigma = 0.5
  test.multiclass_nms = True
  test.voting_thresh = 0.7
  test.duration_thresh = 0.05
  test.tiou_thresholds = (0.3, 0.4, 0.5, 0.6, 0.7)  # TIOU_PRESETS['thumos14'].

  ablations.apply_variants(config, base.parse_variant(arg), config_name='configs/thumos14_i3d.py')
  return config
