r"""Command-line entry point: flags -> config -> ``train_and_evaluate``; nothing else.

python -m asl_jax.main --config=configs/demo.py --workdir=workdirs/demo \
  [--config.train.batch_size=16]
"""

import logging
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Config file, e.g. configs/demo.py[:small].'
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
_MODE = flags.DEFINE_enum(
  'mode', 'train', ['train', 'eval'], 'train (resumes if workdir has a checkpoint) or eval.'
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # Our own progress at INFO; the libraries' (orbax, absl) chatter only from WARNING up.
  logging.getLogger().setLevel(logging.WARNING)
  logging.getLogger('asl_jax').setLevel(logging.INFO)
  from asl_jax.train import loop  # Imported after flag parsing: keeps --help fast.

  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value, train=_MODE.value == 'train')


if __name__ == '__main__':
  app.run(main)
