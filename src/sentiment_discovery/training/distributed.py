"""One training engine on one process or many: the process's place in the group
(:class:`DistributedContext` and its collectives), joining and leaving the group (torchrun's
variables, or :func:`launch_local_processes` for ``-distributed -num_gpus N``), and turning
SIGINT/SIGTERM into an orderly stop (:class:`StopRequest`)."""

import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..foundation import log
from ..foundation.errors import UserError


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Which process this is; the collectives are no-ops in a single process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` stacked along dim 0 in rank order."""
        if not self.distributed:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def gather_objects(self, value: Any) -> list:
        if not self.distributed:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def launched_world_size() -> int:
    """The world size a launcher (``torchrun``, or :func:`launch_local_processes`) set, else 0."""
    try:
        return int(os.environ.get("WORLD_SIZE", "0"))
    except ValueError:
        raise UserError(f"the WORLD_SIZE environment variable is {os.environ['WORLD_SIZE']!r}, not a number") from None


def init_distributed(cuda: bool) -> DistributedContext:
    """Join the process group described by ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun's variables).

    One process per GPU with NCCL when ``cuda`` and GPUs are there; Gloo on the CPU otherwise.
    ``-cuda`` without a GPU is one warning and the CPU.
    """
    world_size = max(1, launched_world_size())
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if cuda and not torch.cuda.is_available():
        log.warning("-cuda was given but no GPU is available; running on the CPU")
        cuda = False
    if cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local_process(
    index: int, world_size: int, port: int, status, target: Callable, args: tuple, cli_output: bool = False
) -> None:
    # The same variables torchrun sets, so that both launches take one code path.
    os.environ.update(
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if cli_output:  # a spawned process starts with no handler: the CLI's one, as in its parent
        log.install_cli_output()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    result = int(target(*args) or 0)
    if result:
        with status.get_lock():
            status.value = status.value or result
    # A stop on a signal is an orderly end (the checkpoint is written); exiting 0 keeps the
    # launcher from killing processes that are still closing down.
    if 0 < result < 128:
        sys.exit(result)


def launch_local_processes(world_size: int, target: Callable, *args) -> int:
    """Run ``target(*args)`` in ``world_size`` new processes on this machine (the seed's
    ``-distributed -num_gpus N``); returns the first non-zero status they returned, or 0.

    SIGINT and SIGTERM sent to this process are passed on to the workers, which save a
    checkpoint and stop (see :class:`StopRequest`).
    """
    status = mp.get_context("spawn").Value("i", 0)
    context = mp.start_processes(
        _local_process,
        args=(world_size, free_port(), status, target, args, log.cli_installed()),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )

    def forward(signum, frame):
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not context.join():
            pass
    except mp.ProcessExitedException as error:
        return status.value or (int(error.exit_code) if error.exit_code and error.exit_code > 0 else 1)
    except mp.ProcessRaisedException as error:
        log.error(f"a training process failed:\n{error}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status.value


class StopRequest:
    """Turns SIGINT (Ctrl-C) and SIGTERM into a request to stop after the current update.

    The training loop then saves a checkpoint and exits with 128 + the signal number. A
    second signal is expected (a terminal's Ctrl-C reaches every process, and launchers
    pass signals on), so only the third stops at once, without a checkpoint.
    """

    def __init__(self):
        self.signal: int | None = None
        self.count = 0
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signal or 0)

    def request(self, signum: int) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum
            name = signal.Signals(signum).name
            log.info(f"{name}: stopping after this update and saving a checkpoint (a third signal stops at once)")

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, lambda signum, frame: self.request(signum))
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
