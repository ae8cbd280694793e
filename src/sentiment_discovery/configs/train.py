"""The flags of ``sentiment-discovery train`` (run: :mod:`sentiment_discovery.recipes.train`)."""

import dataclasses

from ..foundation.choices import PERSIST_STATE_CHOICES, PRECISIONS, SCHEDULES
from ..foundation.model_config import ARCHITECTURE_SETTINGS, ModelConfig
from ..foundation.options import option, option_like
from .common import SEED_MODEL_NO_OPS, ExperimentConfig

MODEL_FLAGS = ARCHITECTURE_SETTINGS  # train takes a flag for each


NO_LABELS = "training reads texts only, no labels."


@dataclasses.dataclass(kw_only=True)
class TrainConfig(ExperimentConfig):
    # 2017 flags that text_reconstruction.py took and train ignores (flag -> why)
    NO_OP_FLAGS = {
        "lazy": "the corpus is always memory-mapped from disk, never read into memory.",
        "preprocess": "raw files are always cleaned as in section 4 of the paper when their corpus is built (once).",
        "data_set_type": "training always reads an unsupervised byte corpus.",
        "transpose": "batches are always parallel byte streams (the transposed layout).",
        "cache": "the memory-mapped corpus is cached by the operating system.",
        "data_size": SEED_MODEL_NO_OPS["data_size"],
        "label_key": NO_LABELS,
        "drop_unlabeled": NO_LABELS,
        "binarize_sent": NO_LABELS,
    }

    # ---- data
    train: str = option(
        help="training data: a CSV/TSV/JSON/JSON Lines/text file (optionally .gz), cleaned into a cached byte "
        "corpus on first use, or a corpus directory made by `preprocess`"
    )
    valid: str | None = option(
        None,
        help="validation data (file or corpus directory); the training file itself means the training corpus's "
        "valid split, which is also used when -valid is not given",
    )
    test: str | None = option(None, help="test data, like -valid; evaluated at the end of the run")
    text_key: str = option("sentence", help="column or key holding the text in CSV/JSON files")
    delim: str | None = option(None, help="column delimiter for delimited files (default: by extension)")
    split: str = option(
        "1000,1,1",
        help="how a raw -train file is dealt into train,valid,test (runs of their sum, as the 2017 release), "
        "or a training fraction such as 1.",
    )
    shuffle: bool = option(False, help="concatenate the texts in a new seeded order every epoch")
    persist_state: int = option(
        0,
        choices=PERSIST_STATE_CHOICES,
        help="reset the recurrent state at each text (0), each shard (1) or never (-1)",
    )
    no_wrap: bool = option(
        False, help="drop the bytes left over at the end of an epoch instead of wrapping streams around the corpus"
    )
    seq_length: int = option(256, help="bytes per stream per update (truncated backpropagation through time)", minimum=1)
    batch_size: int = option(32, help="streams per process; the global batch is batch_size x processes", minimum=1)
    eval_batch_size: int = option(0, help="streams per process when evaluating (0: -batch_size)", minimum=0)
    eval_seq_length: int = option(0, help="bytes per stream per evaluation batch (0: -seq_length)", minimum=0)
    # ---- model
    load_model: str | None = option(
        None,
        help="start from this model directory (or a checkpoint name such as e0.pt in <model_dir>/); the "
        "optimizer starts afresh (see --resume)",
    )
    # the architecture: declared once, in ModelConfig
    rnn_type: str = option_like(ModelConfig, "rnn_type")
    embed_size: int = option_like(ModelConfig, "embed_size")
    rnn_size: int = option_like(ModelConfig, "rnn_size")
    layers: int = option_like(ModelConfig, "layers")
    dropout: float = option_like(ModelConfig, "dropout")
    weight_norm: bool = option_like(ModelConfig, "weight_norm")
    lstm_only: bool = option_like(ModelConfig, "lstm_only")
    # ---- optimisation
    lr: float = option(5e-4, help="starting learning rate; scale it with the global batch (see docs/training.md)", minimum=0)
    optimizer_type: str = option("Adam", help="class name of a torch.optim optimizer (Adam, SGD, RMSprop, ...)")
    lr_scheduler: str = option(
        "LinearLR",
        choices=SCHEDULES,
        help="LinearLR: linear decay to 0 over the run, per iteration; ExponentialLR: times -lr_factor each epoch",
    )
    lr_factor: float = option(0.95, help="ExponentialLR's decay per epoch", above=0)
    clip: float = option(1.0, help="clip the gradient norm to this (0: no clipping)", minimum=0)
    epochs: int = option(1, help="epochs to train for", minimum=1)
    max_iters: int = option(0, help="total iterations to train for; takes precedence over -epochs (0 or -1: off)", minimum=-1)
    start_epoch: int = option(0, help="epoch to start at (for a run continued with -load_model)", minimum=0)
    start_iter: int = option(
        0, help="iteration to start at (for a run continued with -load_model; default start_epoch x batches per epoch)",
        minimum=0,
    )
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="matrix products in fp32, or autocast to bf16 / fp16 (loss scaling); auto: bf16 where the hardware "
        "runs it natively, else fp32",
    )
    no_loss: bool = option(False, help="do not write the metric history and the loss curve")
    # ---- checkpoints and metrics
    save_iters: int = option(5000, help="save a checkpoint iter<N> every this many iterations (0: only epoch ends)", minimum=0)
    keep_iters: int = option(2, help="keep the newest this many iter<N> checkpoints (0: all); epoch ones stay", minimum=0)
    log_iters: int = option(100, help="write a row of training metrics every this many iterations", minimum=1)
    resume: bool = option(False, help="continue exactly from the newest complete checkpoint in <model_dir>/")
    should_test: bool = option(
        False, help="do not train: report the bits per byte of -load_model (or the newest checkpoint) on valid/test"
    )
    # ---- devices and processes
    benchmark: bool = option(False, help="let cuDNN pick the fastest kernels (GPU only)")
    num_gpus: int = option(1, help="processes to start on this machine (one per GPU; Gloo processes on the CPU)", minimum=1)
    distributed: bool = option(False, help="train with DistributedDataParallel, one process per -num_gpus")
    rank: int = option(-1, help="this process's rank when started by hand (torchrun sets RANK instead)", minimum=-1)
    world_size: int = option(0, help="processes in all when started by hand with -rank (torchrun sets WORLD_SIZE)", minimum=0)
    verbose: int = option(1, choices=(0, 1, 2), help="0: quiet; 1: the first process prints; 2: every process prints")


COMMAND_CONFIG = TrainConfig
