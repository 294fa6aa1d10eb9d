"""The paper's ablations (Tables 5-7, Fig. 3) as named config variants and sweeps, for every config.

Variants (combine with commas, after the common ``small`` / ``baseline``):
  Table 5, components:   no_class_level, no_instance_level, no_ascl
  Table 6, Gaussians:    cls_gaussian_{none,fixed,learnable}, loc_gaussian_{none,fixed,learnable}
  Table 7, Gaussians:    loc_gaussians_1, loc_gaussians_2, cls_gaussians_1, cls_gaussians_2,
                         shared_gaussian
  Beyond the paper:      positives_inside, normalize_sensitivity (docs/design.md)
Sweeps (lists of ``--config.key=value`` overrides, for ``launch/sweep.py``): ``sweep_lambda``,
``sweep_delta`` (Fig. 3) and ``sweep_theta``; ``table5_variants`` ... ``table7_variants`` list the
variant of each table row. The default (no variant) is the full ASL row of every table.
"""

from collections.abc import Iterable

import ml_collections

from asl_jax.configs import base

# Paper Fig. 3 and the theta study: the values tried; 0.3 / 0.2 / 0.2 are the defaults.
LAMBDAS = (0.1, 0.2, 0.3, 0.4)  # train.contrastive_weight (lambda of ASCL).
DELTAS = (0.1, 0.2, 0.3, 0.4)  # train.contrastive_delta (delta, sensitive range half-width).
THETAS = (0.0, 0.1, 0.2, 0.3)  # model.channel_theta (theta of the channel-attention fusion).

GAUSSIAN_MODES = ('none', 'fixed', 'learnable')

ABLATION_VARIANTS = (
  'no_class_level',
  'no_instance_level',
  'no_ascl',
  *(f'cls_gaussian_{m}' for m in GAUSSIAN_MODES),
  *(f'loc_gaussian_{m}' for m in GAUSSIAN_MODES),
  'loc_gaussians_1',
  'loc_gaussians_2',
  'cls_gaussians_1',
  'cls_gaussians_2',
  'shared_gaussian',
  'positives_inside',
  'normalize_sensitivity',
)


def apply_ablation_variants(config: ml_collections.ConfigDict, variants: set[str]) -> set[str]:
  """Applies the ablation variants in ``variants``; returns the names it does not know."""
  ase, train = config.model.ase, config.train
  if 'no_class_level' in variants:  # Table 5: no class-level Gaussians p_cls, p_sot, p_eot.
    ase.cls_gaussian = ase.loc_gaussian = 'none'
  if 'no_instance_level' in variants:  # Table 5: no instance-level evaluators q, no L_s.
    ase.instance_evaluator = False
    train.sensitivity_loss_weight = 0.0
  if 'no_ascl' in variants:  # Table 5: no Action Sensitive Contrastive Loss.
    train.contrastive_weight = 0.0
  for mode in GAUSSIAN_MODES:  # Table 6: the Gaussian of one sub-task.
    if f'cls_gaussian_{mode}' in variants:
      ase.cls_gaussian = mode
    if f'loc_gaussian_{mode}' in variants:
      ase.loc_gaussian = mode
  if 'loc_gaussians_1' in variants:  # Table 7: one Gaussian for both boundaries.
    ase.num_loc_gaussians = 1
  if 'loc_gaussians_2' in variants:  # Table 7: separate start and end Gaussians (default).
    ase.num_loc_gaussians = 2
  if 'cls_gaussians_1' in variants:  # Table 7: one classification Gaussian (default).
    ase.num_cls_gaussians = 1
  if 'cls_gaussians_2' in variants:  # Table 7: "#cls = 2", two classification Gaussians summed.
    ase.num_cls_gaussians = 2
  if 'shared_gaussian' in variants:  # Table 7: one Gaussian per class for every sub-task.
    ase.shared_gaussian = True
  if 'positives_inside' in variants:  # Beyond the paper: eq. 9-10 read literally.
    train.cls_positives = 'inside'
  if 'normalize_sensitivity' in variants:  # Beyond the paper: guard against p -> 0.
    train.normalize_sensitivity = True
  return set(variants) - set(ABLATION_VARIANTS)


def apply_variants(
  config: ml_collections.ConfigDict,
  variants: set[str],
  *,
  config_name: str,
  own: Iterable[str] = (),
) -> set[str]:
  """Common variants, then ablations; returns the config's ``own`` variants that were asked for.

  Raises ValueError naming every variant ``config_name`` does not know.
  """
  own = set(own)
  left = apply_ablation_variants(config, base.apply_common_variants(config, set(variants)))
  unknown = left - own
  if unknown:
    known = ', '.join(['small', 'baseline', *ABLATION_VARIANTS, *sorted(own)])
    raise ValueError(f'{config_name}: unknown variant(s) {sorted(unknown)}; known: {known}')
  return left & own


def table5_variants() -> list[str]:
  """Table 5 rows: each component alone, pairs, none, and all (ASL, the empty variant)."""
  return [
    'no_class_level,no_instance_level,no_ascl',
    'no_instance_level,no_ascl',
    'no_class_level,no_ascl',
    'no_class_level,no_instance_level',
    'no_ascl',
    '',
  ]


def table6_variants() -> list[str]:
  """Table 6 rows: each sub-task's Gaussian none / fixed / learnable, the other one learnable."""
  return ['cls_gaussian_none', 'cls_gaussian_fixed', 'loc_gaussian_none', 'loc_gaussian_fixed', '']


def table7_variants() -> list[str]:
  """Table 7 rows: #cls x #loc Gaussians (1 x 1, 1 x 2 = the default, 2 x 1, 2 x 2), one shared."""
  return [
    'loc_gaussians_1',
    '',
    'cls_gaussians_2,loc_gaussians_1',
    'cls_gaussians_2',
    'shared_gaussian',
  ]


def sweep_lambda() -> list[dict]:
  """Fig. 3 (left): the weight lambda of ASCL."""
  return [{'train.contrastive_weight': v} for v in LAMBDAS]


def sweep_delta() -> list[dict]:
  """Fig. 3 (right): delta, the half-width of the sensitive ranges in action lengths."""
  return [{'train.contrastive_delta': v} for v in DELTAS]


def sweep_theta() -> list[dict]:
  """theta of the channel-attention fusion; 0 switches the channel branch off."""
  return [{'model.channel_theta': v} for v in THETAS]
