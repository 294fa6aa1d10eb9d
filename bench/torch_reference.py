"""The PyTorch reference (ActionFormer) timed on the same inputs as our model benchmarks.

  ASL_TORCH_REFERENCE=/path/to/actionformer_release ASL_TORCH_PYTHON=/path/to/python \
    python -m bench.torch_reference [--quick] [--seq_len T] [--runs N] [--out JSON]

``ASL_TORCH_REFERENCE`` names a checkout of ActionFormer (happyharrycn/actionformer_release; its
``libs/modeling`` is all that is used) and ``ASL_TORCH_PYTHON`` an interpreter that has torch
(default ``python3``). Neither is part of this repository. Our environment has no torch, so the
reference runs in a subprocess of that interpreter, one case per process (its own peak RSS),
and answers with one JSON line. When the variable is unset, or the checkout or torch is missing,
the result says ``reference not available: <reason>`` and the program exits 0: it never fails.

Model: ActionFormer's ``LocPointTransformer`` at the THUMOS14 I3D config
(``configs/thumos_i3d.yaml`` over ``libs/core/config.py``: input 2048, embed 512, 4 heads, arch
(2, 2, 5), identity neck, 20 classes, drop-path 0.1), with global attention (window -1, the
issue's reference figure) and ActionFormer's local window 19. Inputs: the features and ground
truth of ``bench.bench_model`` (fixed seed), or of ``bench.bench_train`` for the case at its
quick length, written to a temporary ``.npz`` by this process and read by the child, so both
sides see the same numbers.

Measured per case, on the CPU (or CUDA when the interpreter's torch sees a GPU), after one
warm-up, ``--runs`` times (5; 3 with --quick): median, min and max of
  * ``forward_b1``: inference network forward at batch 1 (eval mode, no decoding or NMS);
  * ``forward_backward``: training forward (label assignment and losses) + backward, batch 2;
  * ``step``: that plus what ActionFormer's ``train_one_epoch`` adds per step: gradient
    clipping (L2 1.0), AdamW (lr 1e-4, weight decay 0.05) and the EMA update (0.999);
and the peak RSS after the forward and after training (CUDA: peak allocated memory too).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE_LEN = 2304  # THUMOS14 max_seq_len (bench_model's T).
BATCH = 2
LOCAL_WINDOW = 19  # ActionFormer's THUMOS14 window.
NOT_AVAILABLE = 'reference not available'

# ActionFormer's THUMOS14 I3D model kwargs: configs/thumos_i3d.yaml merged over the defaults of
# libs/core/config.py, with the dataset fields that load_config copies into the model.
THUMOS_MODEL = dict(
  backbone_type='convTransformer',
  fpn_type='identity',
  backbone_arch=(2, 2, 5),
  scale_factor=2,
  input_dim=2048,
  max_seq_len=BASE_LEN,
  max_buffer_len_factor=6.0,
  n_head=4,
  n_mha_win_size=LOCAL_WINDOW,
  embd_kernel_size=3,
  embd_dim=512,
  embd_with_ln=True,
  fpn_dim=512,
  fpn_with_ln=True,
  fpn_start_level=0,
  head_dim=512,
  regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],
  head_num_layers=3,
  head_kernel_size=3,
  head_with_ln=True,
  use_abs_pe=False,
  use_rel_pe=False,
  num_classes=20,
  train_cfg=dict(
    center_sample='radius',
    center_sample_radius=1.5,
    loss_weight=1.0,
    cls_prior_prob=0.01,
    init_loss_norm=100,
    clip_grad_l2norm=1.0,
    head_empty_cls=[],
    dropout=0.0,
    droppath=0.1,
    label_smoothing=0.0,
  ),
  test_cfg=dict(
    pre_nms_thresh=0.001,
    pre_nms_topk=2000,
    iou_threshold=0.1,
    min_score=0.001,
    max_seg_num=200,
    nms_method='soft',
    nms_sigma=0.5,
    duration_thresh=0.05,
    multiclass_nms=True,
    ext_score_file=None,
    voting_thresh=0.7,
  ),
)
TRAIN = dict(learning_rate=1e-4, weight_decay=0.05, clip_grad_l2norm=1.0, ema_decay=0.999)


# ---------------------------------------------------------------------------------------------
# Child side: runs under the torch interpreter, imports only torch, numpy and the checkout.


def load_actionformer(repo: str | os.PathLike, *, with_nms: bool = False) -> types.ModuleType:
  """ActionFormer's ``libs.modeling``, importable without its compiled NMS or its data stack.

  ``libs/utils/__init__.py`` pulls in pandas, joblib and the C++ extension ``nms_1d_cpu``; the
  model needs only ``batched_nms`` from it, and only for inference decoding. A stand-in
  ``libs.utils`` holds either the real ``libs/utils/nms.py`` (``with_nms``: the extension must
  have been built in ``libs/utils`` with ``python setup.py build_ext --inplace``) or a function
  that refuses to run.
  """
  import importlib.util

  repo = pathlib.Path(repo).resolve()
  if not (repo / 'libs' / 'modeling' / 'meta_archs.py').is_file():
    raise FileNotFoundError(f'{repo} is not an ActionFormer checkout (no libs/modeling)')
  sys.path.insert(0, str(repo))
  utils = types.ModuleType('libs.utils')
  utils.__path__ = []  # A package to the import system, with no submodules of its own.
  if with_nms:
    sys.path.insert(0, str(repo / 'libs' / 'utils'))  # Where build_ext --inplace puts the .so.
    spec = importlib.util.spec_from_file_location('libs.utils.nms', repo / 'libs/utils/nms.py')
    nms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nms)
    utils.batched_nms = nms.batched_nms
  else:

    def batched_nms(*args, **kwargs):
      raise RuntimeError('NMS is not loaded (load_actionformer(..., with_nms=True))')

    utils.batched_nms = batched_nms
  sys.modules['libs.utils'] = utils
  import libs.modeling

  return libs.modeling


def model_kwargs(window: int, seq_len: int) -> dict:
  """THUMOS14 kwargs with the attention window and training length of a case."""
  return dict(THUMOS_MODEL, n_mha_win_size=window, max_seq_len=seq_len)


def network_forward(model, video_list):
  """``PtTransformer.forward`` up to the head outputs: batching, backbone, neck, heads."""
  feats, masks = model.preprocessing(video_list)
  feats, masks = model.backbone(feats, masks)
  fpn_feats, fpn_masks = model.neck(feats, masks)
  return model.cls_head(fpn_feats, fpn_masks), model.reg_head(fpn_feats, fpn_masks)


def _summary(times: list[float]) -> dict:
  return {
    'median_s': statistics.median(times),
    'min_s': min(times),
    'max_s': max(times),
    'times_s': times,
  }


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_probe(repo: str) -> dict:
  """Imports torch and the model code: what :func:`status` needs to call it available."""
  import torch

  modeling = load_actionformer(repo)
  return {
    'torch': torch.__version__,
    'threads': torch.get_num_threads(),
    'cuda': bool(torch.cuda.is_available()),
    'local_attention': hasattr(modeling.blocks, 'LocalMaskedMHCA'),
  }


def child_case(repo: str, case: dict, inputs: str, runs: int) -> dict:
  """One case, timed in this process (the torch interpreter)."""
  import numpy as np
  import torch

  modeling = load_actionformer(repo)
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
  torch.manual_seed(0)
  model = modeling.make_meta_arch(
    'LocPointTransformer', **model_kwargs(case['window'], case['seq_len'])
  ).to(device)
  with np.load(inputs) as z:
    batch = {k: z[k] for k in z.files}
  videos = []
  for b in range(batch['feats'].shape[0]):
    valid = batch['segment_valid'][b]
    videos.append(
      {
        'feats': torch.from_numpy(np.ascontiguousarray(batch['feats'][b].T)),  # [C, T]
        'segments': torch.from_numpy(batch['segments'][b][valid].astype(np.float32)),
        'labels': torch.from_numpy(batch['labels'][b][valid].astype(np.int64)),
      }
    )
  result = dict(case, device=str(device), torch=torch.__version__, threads=torch.get_num_threads())
  result['params'] = int(sum(p.numel() for p in model.parameters()))
  result['load_average_start'] = os.getloadavg()

  model.eval()
  times = []
  with torch.no_grad():
    for i in range(runs + 1):  # The first call is the warm-up.
      sync()
      t0 = time.perf_counter()
      network_forward(model, videos[:1])
      sync()
      if i:
        times.append(time.perf_counter() - t0)
  result['forward_b1'] = _summary(times)
  result['peak_rss_forward_mb'] = _peak_rss_mb()

  model.train()
  optimizer = torch.optim.AdamW(
    model.parameters(), lr=TRAIN['learning_rate'], weight_decay=TRAIN['weight_decay']
  )
  ema = [v.detach().clone() for v in model.state_dict().values()]
  fb_times, step_times = [], []
  for i in range(runs + 1):
    sync()
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    losses = model(videos)
    losses['final_loss'].backward()
    sync()
    t1 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN['clip_grad_l2norm'])
    optimizer.step()
    with torch.no_grad():  # ActionFormer's ModelEma.update.
      for e, v in zip(ema, model.state_dict().values()):
        e.copy_(TRAIN['ema_decay'] * e + (1.0 - TRAIN['ema_decay']) * v)
    sync()
    if i:
      fb_times.append(t1 - t0)
      step_times.append(time.perf_counter() - t0)
  result['forward_backward'] = _summary(fb_times)
  result['step'] = _summary(step_times)
  result['loss'] = float(losses['final_loss'])
  result['peak_rss_mb'] = _peak_rss_mb()
  if device.type == 'cuda':
    result['peak_device_memory_gb'] = torch.cuda.max_memory_allocated() / 2**30
  result['load_average_end'] = os.getloadavg()
  return result


# ---------------------------------------------------------------------------------------------
# Parent side: runs in our environment (no torch).


def cases(quick: bool, seq_len: int | None = None, train_len: int | None = None) -> list[dict]:
  """Global and local attention at bench_model's T, and local at bench_train's T if it differs."""
  base = seq_len or BASE_LEN
  out = [
    dict(attention='global', window=-1, seq_len=base, inputs='model'),
    dict(attention='local', window=LOCAL_WINDOW, seq_len=base, inputs='model'),
  ]
  if train_len is None:
    from bench import bench_train

    train_len = seq_len or bench_train.default_seq_len(quick)
  if train_len != base:
    out.append(dict(attention='local', window=LOCAL_WINDOW, seq_len=train_len, inputs='train'))
  return out


def write_inputs(case: dict, path: pathlib.Path) -> None:
  """The batch our benchmark of the same case feeds its model, saved for the child."""
  import numpy as np

  if case['inputs'] == 'train':
    from bench import bench_train

    batch = bench_train.make_batch(bench_train.build_config('baseline', case['seq_len']))
  else:
    from bench import bench_model

    config = bench_model.build_config(case['window'], base_len=case['seq_len'])
    batch = bench_model.make_batch(case['seq_len'], BATCH, config.data.max_segments)
  keys = ('feats', 'segments', 'labels', 'segment_valid')
  np.savez(path, **{k: np.asarray(batch[k]) for k in keys})


def run_case(case: dict, runs: int, scratch: pathlib.Path, timeout: float) -> dict:
  """One case in a fresh child process; a failure is recorded in the row, not raised."""
  from bench import reference_env  # Parent side only: the child runs this file without `bench`.

  inputs = scratch / f'inputs_{case["inputs"]}_{case["seq_len"]}.npz'
  t0 = time.perf_counter()
  try:
    if not inputs.exists():
      write_inputs(case, inputs)
    repo = os.environ[reference_env.ENV_REPO]
    args = ['--case', json.dumps(case), '--inputs', str(inputs), '--runs', str(runs)]
    row = reference_env.run_child([*args, '--repo', repo], timeout)
  except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as e:
    return dict(case, error=str(e)[-3000:], wall_s=time.perf_counter() - t0)
  return dict(row, wall_s=time.perf_counter() - t0)


def summarize(info: dict, rows: list[dict]) -> str:
  lines = [
    f'PyTorch reference: ActionFormer at {info.get("commit") or "(commit unknown)"} '
    f'({info["repo"]}), torch {info.get("torch")}, {info.get("threads")} threads, '
    f'run by {info["python"]}.',
    '',
    '| attention | T | infer s/video (b1) | fwd+bwd s (b2) | step s (b2) | min-max step s | '
    'params | peak RSS fwd / train GB | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["attention"]} | {r["seq_len"]} | failed: {r["error"][-200:]!r} |')
      continue
    st = r['step']
    lines.append(
      f'| {r["attention"]} | {r["seq_len"]} | {r["forward_b1"]["median_s"]:.3f} | '
      f'{r["forward_backward"]["median_s"]:.3f} | {st["median_s"]:.3f} | '
      f'{st["min_s"]:.3f}-{st["max_s"]:.3f} | {r["params"]:,} | '
      f'{r["peak_rss_forward_mb"] / 1024:.2f} / {r["peak_rss_mb"] / 1024:.2f} | '
      f'{r["load_average_start"][0]:.1f}-{r["load_average_end"][0]:.1f} |'
    )
  return '\n'.join(lines)


def run_benchmark(
  quick: bool, runs: int | None = None, seq_len: int | None = None, timeout: float = 3600
) -> dict:
  """The reference's figures, or a 'reference not available' result; never raises."""
  from bench import reference_env

  runs = runs or (3 if quick else 5)
  result = {'benchmark': 'torch_reference', 'quick': quick, 'runs': runs, 'rows': []}
  info = reference_env.status()
  result['reference'] = info
  if not info['available']:
    message = f'{NOT_AVAILABLE}: {info["reason"]}'
    result.update(status=message, notes=[message], table_markdown=message)
    return result
  todo = cases(quick, seq_len)
  if not info.get('local_attention'):
    todo = [c for c in todo if c['attention'] != 'local']
  with tempfile.TemporaryDirectory() as scratch:
    for case in todo:
      print(f'reference: {case} ...', file=sys.stderr, flush=True)
      result['rows'].append(run_case(case, runs, pathlib.Path(scratch), timeout))
  result['status'] = 'ok'
  result['table_markdown'] = summarize(info, result['rows'])
  result['notes'] = [
    'Same features and ground truth as our benchmark of the same case; times are wall clock '
    f'(median of {runs} after a warm-up). Ratios against ours: the side-by-side section.'
  ]
  return result


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='3 timed runs; local at T=1152 too')
  parser.add_argument('--runs', type=int, default=None, help='timed runs (default 5; 3 quick)')
  parser.add_argument('--seq_len', type=int, default=None, help='T of every case (reduced run)')
  parser.add_argument('--out', default=None, help='JSON results')
  # Child side (under the torch interpreter).
  parser.add_argument('--repo', default=None, help=argparse.SUPPRESS)
  parser.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--case', default=None, help=argparse.SUPPRESS)
  parser.add_argument('--inputs', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.probe:
    print(json.dumps(child_probe(args.repo)))
    return
  if args.case:
    print(json.dumps(child_case(args.repo, json.loads(args.case), args.inputs, args.runs)))
    return
  result = run_benchmark(args.quick, args.runs, args.seq_len)
  print(result['table_markdown'])
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(f'wrote {args.out}', file=sys.stderr)


if __name__ == '__main__':
  if __package__ in (None, ''):  # Run as a file by the torch interpreter: `bench` importable.
    sys.path.insert(0, str(REPO_ROOT))
  main()
