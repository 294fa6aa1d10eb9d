r"""EPIC-Kitchens 100 nouns (300 classes) with SlowFast features: Table 3 row (average mAP 22.6).

Launch:

  asl-train --config=epic100_noun_slowfast.py \
    --workdir=workdirs/epic100_noun_slowfast

Files (manifest third_party/epic100.json; ``asl-fetch-assets epic100``):
  data/epic100/epic_kitchens_100_noun.json   ActionFormer-format noun annotations
  data/epic100/slowfast_features/<vid>.npz   ActionFormer's SlowFast, key 'feats', [T, 2304]

Reproduces: Table 3, EPIC-Kitchens 100 noun average mAP 22.6 over tIoU 0.1:0.1:0.5 (validation).

Settings: as epic100_verb_slowfast.py, with ActionFormer's noun label smoothing (0.1).
Variants: ``:small``, ``:baseline`` and ablations.py.
"""

from asl_jax.configs import epic100_verb_slowfast


def get_config(arg: str | None = None):
  return epic100_verb_slowfast.epic_config('noun', arg)
