"""How the weights are updated: the learning-rate schedules (closed form, so a resumed run
lands on the same rate) and the optimizer chosen by name.

``train`` takes the 2017 flags' :class:`LinearDecay` or :class:`ExponentialDecay`;
``finetune`` takes :class:`WarmupDecay` with ``base_lr`` 1, a factor that each parameter
group's ``lr_scale`` multiplies (its per-layer rate, see :meth:`Trainer.step`).
"""

import dataclasses
import math
from typing import ClassVar

import torch

from ..foundation.choices import SCHEDULES
from ..foundation.errors import UserError

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


@dataclasses.dataclass(frozen=True)
class WarmupDecay:
    """Linear warm-up over the first ``warmup`` fraction of ``total_steps``, then ``decay`` to 0
    (``linear`` or ``cosine``) or ``constant``, per update; times ``base_lr``."""

    name: ClassVar[str] = "WarmupDecay"
    total_steps: int
    warmup: float = 0.0
    decay: str = "constant"
    base_lr: float = 1.0

    def factor(self, step: int) -> float:
        warmup_steps = int(round(self.warmup * self.total_steps))
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if self.decay == "constant":
            return 1.0
        remaining = max(1, self.total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / remaining)
        if self.decay == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def lr(self, iteration: int, epoch: int) -> float:
        return self.base_lr * self.factor(iteration)


Schedule = LinearDecay | ExponentialDecay | WarmupDecay


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
