r"""Ego4D Moment Queries v1.0, EgoVLP + SlowFast + Omnivore: Table 2 row (val average mAP 24.15).

Launch:

  asl-train --config=ego4d_egovlp_sf_ov.py \
    --workdir=workdirs/ego4d_egovlp_sf_ov

Files (manifest third_party/ego4d.json; ``asl-fetch-assets ego4d``):
  data/ego4d/ego4d_clip_annotations_v2.json  the authors' clip-level MQ annotations (110 classes)
  data/ego4d/egovlp/<clip_uid>.pt            EgoVLP, [T, 256]
  data/ego4d/slowfast/<clip_uid>.pt          SlowFast 8x8 R101 (Kinetics-400), [T, 2304]
  data/ego4d/omnivore/<clip_uid>.pt          Omnivore Swin-L, [T, 1536]
The three sets are concatenated along channels in this order (4096 channels; a set of another
length is resampled to the longest first) and every clip is resized to 1024 steps.

Reproduces: Table 2, Ego4D-MQ v1.0 validation average mAP 24.15 over tIoU 0.1:0.1:0.5.

Settings: as ego4d_egovlp.py (paper sec. 4.2 + the authors' Ego4D config). Each set gets
its own 1x1 projection first, to the widths the authors' config gives these three (256, 128,
128; its fourth set, InternVideo at 512, is not in the paper's row); the embedding convs then
map the 512 projected channels to the authors' width 1024.
Variants: ``:small``, ``:baseline`` and ablations.py.
"""

from asl_jax.configs import ego4d_egovlp, paper_common

FEATURE_SETS = (('egovlp', 256), ('slowfast', 2304), ('omnivore', 1536))


def get_config(arg: str | None = None):
  config = ego4d_egovlp.ego4d_config()
  data, model = config.data, config.model
  data.feature_dir = ','.join(f'data/ego4d/{name}' for name, _ in FEATURE_SETS)
  data.feature_dims = tuple(dim for _, dim in FEATURE_SETS)
  data.feature_policy = 'resample'
  data.input_dim = sum(data.feature_dims)
  model.input_streams = data.feature_dims
  model.stream_embed_dims = (256, 128, 128)  # The authors' embd_dim for these three sets.
  paper_common.apply_variants(config, arg, 'ego4d_egovlp_sf_ov.py')
  return config
