"""Choosing the device and seeding: the small runtime facts every recipe shares."""

import random
import sys

import numpy as np
import torch


def select_device(cuda: bool) -> torch.device:
    """``cuda`` when asked for and present; otherwise the CPU, with one warning if it was asked for."""
    if cuda and torch.cuda.is_available():
        return torch.device("cuda")
    if cuda:
        print("warning: -cuda was given but no GPU is available; running on the CPU", file=sys.stderr)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
