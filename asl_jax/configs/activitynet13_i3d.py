r"""ActivityNet 1.3 with I3D features, class-agnostic plus external class scores: Table 4 (36.2).

Launch (trains one 'action' class; evaluation during training is class-agnostic):

  asl-train --config=activitynet13_i3d.py --workdir=workdirs/anet13_i3d

The paper's number needs the ActivityNet protocol: relabel the class-agnostic detections with
the top-2 classes of an external video-level classifier (CUHK's), then score them:

  asl-predict --workdir=workdirs/anet13_i3d --features=data/activitynet13/i3d_features \
    --external_scores=data/activitynet13/cuhk_val_simp_share.json \
    --external_class_names=data/activitynet13/cuhk_class_names.csv \
    --out=workdirs/anet13_i3d/fused.json
  asl-evaluate --gt data/activitynet13/anet_anno_action.json \
    --gt_video_info data/activitynet13/video_info_new.csv \
    --gt_action_names data/activitynet13/action_name.csv \
    --pred workdirs/anet13_i3d/fused.json --subset validation --tiou_preset activitynet

``--external_class_names`` lists the classifier's classes in the order of its score vectors, one
per line after a header line; write it once from the "class" list of the scores file:

  python -c "import json; c = json.load(open('data/activitynet13/cuhk_val_simp_share.json'))\
['class']; open('data/activitynet13/cuhk_class_names.csv', 'w').write('\\n'.join(['name', *c]))"

Files (manifest third_party/activitynet13.json; ``asl-fetch-assets
activitynet13`` downloads the BSN annotation files):
  data/activitynet13/anet_anno_action.json   BSN annotations (segments, class names)
  data/activitynet13/video_info_new.csv      BSN video list: subset and fps of every video
  data/activitynet13/action_name.csv         the 200 class names
  data/activitynet13/i3d_features/v_<vid>.npy  ActionFormer's I3D, float32 [T, 2048]
  data/activitynet13/cuhk_val_simp_share.json  CUHK classifier scores (evaluation only)

Reproduces: Table 4, ActivityNet 1.3 average mAP 36.2 over tIoU 0.5:0.05:0.95 (validation).

Settings: paper sec. 4.2 (batch 16, lr 1e-3, 15 epochs, lambda 0.3, theta 0.2, delta 0.2, 100
predictions per video); everything else from ActionFormer's anet_i3d.yaml (the authors released
no ActivityNet config). Variants: ``:small``, ``:baseline`` and ablations.py.
"""

from asl_jax.configs import base, paper_common


def get_config(arg: str | None = None):
  config = base.get_base_config()
  data = config.data
  data.name = 'activitynet13'
  data.annotation_file = 'data/activitynet13/anet_anno_action.json'
  data.annotation_format = 'bsn'
  data.video_info_csv = 'data/activitynet13/video_info_new.csv'
  data.class_names_file = 'data/activitynet13/action_name.csv'
  data.num_classes = 1  # Class-agnostic ("1-class mode"); classes come from score fusion.
  data.feature_dir = 'data/activitynet13/i3d_features'
  data.feature_prefix = ''  # BSN ids are ActionFormer's file names already: v_<YouTube id>.
  data.feature_ext = '.npy'
  # ActionFormer's I3D: one 2048-d vector per 16 frames at 25 fps, each seeing 16 frames; every
  # video is resized to 192 steps (force_upsampling), so the stride depends on its length.
  data.input_dim = 2048
  data.feat_stride = 16.0
  data.num_frames = 16.0
  data.default_fps = 25.0
  data.force_upsampling = True
  data.max_seq_len = 192
  data.train_subset = 'training'
  data.eval_subset = 'validation'
  data.trunc_thresh = 0.5
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 32  # Most annotations of one video in anet_anno_action.json: 23.

  # ActionFormer's ActivityNet model: narrower (256), windows of 7 and global attention last.
  # ActionFormer: (7, 7, 7, 7, 7, -1) over levels of 192 ... 6 steps. The field is one int here
  # (the ':small' variant sets it): 7 everywhere differs only on the last, 6-step level.
  paper_common.set_model(
    config,
    width=256,
    window_size=7,
    regression_ranges=paper_common.THUMOS_RANGES,
    use_abs_pe=True,
  )
  # Paper: batch 16, lr 1e-3, 15 epochs = ActionFormer's 10 + 5 warmup. ActionFormer's loss
  # normaliser, label smoothing and loss_weight (DIoU).
  paper_common.set_training(
    config,
    batch_size=16,
    learning_rate=1e-3,
    num_epochs=10,
    init_loss_norm=200.0,
    label_smoothing=0.1,
    reg_loss_weight=2.0,
  )
  # Paper: 100 predictions per video (before the 2-class fusion). One class: class-agnostic
  # Soft-NMS with score voting.
  paper_common.set_soft_nms(
    config,
    max_seg_num=100,
    tiou_thresholds=tuple(round(0.5 + 0.05 * i, 2) for i in range(10)),  # 'activitynet'.
    nms_sigma=0.75,
    multiclass_nms=False,
    voting_thresh=0.9,
    duration_thresh=0.001,
  )
  paper_common.apply_variants(config, arg, 'activitynet13_i3d.py')
  return config
