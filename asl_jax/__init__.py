"""ASL: Action Sensitivity Learning for temporal action localization, in JAX/Flax."""
