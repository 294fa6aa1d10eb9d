r"""THUMOS14 with two-stream I3D features: the paper's Table 4 row (average mAP 67.9).

Launch:

  asl-train --config=thumos14_i3d.py --workdir=workdirs/thumos14_i3d

Files (manifest third_party/thumos14.json; ``asl-fetch-assets thumos14``
downloads the annotations and says where to get the features):
  data/thumos14/thumos14.json            ActionFormer annotations, 20 classes (Validation / Test)
  data/thumos14/i3d_features/<vid>.npy   ActionFormer's two-stream I3D, float32 [T, 2048]

Reproduces: Table 4, THUMOS14 average mAP 67.9 over tIoU 0.3:0.1:0.7 (test set; training
evaluates there at the end, and ``asl-evaluate --gt data/thumos14/thumos14.json
--pred workdirs/thumos14_i3d/detections.json --subset test --tiou_preset thumos14`` re-scores).

Settings: paper sec. 4.2 (batch 2, lr 1e-4, 30 epochs, lambda 0.3, theta 0.2, delta 0.2, 200
predictions per video); everything else from ActionFormer's thumos_i3d.yaml, which the paper
builds on (the authors released no THUMOS14 config).
Variants: ``:small``, ``:baseline`` and the ablations of ablations.py (e.g. ``:no_ascl``).
"""

from asl_jax.configs import base, paper_common


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data = config.data
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
  paper_common.set_thumos_model(config)
  # Paper: batch 2, lr 1e-4, 30 epochs (read as warmup included: 25 + 5).
  paper_common.set_training(config, batch_size=2, learning_rate=1e-4, num_epochs=25)
  paper_common.set_soft_nms(  # Paper: 200 predictions per video.
    config,
    max_seg_num=200,
    tiou_thresholds=(0.3, 0.4, 0.5, 0.6, 0.7),  # 'thumos14'.
  )
  paper_common.apply_variants(config, arg, 'thumos14_i3d.py')
  return config
