"""Pure jnp/numpy operations: segments, label assignment, losses, NMS. No flax, no tf, no config."""
