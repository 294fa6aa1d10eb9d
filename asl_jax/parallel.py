"""The ('data',) device mesh, its shardings, and host-local numpy batches -> global jax.Arrays."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec


def create_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh over every device of every process."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), ('data',), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the 'data' axis; other axes whole."""
  return NamedSharding(mesh, PartitionSpec('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def check_batch_size(global_batch_size: int, mesh: Mesh, field: str = 'train.batch_size') -> None:
  """Raises ConfigError unless the batch splits evenly over the mesh's devices (known at start)."""
  from asl_jax.configuration import ConfigError

  n = mesh.size
  if global_batch_size % n:
    suggestion = max(n, global_batch_size // n * n)
    raise ConfigError(
      f'{field}={global_batch_size} must be divisible by the device count {n}; use a multiple of '
      f'{n} (--config.{field}={suggestion})'
    )


def to_global(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's slice of the batch into one global array sharded over 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
