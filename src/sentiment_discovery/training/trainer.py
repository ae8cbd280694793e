"""The update driver: :class:`Trainer` runs one update of a :class:`TrainingState` on a batch,
with the loss the recipe gives it, and evaluates a language model on a corpus.

A loss is a callable ``loss(trainer, *batch) -> (objective, values)``: it runs the network
(``trainer.network``, under ``trainer.precision.autocast()``) on its batch, returns the
scalar to minimise and the plain numbers the recipe records (``StepResult.values``), and
may keep what it carries in ``trainer.state`` (:class:`NextByteLoss` carries the recurrent
state). ``train`` uses :class:`NextByteLoss` over parallel byte streams; ``finetune`` its
classification loss plus the auxiliary next-byte loss over labelled batches.

Under DistributedDataParallel every rank runs the same code; what ranks must agree on (the
mean objective, whether to skip an update, whether to stop) comes from one all-reduce per
update.
"""

import dataclasses
import math

import torch
from torch import nn

from ..data.batching import TransposedBatcher
from ..data.corpus import ByteCorpus
from ..foundation.errors import UserError
from ..model import VOCAB_SIZE
from ..precision import autocast_dtype, products_autocast, resolve_precision
from .checkpoints import TrainingState
from .distributed import DistributedContext
from .metrics import bits_per_byte

# After this many skipped updates in a row the run stops: something is broken, not unlucky.
MAX_NONFINITE_IN_A_ROW = 100


@dataclasses.dataclass(frozen=True)
class Precision:
    """``fp32``, or autocast to ``bf16``/``fp16`` (fp16 with loss scaling).

    Only the matrix products run in the low precision; the carried recurrent state, the
    loss and the weights stay fp32 (the carried state is cast back after every batch).
    ``name`` is resolved on construction (``auto`` becomes what this device runs best,
    see :mod:`sentiment_discovery.precision`).
    """

    name: str = "fp32"
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", resolve_precision(self.name, torch.device(self.device_type)))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return autocast_dtype(self.name)

    def autocast(self):
        return products_autocast(self.name, torch.device(self.device_type))

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


@dataclasses.dataclass(frozen=True)
class StepResult:
    loss: float  # the objective, mean over the ranks (train: cross-entropy in nats per byte)
    grad_norm: float  # before clipping
    learning_rate: float  # the schedule's rate (a group's is this times its lr_scale)
    skipped: bool  # non-finite loss or gradient: the weights were not changed
    stop: bool  # some rank was asked to stop
    values: dict = dataclasses.field(default_factory=dict)  # what the loss reported, this rank's


@dataclasses.dataclass(frozen=True)
class EvalResult:
    loss: float  # nats per byte
    bytes: int

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.loss)


class NextByteLoss:
    """``train``'s loss: next-byte cross-entropy over a batch of parallel streams ([B, T] inputs,
    targets and resets, this rank's rows), the recurrent state carried from batch to batch."""

    def __call__(self, trainer: "Trainer", inputs, targets, reset) -> tuple[torch.Tensor, dict]:
        state, device = trainer.state, trainer.ctx.device
        inputs, targets, reset = (t.to(device, non_blocking=True) for t in (inputs, targets, reset))
        if state.carried is None:
            state.carried = trainer.model.init_state(inputs.shape[0], device)
        with trainer.precision.autocast():
            logits, final_state = trainer.network(inputs, state.carried, reset)
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), targets.reshape(-1))
        state.carried = final_state.detach().float()
        return loss, {}

    def skipped(self, trainer: "Trainer") -> None:
        """A poisoned carried state is dropped after a skipped update."""
        carried = trainer.state.carried
        if not all(torch.isfinite(t).all() for t in carried.hidden + carried.cell):
            trainer.state.carried = trainer.model.init_state(carried.batch_size, trainer.ctx.device)


