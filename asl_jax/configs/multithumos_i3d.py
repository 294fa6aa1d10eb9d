r"""MultiTHUMOS (dense, multi-label, 65 classes) with I3D features: Table 1 row (average mAP 25.5).

Launch:

  asl-train --config=multithumos_i3d.py --workdir=workdirs/multithumos_i3d

Files (manifests third_party/multithumos.json and thumos14.json; ``asl-fetch-assets multithumos``
downloads the annotations):
  data/multithumos/multithumos.json      ActionFormer-format annotations (TriDet+), fps 30
  data/thumos14/i3d_features/<vid>.npy   THUMOS14 two-stream I3D, float32 [T, 2048] (same videos)

Reproduces: Table 1, MultiTHUMOS average mAP 25.5 over tIoU 0.1:0.1:0.9 (test set).

Features. The paper uses I3D *RGB* features (the authors' loader reads MLAD's rgb_val/rgb_test
HDF5 files, 1024-d, at the features' own rate T / duration). The ActionFormer-format file gives
every video fps 30, which fits ActionFormer's THUMOS14 features (stride 4, 16 frames) but not
features of unknown rate, so by default this config uses those (as TriDet+ does on MultiTHUMOS);
expect a number near, not equal to, the paper's. ``:rgb_h5`` is the paper's setting: the
super-events file (PointTAD's datasets/multithumos.json, classes 1..65, ``label_offset`` -1, no
fps) with MLAD's RGB features merged into one HDF5 file:

  python -c "import h5py; out = h5py.File('data/multithumos/rgb_multithumos.h5', 'w'); \
[src.copy(k, out) for src in (h5py.File('data/multithumos/rgb_val.h5', 'r'), \
h5py.File('data/multithumos/rgb_test.h5', 'r')) for k in src]"

Settings: paper sec. 4.2 (batch 2, lr 2e-4, 60 epochs, lambda 0.3, theta 0.2, delta 0.2, 200
predictions per video). No config was released: the model, window and NMS are ActionFormer's
THUMOS14 ones (same videos, same features), our choice. Variants: ``:small``, ``:baseline``,
``:rgb_h5`` and ablations.py.
"""

from asl_jax.configs import base, paper_common


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data = config.data
  data.name = 'multithumos'
  data.annotation_file = 'data/multithumos/multithumos.json'
  data.annotation_format = 'actionformer'
  data.num_classes = 65
  data.feature_dir = 'data/thumos14/i3d_features'
  data.feature_ext = '.npy'
  data.input_dim = 2048
  data.feat_stride = 4.0
  data.num_frames = 16.0
  data.default_fps = -1.0  # fps from the JSON (30).
  data.train_subset = 'validation'
  data.eval_subset = 'test'
  data.max_seq_len = 2304  # ActionFormer's THUMOS14 window (our choice: not in the paper).
  data.trunc_thresh = 0.5
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 640  # Most annotations of one training video: 622 (dense labels).

  paper_common.set_thumos_model(config)
  # Paper: batch 2, lr 2e-4, 60 epochs (read as warmup included: 55 + 5).
  paper_common.set_training(config, batch_size=2, learning_rate=2e-4, num_epochs=55)
  # Paper: 200 predictions per video. Per-class NMS: overlapping actions of different classes
  # both count.
  paper_common.set_soft_nms(
    config,
    max_seg_num=200,
    tiou_thresholds=tuple(round(0.1 * i, 1) for i in range(1, 10)),  # 'multithumos'.
  )
  own = paper_common.apply_variants(config, arg, 'multithumos_i3d.py', own=('rgb_h5',))
  if 'rgb_h5' in own:
    data.annotation_file = 'data/multithumos/multithumos_superevents.json'
    data.annotation_format = 'superevents'
    data.label_offset = -1  # Classes 1..65 -> 0..64, as the authors' converter does.
    data.feature_dir = 'data/multithumos/rgb_multithumos.h5'
    data.input_dim = 1024
    # No fps in the file: the grid is the features' own rate, T / duration (the authors' loader).
    data.feat_stride = 1.0
    data.num_frames = 1.0
    data.train_subset = 'training'
    data.eval_subset = 'testing'
  return config
