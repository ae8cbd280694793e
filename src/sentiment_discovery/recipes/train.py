"""``sentiment-discovery train``: the byte-level language model trained on a corpus (the seed's
``text_reconstruction.py``).

Raw review files are cleaned into an on-disk byte corpus once (cached under
``<experiment_dir>/corpora/``); batches are parallel byte streams whose recurrent state is
carried from batch to batch. Results go to ``<experiment_dir>/<experiment_name>/``:
checkpoints ``<model_dir>/e<epoch>`` (each epoch end) and ``<model_dir>/iter<N>`` (every
``-save_iters``), metric histories ``history/train.csv`` and ``history/eval.csv``, and the
loss curve ``loss.png``. ``--resume`` continues from the newest checkpoint exactly.

One process, or one per GPU under DistributedDataParallel: ``torchrun --nproc_per_node N
-m sentiment_discovery train ...``, or ``-distributed -num_gpus N`` to start them here.

This module is the command's face: its flags (:class:`TrainConfig`), ``run``, and the
processes it starts, with what each may say (``-verbose``, through :func:`log.quiet` and
:func:`log.every_rank`). The run in each process (its
corpora, where it starts, the loop, checkpoints and evaluations) is
:mod:`sentiment_discovery.recipes.train_loop`.
"""

import dataclasses
import os

from .. import log, memory
from ..choices import PERSIST_STATE_CHOICES, SCHEDULES
from ..errors import UserError
from ..model_config import ARCHITECTURE_SETTINGS, ModelConfig
from ..options import check_options, option, option_like
from ..precision import PRECISIONS, resolve_precision
from .common import SEED_MODEL_NO_OPS, ExperimentConfig

# Lazy imports: torch and the components that use it are imported in the functions that need them, not
# here: the CLI imports this module for its flags, and `--help` should not wait for torch.

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


def check_config(config: TrainConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    from .. import training

    check_options(config)
    if config.rank >= 0 and config.world_size < 1:
        raise UserError("-rank needs -world_size (the number of processes in all)")
    if config.rank >= config.world_size > 0:
        raise UserError(f"-rank {config.rank} is not below -world_size {config.world_size}")
    training.optimizer_class(config.optimizer_type)


def check_memory(config: TrainConfig) -> None:
    """Refuse a run whose weights and one update's states cannot fit in the memory that will hold them.

    The architecture is the flags' (a --resume must match them); with -load_model it is that
    model's, read when the run starts, so nothing is estimated here.
    """
    import torch

    if config.load_model is not None:
        return
    parameters = memory.recurrent_parameters(config.rnn_type, config.embed_size, config.rnn_size, config.layers)
    streams = max(config.batch_size, config.eval_batch_size)
    length = max(config.seq_length, config.eval_seq_length)
    needed = memory.training_bytes(parameters, streams, length, config.rnn_size, config.layers)
    available, where = None, "this machine"
    if config.cuda and torch.cuda.is_available():
        available, where = torch.cuda.mem_get_info()[0], "the GPU"
    memory.check_fits(
        needed,
        f"training {parameters:,} weights on {streams} streams of {length} bytes",
        "lower -batch_size, -seq_length or -rnn_size",
        available=available, where=where,
    )


def processes_to_start(config: TrainConfig) -> int:
    """How many processes ``run`` starts itself: 1 under a launcher or -rank, else -num_gpus."""
    from .. import training

    if training.launched_world_size() > 0 or config.rank >= 0:
        return 1
    return config.num_gpus if (config.distributed or config.num_gpus > 1) else 1


def run(config: TrainConfig) -> int:
    import torch

    from .. import training
    from . import train_loop

    check_config(config)
    check_memory(config)  # before any corpus, lock or experiment folder
    if config.rank >= 0 and training.launched_world_size() == 0:
        os.environ.update(RANK=str(config.rank), WORLD_SIZE=str(config.world_size))
        os.environ.setdefault("LOCAL_RANK", str(config.rank % max(1, config.num_gpus)))
    processes = processes_to_start(config)
    if processes > 1:
        if config.cuda and torch.cuda.is_available() and processes > torch.cuda.device_count():
            raise UserError(f"-num_gpus {processes} but this machine has {torch.cuda.device_count()} GPU(s)")
        # Build the corpora once, here, before the workers start: they then only open them.
        with log.quiet(config.verbose == 0):
            train_loop.prepare_corpora(config, training.DistributedContext())
        # "auto" decided once, here, so that every worker runs the same precision.
        device = torch.device("cuda" if config.cuda and torch.cuda.is_available() else "cpu")
        config = dataclasses.replace(config, precision=resolve_precision(config.precision, device))
        return training.launch_local_processes(processes, _worker, config)
    try:
        return train_process(config)
    except UserError:
        if _quiet_rank(config):
            return 2  # rank 0 reports it; eight copies of one message help nobody
        raise


def _quiet_rank(config: TrainConfig) -> bool:
    from .. import training

    return training.launched_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0 and config.verbose < 2


def _worker(config: TrainConfig) -> int:
    """A process started by ``-distributed -num_gpus N``: reports its own errors (no CLI above it)."""
    try:
        return train_process(config)
    except UserError as error:
        if not _quiet_rank(config):
            log.error(str(error))
        return 2
    except KeyboardInterrupt:
        return 128 + 2


def train_process(config: TrainConfig) -> int:
    """The whole run in this process (one of several under DDP)."""
    from .. import training
    from ..fast_mlstm import reuse_freed_memory
    from ..runtime import configure_threads
    from . import train_loop

    reuse_freed_memory()  # 7-18 % of training speed on CPU (see docs/performance.md)
    if training.launched_world_size() <= 1:  # several processes share the cores (launch_local_processes)
        configure_threads()
    # -verbose 2: each rank's lines show, named by rank; 1: the first rank's; 0: none (errors only).
    speaks = config.verbose >= 2 or (config.verbose == 1 and log.process_rank() == 0)
    with log.every_rank(config.verbose >= 2), log.quiet(not speaks):
        ctx = training.init_distributed(config.cuda)
        try:
            return train_loop.run_training(config, ctx)
        finally:
            training.shutdown_distributed()
