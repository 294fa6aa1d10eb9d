r"""Charades (dense, multi-label, 157 classes) with I3D RGB features: Table 1 row (mAP 15.4).

Launch:

  python -m asl_jax.main --config=configs/charades_i3d.py --workdir=workdirs/charades_i3d

Files (manifest third_party/charades.json; ``python -m asl_jax.tools.fetch_assets charades``
downloads the annotations and says where to get the features):
  data/charades/charades.json            super-events annotations (PointTAD), classes 0..156
  data/charades/rgb_Charades_v1_480.h5   I3D RGB features, one [T, 1024] dataset per video

Reproduces: Table 1, Charades average mAP 15.4 over tIoU 0.1:0.1:0.9 (testing subset).

Geometry: the file has no fps, so, as in the authors' loader, the grid is the features' own rate
(fps = T / duration with stride 1 and 1-frame windows).
Settings: paper sec. 4.2 (batch 16, lr 2e-4, 30 epochs, lambda 0.3, theta 0.2, delta 0.2, 200
predictions per video). No config was released: the model, window and NMS are ActionFormer's
THUMOS14 ones, as for MultiTHUMOS (our choice). Variants: ``:small``, ``:baseline`` and
configs/ablations.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ablations  # noqa: E402
import base  # noqa: E402


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data, model, train, test = config.data, config.model, config.train, config.test
  data.name = 'charades'
  data.annotation_file = 'data/charades/charades.json'
  data.annotation_format = 'superevents'
  data.label_offset = 0  # Classes are already 0..156.
  data.num_classes = 157
  data.feature_dir = 'data/charades/rgb_Charades_v1_480.h5'
  data.input_dim = 1024
  data.feat_stride = 1.0
  data.num_frames = 1.0
  data.default_fps = -1.0
  data.train_subset = 'training'
  data.eval_subset = 'testing'
  # Our choice (not in the paper): ActionFormer's window, as TriDet+ uses on Charades; it holds a
  # whole video (at most ~200 s) at up to ~11 features per second.
  data.max_seq_len = 2304
  data.trunc_thresh = 0.5
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 32  # Most actions of one video in charades.json: 28.

  model.arch = (2, 2, 5)
  model.embed_dim = model.fpn_dim = model.head_dim = 512
  model.num_heads = 4
  model.window_size = 19
  model.use_abs_pe = False
  model.regression_ranges = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
  model.dropout = 0.0
  model.droppath = 0.1
  model.channel_theta = 0.2  # theta (paper).

  train.batch_size = 16  # Paper.
  train.learning_rate = 2e-4  # Paper.
  train.num_epochs = 25  # Paper: 30 epochs, read as warmup included.
  train.warmup_epochs = 5
  train.weight_decay = 0.05
  train.init_loss_norm = 100.0
  train.label_smoothing = 0.0
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
  test.tiou_thresholds = tuple(round(0.1 * i, 1) for i in range(1, 10))  # 'charades'.

  ablations.apply_variants(config, base.parse_variant(arg), config_name='configs/charades_i3d.py')
  return config
