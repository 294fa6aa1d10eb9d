r"""EPIC-Kitchens 100 verbs (97 classes) with SlowFast features: Table 3 row (average mAP 24.6).

Launch:

  asl-train --config=epic100_verb_slowfast.py \
    --workdir=workdirs/epic100_verb_slowfast

Files (manifest third_party/epic100.json; ``asl-fetch-assets epic100`` says
where to get them):
  data/epic100/epic_kitchens_100_verb.json   ActionFormer-format verb annotations
  data/epic100/slowfast_features/<vid>.npz   ActionFormer's SlowFast, key 'feats', [T, 2304]

Reproduces: Table 3, EPIC-Kitchens 100 verb average mAP 24.6 over tIoU 0.1:0.1:0.5 (validation).

Settings: paper sec. 4.2 (batch 2, lr 2e-4, 25 epochs, lambda 0.3, theta 0.2, delta 0.2, 2000
predictions per video); everything else from ActionFormer's epic_slowfast_verb.yaml (the authors
released no EPIC config): 6 levels with overlapping ranges, windows of 9. ActionFormer also gives
classes absent from training a 1e-6 prior (``model.empty_classes``); list them with
``--config.model.empty_classes`` if your split has any. epic100_noun_slowfast.py is the
noun task. Variants: ``:small``, ``:baseline`` and ablations.py.
"""

from asl_jax.configs import base, paper_common

NUM_CLASSES = {'verb': 97, 'noun': 300}


def epic_config(task: str, arg: str | None):
  """The EPIC-Kitchens 100 config of ``task`` ('verb' or 'noun'), variants applied."""
  config = base.get_base_config()
  data = config.data
  data.name = f'epic100_{task}'
  data.annotation_file = f'data/epic100/epic_kitchens_100_{task}.json'
  data.annotation_format = 'actionformer'
  data.num_classes = NUM_CLASSES[task]
  data.feature_dir = 'data/epic100/slowfast_features'
  data.feature_ext = '.npz'
  # SlowFast at 30 fps: one 2304-d vector per 16 frames, each seeing 32 frames.
  data.input_dim = 2304
  data.feat_stride = 16.0
  data.num_frames = 32.0
  data.default_fps = 30.0
  data.train_subset = 'training'
  data.eval_subset = 'validation'
  data.max_seq_len = 2304
  data.trunc_thresh = 0.3
  data.crop_ratio = (0.9, 1.0)
  # Our choice: a 2304-step window spans ~20 min of a long kitchen video; extra actions of a
  # window are dropped and counted (training statistics), not silently lost.
  data.max_segments = 512

  # ActionFormer's EPIC model: the THUMOS14 one with overlapping ranges and windows of 9.
  paper_common.set_model(
    config, width=512, window_size=9, regression_ranges=paper_common.EPIC_RANGES
  )
  # Paper: batch 2, lr 2e-4, 25 epochs (read as warmup included: 20 + 5). ActionFormer's loss
  # normaliser and label smoothing (noun / verb configs).
  paper_common.set_training(
    config,
    batch_size=2,
    learning_rate=2e-4,
    num_epochs=20,
    init_loss_norm=250.0,
    label_smoothing=0.1 if task == 'noun' else 0.0,
  )
  paper_common.set_soft_nms(  # Paper: 2000 predictions per video.
    config,
    max_seg_num=2000,
    tiou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5),  # 'epic'.
    pre_nms_topk=5000,
    nms_sigma=0.4,
    voting_thresh=0.75,
  )
  paper_common.apply_variants(config, arg, f'asl_jax/configs/epic100_{task}_slowfast.py')
  return config


def get_config(arg: str | None = None):
  return epic_config('verb', arg)
