"""``python -m asl_jax.main``: the spelling of earlier releases for ``asl-train``."""

if __name__ == '__main__':
  from asl_jax.cli import train

  train.run()
