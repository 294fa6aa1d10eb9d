"""The dense, MultiThumos-like variant of the synthetic generator (configs/demo.py:dense)."""

import numpy as np

from asl_jax.configs import demo
from asl_jax.data import synthetic


def _dense_spec(**overrides):
  c = demo.get_config('dense').data.synthetic
  fields = {k: c[k] for k in synthetic.LAYOUT_FIELDS}
  return synthetic.SynthesisSpec(min_len=c.min_len, max_len=c.max_len, **{**fields, **overrides})


def test_default_spec_keeps_one_part_mean_for_every_class():
  spec = synthetic.SynthesisSpec()
  np.testing.assert_allclose(synthetic.class_part_means(spec), [[0.25, 0.5, 0.25]] * 8)


def test_per_class_part_proportions_differ_and_instances_follow_them():
  spec = _dense_spec()
  means = synthetic.class_part_means(spec)
  np.testing.assert_allclose(means.sum(-1), 1.0)
  assert np.ptp(means[:, 0]) > 0.15 and np.ptp(means[:, 2]) > 0.15  # Classes differ.
  # The prototypes do not change with the layout settings (their own random stream).
  np.testing.assert_array_equal(
    synthetic.class_patterns(spec)[0], synthetic.class_patterns(synthetic.SynthesisSpec())[0]
  )
  shares = {k: [] for k in range(spec.num_classes)}
  for i in range(60):
    video = synthetic.generate_video(spec, i)
    for length, parts, label in zip(video.lengths, video.part_lengths, video.labels):
      if length >= 30:
        shares[int(label)].append(parts / length)
  for k, values in shares.items():
    if len(values) >= 15:
      np.testing.assert_allclose(np.mean(values, 0), means[k], atol=0.07)


def test_dense_layout_many_classes_at_once_with_long_overlaps():
  spec = _dense_spec()
  per_frame, counts = [], []
  for i in range(30):
    video = synthetic.generate_video(spec, i)
    t = video.features.shape[0]
    cover = np.zeros((t, spec.num_classes), bool)
    for start, length, label in zip(video.starts, video.lengths, video.labels):
      cover[start : start + length, label] = True
    active = cover.sum(1)
    per_frame.append(active[active > 0].mean())
    counts.append(len(video.labels))
  assert np.mean(counts) > 8 and np.mean(per_frame) > 1.7
  demo_spec = synthetic.SynthesisSpec(min_len=128, max_len=384)
  demo_frames = []
  for i in range(30):
    video = synthetic.generate_video(demo_spec, i)
    cover = np.zeros((video.features.shape[0], 8), bool)
    for start, length, label in zip(video.starts, video.lengths, video.labels):
      cover[start : start + length, label] = True
    active = cover.sum(1)
    demo_frames.append(active[active > 0].mean())
  assert np.mean(per_frame) > np.mean(demo_frames) + 0.5


def test_min_overlap_fraction_is_respected():
  """With every instance placed across another, each but the first overlaps one by half."""
  spec = _dense_spec(overlap_prob=1.0, min_overlap_frac=0.5)
  for i in range(20):
    video = synthetic.generate_video(spec, i)
    spans = list(zip(video.starts, video.lengths))
    lonely = 0
    for a, (s, n) in enumerate(spans):
      partners = [
        min(s + n, s2 + n2) - max(s, s2) >= np.ceil(0.5 * min(n, n2))
        for b, (s2, n2) in enumerate(spans)
        if b != a
      ]
      lonely += not any(partners)
    assert lonely <= 1, (i, spans)


def test_dense_variant_reaches_the_generator(tmp_path, monkeypatch):
  from asl_jax.train import loop

  data = demo.get_config('dense').data
  data.annotation_file = str(tmp_path / 'dense' / 'annotations.json')
  data.feature_dir = str(tmp_path / 'dense' / 'features')
  seen = {}

  def spy(out_dir, **kwargs):
    seen.update(kwargs)
    return {}

  monkeypatch.setattr(synthetic, 'synthesize_dataset', spy)
  loop.maybe_synthesize(data)
  assert {k: seen[k] for k in synthetic.LAYOUT_FIELDS} == {
    k: data.synthetic[k] for k in synthetic.LAYOUT_FIELDS
  }
  assert seen['class_part_concentration'] == 4.0 and seen['overlap_prob'] == 0.8
