"""Choosing the device, the thread count and seeding: the small runtime facts every recipe shares."""

import os
import random

import numpy as np
import torch

from .foundation import log
from .foundation.cores import IDLE_WINDOW_S, idle_cores, usable_cores  # noqa: F401 (re-exported)


def select_device(cuda: bool) -> torch.device:
    """``cuda`` when asked for and present; otherwise the CPU, with one warning if it was asked for."""
    if cuda and torch.cuda.is_available():
        return torch.device("cuda")
    if cuda:
        log.warning("-cuda was given but no GPU is available; running on the CPU")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_threads() -> int:
    """The cores idle right now, at least one, at most the usable ones.

    An OpenMP thread whose core another job holds stalls every product it shares, so a
    thread per core is 2-3x slower than one thread once another job takes a core, while
    on an idle machine it is the fastest (measured in docs/performance.md, "Threads").
    """
    idle = idle_cores()
    if idle is None:
        return torch.get_num_threads()
    return max(1, min(usable_cores(), round(idle)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads: ``threads``, else ``OMP_NUM_THREADS`` when set, else :func:`default_threads`."""
    if threads is None and "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    torch.set_num_threads(threads if threads is not None else default_threads())
    return torch.get_num_threads()
