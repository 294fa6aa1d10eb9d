r"""Charades (dense, multi-label, 157 classes) with I3D RGB features: Table 1 row (mAP 15.4).

Launch:

  asl-train --config=charades_i3d.py --workdir=workdirs/charades_i3d

Files (manifest third_party/charades.json; ``asl-fetch-assets charades``
downloads the annotations and says where to get the features):
  data/charades/charades.json            super-events annotations (PointTAD), classes 0..156
  data/charades/rgb_Charades_v1_480.h5   I3D RGB features, one [T, 1024] dataset per video

Reproduces: Table 1, Charades average mAP 15.4 over tIoU 0.1:0.1:0.9 (testing subset).

Geometry: the file has no fps, so, as in the authors' loader, the grid is the features' own rate
(fps = T / duration with stride 1 and 1-frame windows).
Settings: paper sec. 4.2 (batch 16, lr 2e-4, 30 epochs, lambda 0.3, theta 0.2, delta 0.2, 200
predictions per video). No config was released: the model, window and NMS are ActionFormer's
THUMOS14 ones, as for MultiTHUMOS (our choice). Variants: ``:small``, ``:baseline`` and
ablations.py.
"""

from asl_jax.configs import base, paper_common


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data = config.data
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

  paper_common.set_thumos_model(config)
  # Paper: batch 16, lr 2e-4, 30 epochs (read as warmup included: 25 + 5).
  paper_common.set_training(config, batch_size=16, learning_rate=2e-4, num_epochs=25)
  paper_common.set_soft_nms(  # Paper: 200 predictions per video.
    config,
    max_seg_num=200,
    tiou_thresholds=tuple(round(0.1 * i, 1) for i in range(1, 10)),  # 'charades'.
  )
  paper_common.apply_variants(config, arg, 'charades_i3d.py')
  return config
