"""Shared defaults for every asl-jax config: THUMOS14-like I3D geometry and the ActionFormer recipe.

Not meant to be launched on its own: dataset configs call ``get_base_config()`` and override the
data section. Every field is commented; ``asl_jax.configuration.validate_config`` checks them.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 42  # Seeds parameter init, data order, truncation and dropout.
  # Debug run for stepping through (asl_jax/debug.py, applied by asl_jax.main): tiny model, a few
  # videos, one short epoch, jax_debug_nans and jax_disable_jit. Command-line overrides win.
  config.debug = False

  # ---------------------------------------------------------------- data
  data = config.data = ml_collections.ConfigDict()
  data.name = 'custom'  # Free-form dataset name (logs, workdir naming).
  data.annotation_file = (
    ''  # ActionFormer-format JSON: database/<vid>/{subset,duration,fps,annotations}.
  )
  # 'auto' picks the loader from the file's shape; or actionformer|flat|superevents|bsn.
  data.annotation_format = 'auto'
  data.video_info_csv = ''  # BSN only: video_info.csv with each video's subset and fps.
  data.class_names_file = ''  # Class names, one per line after a header line (BSN action_name.csv).
  data.label_offset = 0  # Added to flat/super-events label ids (MultiThumos 1..65 -> -1).
  data.feature_dir = ''  # Folder with one [T, C] feature file per video.
  data.feature_prefix = ''  # File name = prefix + video_id + feature_ext.
  data.feature_ext = '.npy'  # '.npy' or '.npz' (key 'feats').
  # Several feature sets: comma-separated feature_dir, concatenated along channels in that order.
  data.feature_dims = ()  # Channels of each set (checked when read); () checks only input_dim.
  data.feature_policy = 'resample'  # Unequal set lengths: 'resample' to the longest, or 'error'.
  data.num_classes = 20  # K; must cover every label_id in the annotation file.
  data.input_dim = 2048  # Channels C of the feature files (checked against the first file read).
  data.feat_stride = 4.0  # Video frames between consecutive feature vectors.
  data.num_frames = 16.0  # Frames seen by one feature vector (extractor window).
  data.default_fps = -1.0  # > 0 overrides every video's fps; <= 0 uses the fps in the JSON.
  data.downsample_rate = 1  # Keep every r-th feature (stride x r); ignored with force_upsampling.
  # Resize every video's features to exactly max_seq_len steps (ActivityNet, Ego4D).
  data.force_upsampling = False
  data.train_subset = (
    'validation'  # Subset name(s) used for training, comma-separated, case-insensitive.
  )
  data.eval_subset = 'test'  # Subset name(s) evaluated during and after training.
  data.max_seq_len = 2304  # Training window length in grid steps; divisible by the pyramid stride.
  data.trunc_thresh = 0.5  # A GT survives a random crop if this fraction of it stays inside.
  # Short videos are cropped to a random fraction in this range; () disables.
  data.crop_ratio = (0.9, 1.0)
  data.max_segments = 64  # GT segments per video after padding; videos with more are reported.
  data.max_videos = 0  # > 0: only the first N videos (by id) of each split (smoke runs; logged).
  data.tfds_dir = ''  # Built TFDS shards (tools/build_dataset --out); set: train from them.
  data.prefetch_batches = 2  # Training batches built ahead in a thread (across epochs); 0: none.
  # Synthetic data (demo.py): generated into the folders above when they are missing.
  data.synthetic = ml_collections.ConfigDict()
  data.synthetic.enabled = False  # Generate annotation_file / feature_dir if absent.
  data.synthetic.num_videos = 240  # Total videos over all subsets.
  data.synthetic.seed = 0  # Generator seed (independent of config.seed).
  data.synthetic.min_len = 128  # Shortest video in grid steps.
  data.synthetic.max_len = 384  # Longest video in grid steps.
  # How hard the features are (asl_jax.data.synthetic.SynthesisSpec fields; defaults = demo).
  data.synthetic.signal_amplitude = 4.0  # Prototype norm relative to the noise per channel.
  data.synthetic.weak_frame_prob = 0.15  # Fraction of action frames that carry little signal.
  data.synthetic.shared_fraction = 0.25  # Similarity that classes share within a sub-action.
  data.synthetic.distractor_amplitude = 1.5  # Strength of the background distractors.
  data.synthetic.distractor_similarity = 0.3  # Squared cosine distractor ~ class middle part.
  # Instance layout (SynthesisSpec; configs/demo.py:dense makes it MultiThumos-like).
  data.synthetic.min_instances = 2  # Instances per video, uniform in [min, max].
  data.synthetic.max_instances = 8
  data.synthetic.overlap_prob = 0.2  # Chance an instance is placed across another class's.
  data.synthetic.min_overlap_frac = 0.0  # Least overlap of such a pair, of the shorter one.
  data.synthetic.class_part_concentration = 0.0  # > 0: per-class sub-action proportions.

  # ---------------------------------------------------------------- model
  model = config.model = ml_collections.ConfigDict()
  model.arch = (2, 2, 5)  # (embedding convs, stride-1 stem blocks, stride-2 branch blocks).
  model.embed_dim = 512  # Transformer width C.
  model.embed_kernel_size = 3  # Kernel of the embedding convs.
  # Several feature sets concatenated along channels (e.g. Ego4D: EgoVLP 256 + SlowFast 2304 +
  # Omnivore 1536): each set gets its own 1x1 projection before the embedding convs.
  model.input_streams = ()  # Channel width of each set, in order; must sum to data.input_dim.
  model.stream_embed_dims = ()  # Projected width of each set (concatenated); same length.
  model.use_abs_pe = False  # Sinusoid absolute position embedding (table of data.max_seq_len).
  model.num_heads = 4  # Attention heads.
  model.window_size = 19  # Local attention window (odd), -1 for global; or one value per level.
  model.mlp_ratio = 4  # MLP hidden width = mlp_ratio * C.
  model.dropout = 0.0  # Dropout after attention projection and in the MLP.
  model.droppath = 0.1  # Stochastic depth rate of the residual branches.
  model.scale_factor = 2  # Downsampling between pyramid levels (only 2 is supported).
  model.neck = 'identity'  # 'identity' (per-level LayerNorm) or 'fpn'.
  model.fpn_dim = 512  # Neck output width (must equal embed_dim for 'identity').
  model.head_dim = 512  # Width of the head conv towers.
  model.head_num_layers = 3  # Convs per head, output conv included.
  model.head_kernel_size = 3  # Kernel of the head convs.
  model.cls_prior_prob = 0.01  # Initial foreground probability of the classifier.
  model.empty_classes = ()  # Class ids with no training data (their prior is 1e-6).
  # Regression range (grid units) of each pyramid level: one pair per level.
  model.regression_ranges = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
  model.dtype = 'float32'  # Compute dtype: float32 or bfloat16 (params and losses stay float32).
  # Recompute each encoder block in the backward pass instead of keeping its activations:
  # 'none', 'full' (keep only block inputs) or 'dots' (keep projection outputs). Same gradients;
  # less step memory for more compute (bench/RESULTS.md, "step memory").
  model.remat = 'none'
  # ASL (paper sec. 3): theta-fused channel attention and the Action Sensitivity Evaluator.
  model.channel_theta = 0.2  # theta of f' = (1 - theta) TA + theta CA in stem blocks; 0 disables.
  model.ase = ml_collections.ConfigDict()
  model.ase.cls_gaussian = 'learnable'  # Class Gaussian for classification: learnable|fixed|none.
  model.ase.loc_gaussian = 'learnable'  # Class Gaussians for localisation: learnable|fixed|none.
  model.ase.num_loc_gaussians = 2  # 2: separate start/end Gaussians; 1: one for both (Table 7).
  model.ase.num_cls_gaussians = 1  # 1, or 2 summed classification Gaussians (Table 7).
  model.ase.shared_gaussian = False  # One Gaussian per class for every sub-task (Table 7).
  model.ase.instance_evaluator = True  # Instance-level evaluators q_cls, q_loc (Table 5).

  # ---------------------------------------------------------------- training
  train = config.train = ml_collections.ConfigDict()
  train.batch_size = 2  # Global batch size (split over all devices of all hosts).
  train.num_epochs = 30  # Epochs after warmup.
  train.warmup_epochs = 5  # Linear warmup epochs (counted before num_epochs).
  train.min_steps = 0  # If > 0, more epochs when the above give fewer optimizer steps (:small).
  train.learning_rate = 1e-4  # Peak AdamW learning rate.
  train.weight_decay = 0.05  # AdamW decay on conv/linear kernels only.
  train.clip_grad_norm = 1.0  # Global L2 norm clip; <= 0 disables.
  train.ema_decay = 0.999  # EMA of weights used for evaluation (warmed up: see docs/design.md).
  train.init_loss_norm = (
    100.0  # Initial value of the EMA of the positive count that divides losses.
  )
  train.center_sample_radius = (
    1.5  # Centre sampling radius in strides; <= 0: anywhere inside the GT.
  )
  train.reg_loss_weight = 1.0  # Weight of the DIoU loss.
  train.label_smoothing = 0.0  # Focal-loss label smoothing epsilon.
  train.sensitivity_loss_weight = 1.0  # Weight of L_s, the MSE of q against quality targets.
  train.contrastive_weight = 0.3  # lambda of the Action Sensitive Contrastive Loss; 0 disables.
  train.contrastive_delta = 0.2  # delta: sensitive ranges are +-delta * action length (paper).
  train.contrastive_temperature = 0.07  # tau in exp(cos / tau) (not given in the paper).
  # Beyond the paper, off by default (docs/design.md, 'Sensitivity options'):
  train.cls_positives = 'centre'  # 'inside': every point inside an action is a cls positive.
  train.normalize_sensitivity = False  # p / its mean over each instance's positives.
  train.focal_alpha = 0.25
  train.focal_gamma = 2.0
  train.log_every_steps = 20  # Scalars to TensorBoard / metrics.jsonl.
  train.checkpoint_every_steps = 500  # Periodic checkpoints (also one at the end).
  train.keep_checkpoints = 3  # Most recent checkpoints kept.
  train.write_figures = True  # PNGs of what the model learned in workdir/figures at the end.
  # Evaluate the EMA weights on data.eval_subset every N epochs and keep the best state by
  # average mAP in checkpoints_best/ (metrics.json names its step); 0: only at the end. The
  # subset must then be a validation split: selecting on the reported test split overstates it.
  train.eval_every_epochs = 0
  # Multi-process runs: a process whose peer sends no heartbeat for this long (killed, host
  # lost) stops with exit status 75 (relaunch to resume); JAX's own check aborts at 2x + 10 s.
  train.peer_timeout_s = 120.0

  # ---------------------------------------------------------------- inference / evaluation
  test = config.test = ml_collections.ConfigDict()
  test.batch_size = 8  # Videos per inference batch (the last batch is padded and masked).
  test.pre_nms_thresh = 0.001  # Candidates need a probability above this.
  test.pre_nms_topk = 2000  # Candidates kept per level before NMS.
  test.duration_thresh = 0.05  # Minimum candidate length (grid units).
  test.nms_method = 'gaussian'  # 'gaussian' (Soft-NMS), 'linear' or 'hard'.
  test.nms_sigma = 0.5  # Soft-NMS decay exp(-iou^2 / sigma).
  test.iou_threshold = 0.1  # Used by 'linear' and 'hard' only.
  test.min_score = 0.001  # Candidates decayed below this are dropped.
  test.max_seg_num = 200  # Detections kept per video.
  test.multiclass_nms = True  # Per-class NMS (True) or class-agnostic with voting.
  test.voting_thresh = 0.7  # Score-voting IoU threshold (class-agnostic NMS only).
  test.tiou_thresholds = (0.3, 0.4, 0.5, 0.6, 0.7)  # Evaluation tIoUs (THUMOS14 protocol).
  return config


SMALL_MIN_STEPS = 300  # :small trains at least this many optimizer steps (a few CPU minutes).
SMALL_MODEL = dict(embed_dim=64, num_heads=4, fpn_dim=64, head_dim=64, window_size=9)


def apply_small_variant(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``:small`` variant: same data; model and schedule that train on a laptop CPU in minutes."""
  config.model.update(SMALL_MODEL)
  config.model.arch = (2, 1, config.model.arch[2])
  config.train.batch_size = 8
  config.train.num_epochs = min(config.train.num_epochs, 4)
  config.train.warmup_epochs = 1
  # At least SMALL_MIN_STEPS steps: 4 epochs of a 72-video set are 36 steps, far from a plateau.
  config.train.min_steps = SMALL_MIN_STEPS
  config.train.learning_rate = 1e-3
  config.train.checkpoint_every_steps = 100
  config.test.pre_nms_topk = min(config.test.pre_nms_topk, 1000)
  return config


def apply_baseline_variant(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``:baseline`` variant: every ASL part off, i.e. the ActionFormer detector and losses."""
  config.model.channel_theta = 0.0
  config.model.ase.cls_gaussian = 'none'
  config.model.ase.loc_gaussian = 'none'
  config.model.ase.instance_evaluator = False
  config.train.contrastive_weight = 0.0
  return config


def apply_common_variants(config: ml_collections.ConfigDict, variants: set[str]) -> set[str]:
  """Applies the variants every config understands; returns the ones left for the caller."""
  if 'small' in variants:
    apply_small_variant(config)
  if 'baseline' in variants:
    apply_baseline_variant(config)
  return variants - {'small', 'baseline'}


def parse_variant(arg: str | None) -> set[str]:
  """``'small'`` / ``'small,foo'`` -> {'small', 'foo'}; unknown names are checked by the caller."""
  return {a.strip() for a in (arg or '').split(',') if a.strip()}
