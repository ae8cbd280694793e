"""The values that flags choose among, and the defaults they need, in a module that imports nothing.

Building the command line imports every command's config dataclass, so everything those
dataclasses read at class creation lives here, not in the modules that use it (which
import torch or numpy): ``sentiment-discovery --help`` then starts in a fraction of a
second (docs/performance.md). Each value is defined here once; the modules that use it
import it from here.
"""

# The precision of the matrix products (precision.resolve_precision).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# How a text's sequence of cell states becomes one feature vector (features.featurize).
POOLINGS = ("final", "mean", "max", "concat")
# Recurrent layer types (model.ModelConfig).
RNN_TYPES = ("mlstm", "lstm")
# The mLSTM implementations (model.MLSTM_IMPLEMENTATIONS).
MLSTM_IMPLEMENTATION_NAMES = ("reference", "loop", "fast")
# Where the recurrent state is reset in training: at each text, at each shard, never (-persist_state).
NEVER_RESET, RESET_AT_TEXT, RESET_AT_SHARD = -1, 0, 1
PERSIST_STATE_CHOICES = (RESET_AT_TEXT, RESET_AT_SHARD, NEVER_RESET)
# Learning-rate schedules (training.make_schedule).
SCHEDULES = ("LinearLR", "ExponentialLR")
# Input file formats (data.readers).
FORMATS = ("csv", "tsv", "json", "jsonl", "txt")
# The datasets `download` fetches (data.download.DATASETS).
DATASET_NAMES = ("sst2", "imdb", "mr", "cr", "subj", "mpqa")
# The release dealt every corpus into 1002 shards (1000 train, 1 validation, 1 test).
DEFAULT_NUM_SHARDS = 1002

# Fine-tuning (finetune.py): the learning-rate decay after the warm-up, and how the head starts.
DECAYS = ("linear", "cosine", "constant")
HEAD_INITS = ("probe", "random")

# The names of a binary classifier's labels 0 and 1 (classify's lines, serve's answers).
LABELS = ("negative", "positive")

# Generation (visualize -generate, serve's /generate): the most bytes the command line writes
# (serve's own cap is --max-new-bytes), and the largest magnitude a held cell state may take
# (+1 / -1 steer; past float32's range the model's products overflow).
MAX_GENERATE_BYTES = 10_000
MAX_HOLD = 1e6

# Transfer's regularisation strengths C (transfer.sweep): 2^-8 ... 2^0, the paper's code's grid.
DEFAULT_C_GRID = tuple(float(2.0**power) for power in range(-8, 1))

# How a first-release mLSTM checkpoint's gate blocks are laid out (importers.py, docs/importing.md):
# "unfused": its own cell, gates i, f, o, u; "fused" (-fuse_lstm, run on the CPU): PyTorch's
# LSTMCell, gates i, f, g, o; "fused-cuda": the same on CUDA, whose fused kernel drops the
# recurrent bias when the input weight has none; "auto": the checkpoint's saved -fuse_lstm
# flag where it records one (a model trained fused was trained on CUDA), else "unfused".
GATE_LAYOUTS = ("auto", "unfused", "fused", "fused-cuda")