class Trainer:
    """Runs updates and evaluations on a :class:`TrainingState`, on one process or under DDP."""

    def __init__(
        self,
        state: TrainingState,
        ctx: DistributedContext,
        *,
        precision: Precision,
        loss=None,
        clip: float = 1.0,
        max_nonfinite_in_a_row: int = MAX_NONFINITE_IN_A_ROW,
    ):
        self.state = state
        self.ctx = ctx
        self.precision = precision
        self.loss = loss if loss is not None else NextByteLoss()
        self.clip = clip
        self.max_nonfinite_in_a_row = max_nonfinite_in_a_row
        self.model = state.model
        self.network: nn.Module = state.model
        if ctx.distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(state.model, device_ids=device_ids)

    def step(self, *batch, stop: bool = False) -> StepResult:
        """One update on one batch (what the loss takes).

        Each parameter group's learning rate is the schedule's times the group's ``lr_scale``
        (1 when it has none); the gradient norm of the weights that have one is clipped to
        ``clip`` (0: not clipped).
        """
        state, device = self.state, self.ctx.device
        learning_rate = state.schedule.lr(state.iteration, state.epoch)
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate * group.get("lr_scale", 1.0)
        self.model.train()
        state.optimizer.zero_grad(set_to_none=True)
        objective, values = self.loss(self, *batch)
        state.scaler.scale(objective).backward()
        state.scaler.unscale_(state.optimizer)
        parameters = [p for group in state.optimizer.param_groups for p in group["params"] if p.grad is not None]
        grad_norm = nn.utils.clip_grad_norm_(parameters, self.clip if self.clip > 0 else math.inf)
        # The numbers every rank must agree on, in one collective.
        shared = self.ctx.all_reduce_sum(
            torch.stack([objective.detach().float(), torch.tensor(float(stop), device=device)])
        )
        mean_loss = shared[0].item() / self.ctx.world_size
        stop = shared[1].item() > 0
        grad_norm = float(grad_norm)
        skipped = not (math.isfinite(mean_loss) and math.isfinite(grad_norm))
        if skipped:
            state.optimizer.zero_grad(set_to_none=True)
            state.nonfinite_in_a_row += 1
            if hasattr(self.loss, "skipped"):
                self.loss.skipped(self)
        else:
            state.scaler.step(state.optimizer)
            state.nonfinite_in_a_row = 0
        state.scaler.update()
        state.iteration += 1
        if state.nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
            raise UserError(
                f"stopped at iteration {state.iteration}: {state.nonfinite_in_a_row} updates in a row had a "
                "non-finite loss or gradient (they were skipped, the weights are unchanged); lower -lr, keep "
                "-clip on, or use -precision fp32, then continue from the last checkpoint with --resume"
            )
        return StepResult(mean_loss, grad_norm, learning_rate, skipped, stop, values)

    @torch.no_grad()
    def evaluate(self, corpus: ByteCorpus, batch_size: int, seq_length: int, persist_state: int) -> EvalResult:
        """Mean next-byte loss over one pass of ``corpus`` (every rank reads its streams; sums are reduced)."""
        batcher = TransposedBatcher(
            corpus,
            batch_size,
            seq_length,
            persist_state=persist_state,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        device = self.ctx.device
        was_training = self.model.training
        self.model.eval()
        recurrent = self.model.init_state(batch_size, device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for batch in batcher:
            inputs, targets, reset = (t.to(device, non_blocking=True) for t in batch)
            with self.precision.autocast():
                logits, recurrent = self.model(inputs, recurrent, reset)
            recurrent = recurrent.detach().float()
            total += nn.functional.cross_entropy(
                logits.float().reshape(-1, VOCAB_SIZE), targets.reshape(-1), reduction="sum"
            ).double()
        count = torch.tensor(float(batcher.batches_per_epoch * batch_size * seq_length), dtype=torch.float64)
        count = count.to(device)
        summed = self.ctx.all_reduce_sum(torch.stack([total, count]))
        self.model.train(was_training)
        return EvalResult(loss=summed[0].item() / summed[1].item(), bytes=int(summed[1].item()))
