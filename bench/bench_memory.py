"""The training step's own memory at the THUMOS14 config (XLA's buffer assignment; nothing runs).

  python -m bench.bench_memory [--quick] [--out bench/results_memory.json] [--cases SPEC]

For local (window 19) and global attention, T in (2304, 4608, 9216), batch in (2, 8, 32), and
``model.remat`` in (none, full, dots): arguments (state + batch), temporaries and the total of
``compiled.memory_analysis()`` for the full ASL step of ``bench.bench_train.build_config``
(:func:`asl_jax.train.memory.step_memory`: abstract inputs, so the large cases only compile).
Each case compiles the step once (minutes on 2 CPU cores); ``--quick`` measures the THUMOS14
case with every remat policy, the T and batch scaling with local attention and global attention
at T = 2304. ``--cases attention:T:batch:remat,...`` picks cases. Rows are written to ``--out``
as they finish, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench import bench_train, common

ATTENTIONS = {'local': bench_train.THUMOS['window'], 'global': -1}
SEQ_LENS = (2304, 4608, 9216)
BATCHES = (2, 8, 32)
REMATS = ('none', 'full', 'dots')
QUICK_CASES = (
  [('local', 2304, 2, r) for r in REMATS]
  + [('global', 2304, 2, 'none'), ('local', 4608, 2, 'none'), ('local', 2304, 8, 'none')]
  + [('local', 9216, 2, 'none'), ('local', 2304, 32, 'none')]
)
# ActionFormer's PyTorch process peak at this config on the H200 (bench/device_results).
ACTIONFORMER_GB = 2.07


def all_cases() -> list[tuple[str, int, int, str]]:
  return [(a, t, b, r) for a in ATTENTIONS for t in SEQ_LENS for b in BATCHES for r in REMATS]


def parse_cases(spec: str) -> list[tuple[str, int, int, str]]:
  cases = []
  for item in spec.split(','):
    attention, t, b, remat = item.split(':')
    cases.append((attention, int(t), int(b), remat))
  return cases


def measure(attention: str, seq_len: int, batch: int, remat: str) -> dict:
  from asl_jax.train import memory

  config = bench_train.build_config('asl', seq_len)
  config.model.window_size = ATTENTIONS[attention]
  config.model.remat = remat
  row = {'attention': attention, 'seq_len': seq_len, 'batch': batch, 'remat': remat}
  try:
    row.update(memory.step_memory(config, batch_size=batch).as_gb())
  except Exception as exc:  # A case that does not compile is recorded, not fatal.
    row['error'] = f'{type(exc).__name__}: {str(exc)[:300]}'
  return row


def table(rows: list[dict]) -> str:
  lines = [
    '| attention | T | batch | remat | arguments GB | temporaries GB | total GB | compile s |',
    '|---|---:|---:|---|---:|---:|---:|---:|',
  ]
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["attention"]} | {r["seq_len"]} | {r["batch"]} | {r["remat"]} | '
                   f'failed: {r["error"][:80]} | | | |')  # fmt: skip
      continue
    lines.append(
      f'| {r["attention"]} | {r["seq_len"]} | {r["batch"]} | {r["remat"]} | '
      f'{r["arguments_gb"]:.3f} | {r["temporaries_gb"]:.3f} | {r["total_gb"]:.3f} | '
      f'{r["compile_s"]:.0f} |'
    )
  return '\n'.join(lines)


def notes(rows: list[dict]) -> list[str]:
  """What the table says about the THUMOS14 case and the target."""
  thumos = next(
    (r for r in rows if r.get('seq_len') == 2304 and r.get('batch') == 2
     and r.get('attention') == 'local' and r.get('remat') == 'none' and 'error' not in r),
    None,
  )  # fmt: skip
  out = [
    'Per device, from compiled.memory_analysis() of the whole jitted step on this backend (CPU); '
    'outputs alias the donated state, so total = arguments + temporaries + unaliased outputs.',
  ]
  if thumos:
    out.append(
      f'THUMOS14 config (local, T 2304, batch 2): temporaries {thumos["temporaries_gb"]:.2f} GB '
      f"(target <= {ACTIONFORMER_GB} GB, ActionFormer's process peak on the H200)."
    )
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--out', default=None)
  parser.add_argument('--cases', default='', help='attention:T:batch:remat,...')
  args = parser.parse_args(argv)
  import jax

  jax.config.update('jax_enable_compilation_cache', False)  # Compile times are part of a row.
  cases = parse_cases(args.cases) if args.cases else (QUICK_CASES if args.quick else all_cases())
  load = os.getloadavg()
  result = {'benchmark': 'memory', 'backend': jax.default_backend(), 'rows': []}
  for case in cases:
    t0 = time.perf_counter()
    result['rows'].append(measure(*case))
    print(json.dumps(result['rows'][-1]), f'({time.perf_counter() - t0:.0f} s)', flush=True)
    result['table_markdown'] = table(result['rows'])
    result['notes'] = notes(result['rows'])
    result['machine'] = common.process_machine(load)
    common.write_result(result, args.out)
  common.write_result(result, args.out)
  print(result['table_markdown'])
  return result


if __name__ == '__main__':
  main()
