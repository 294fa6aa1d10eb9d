"""Any dataset in the ActionFormer layout: an annotation JSON plus a folder of [T, C] feature files.

Launch (set the data fields on the command line; the names below are a stable interface):

  python -m asl_jax.main --config=configs/custom.py --workdir=workdirs/mydata \
    --config.data.annotation_file=/data/mydata/annotations.json \
    --config.data.feature_dir=/data/mydata/features --config.data.feature_ext=.npy \
    --config.data.num_classes=20 --config.data.input_dim=2048 \
    --config.data.feat_stride=4 --config.data.num_frames=16 --config.data.default_fps=-1 \
    --config.data.train_subset=validation --config.data.eval_subset=test \
    --config.data.max_seq_len=2304

Variants (combine with commas): ``:small`` keeps the data settings and shrinks model and
schedule (4 epochs, or more to reach ``train.min_steps`` = 300 optimizer steps on small data);
``:baseline`` switches every ASL part off (the ActionFormer detector).
Defaults: ASL (theta 0.2, class- and instance-level sensitivity, lambda 0.3, delta 0.2) on
ActionFormer's THUMOS14 I3D recipe (batch 2, lr 1e-4, 30 + 5 warmup epochs).
"""

from asl_jax.configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config()
  unknown = base.apply_common_variants(config, base.parse_variant(arg))
  if unknown:
    raise ValueError(
      f'configs/custom.py: unknown variant(s) {sorted(unknown)}; known: small, baseline'
    )
  return config
