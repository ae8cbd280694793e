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

import torch

from .. import training
from ..configs.train import MODEL_FLAGS, TrainConfig
from ..fast_mlstm import reuse_freed_memory
from ..foundation import log, memory
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..precision import resolve_precision
from ..runtime import configure_threads
from . import train_loop


def check_config(config: TrainConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
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
    if training.launched_world_size() > 0 or config.rank >= 0:
        return 1
    return config.num_gpus if (config.distributed or config.num_gpus > 1) else 1


def run(config: TrainConfig) -> int:
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
