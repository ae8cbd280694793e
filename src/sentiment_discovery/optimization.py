"""How the weights are updated: the learning-rate schedules of the 2017 flags (closed form,
so a resumed run lands on the same rate) and the optimizer chosen by name."""

import dataclasses
from typing import ClassVar

import torch

from .choices import SCHEDULES
from .errors import UserError


# --------------------------------------------------------------------------- schedules


@dataclasses.dataclass(frozen=True)
class LinearDecay:
    """The seed's ``LinearLR``: ``base_lr`` decayed linearly to 0 over the run, per iteration.

    Closed form (no state stepped along), so a resumed run or ``-start_iter`` lands on
    exactly the value an uninterrupted run has.
    """

    name: ClassVar[str] = "LinearLR"
    base_lr: float
    total_iters: int

    def lr(self, iteration: int, epoch: int) -> float:
        return self.base_lr * max(0.0, 1.0 - iteration / max(1, self.total_iters))


@dataclasses.dataclass(frozen=True)
class ExponentialDecay:
    """The seed's ``ExponentialLR``: ``base_lr * factor ** epoch`` (decays once per epoch)."""

    name: ClassVar[str] = "ExponentialLR"
    base_lr: float
    factor: float

    def lr(self, iteration: int, epoch: int) -> float:
        return self.base_lr * self.factor**epoch


Schedule = LinearDecay | ExponentialDecay


def make_schedule(name: str, base_lr: float, *, total_iters: int, factor: float) -> Schedule:
    if name == LinearDecay.name:
        return LinearDecay(base_lr, total_iters)
    if name == ExponentialDecay.name:
        if not 0.0 < factor <= 1.0:
            raise UserError(f"-lr_factor must be in (0, 1] for ExponentialLR, not {factor}")
        return ExponentialDecay(base_lr, factor)
    raise UserError(f"-lr_scheduler must be one of {', '.join(SCHEDULES)}, not {name!r}")


def schedule_dict(schedule: Schedule) -> dict:
    return {"name": schedule.name, **dataclasses.asdict(schedule)}


# --------------------------------------------------------------------------- optimizer

# Optimizers whose step needs a closure or sparse gradients cannot train this model.
_UNSUITABLE_OPTIMIZERS = {"LBFGS", "SparseAdam"}


def optimizer_classes() -> dict[str, type]:
    classes = {}
    for name in dir(torch.optim):
        candidate = getattr(torch.optim, name)
        if (
            isinstance(candidate, type)
            and issubclass(candidate, torch.optim.Optimizer)
            and candidate is not torch.optim.Optimizer
            and name not in _UNSUITABLE_OPTIMIZERS
        ):
            classes[name] = candidate
    return classes


def optimizer_class(name: str) -> type:
    """``torch.optim.<name>``, the name matched without regard to case (the 2017 docs say RMSProp)."""
    classes = optimizer_classes()
    found = {key.lower(): value for key, value in classes.items()}.get(name.lower())
    if found is None:
        raise UserError(f"--optimizer_type {name!r} is not usable here; choose one of {', '.join(sorted(classes))}")
    return found


def make_optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    try:
        return optimizer_class(name)(parameters, lr=lr)
    except (TypeError, ValueError) as error:
        raise UserError(f"--optimizer_type {name}: {error}") from None
