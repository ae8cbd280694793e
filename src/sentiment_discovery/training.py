"""Components of language-model training: the training state, its checkpoints, and the
trainer that runs updates and evaluations.

The ``train`` recipe (``recipes/train.py``) puts these together; nothing here parses flags.
The parts with an idea of their own live beside it and are re-exported here, where a training
run's parts are looked up (``training.<name>``): :mod:`.optimization` (learning-rate schedules,
the optimizer by name), :mod:`.metrics` (bits per byte, the metric history and its plot) and
:mod:`.distributed` (one engine on one process or many, and stopping on a signal).

* :class:`TrainingState` is everything a run needs to continue exactly: the model, the
  optimizer, the learning-rate schedule, the loss scaler, the batcher's data position,
  the recurrent state carried between batches, the RNG states and the metric history.
  It is saved and restored whole (:meth:`TrainingState.save`, :meth:`TrainingState.restore`).
* A checkpoint is a model directory (``config.json`` + ``model.safetensors``, loadable by
  :func:`checkpoint.load_model`) that also holds ``training_state.json`` (plain JSON) and
  ``training_state.pt`` (tensors and plain containers only, read with
  ``torch.load(weights_only=True)``). The directory is written under another name and renamed
  into place, so a checkpoint either exists complete or not at all.
* :class:`Trainer` runs one update (:meth:`Trainer.step`) and evaluations. Under
  DistributedDataParallel every rank runs the same code; what ranks must agree on (the mean
  loss, whether to skip an update, whether to stop) comes from one all-reduce per update.
"""

import dataclasses
import math
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import storage
from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_model, write_model_files
from .data.batching import TransposedBatcher
from .data.corpus import ByteCorpus
from .distributed import (
    DistributedContext,
    StopRequest,
    init_distributed,
    launch_local_processes,
    launched_world_size,
    shutdown_distributed,
)
from .errors import UserError
from .metrics import EVAL_COLUMNS, TRAIN_COLUMNS, MetricsHistory, bits_per_byte
from .model import VOCAB_SIZE, ByteLM, RNNState
from .optimization import (
    ExponentialDecay,
    LinearDecay,
    Schedule,
    make_optimizer,
    make_schedule,
    optimizer_class,
    optimizer_classes,
    schedule_dict,
)
from .precision import autocast_dtype, products_autocast, resolve_precision

# Names of distributed.py, metrics.py and optimization.py that callers (the train recipe,
# the tests) reach as ``training.<name>``; not used here otherwise.
REEXPORTED = (
    StopRequest, init_distributed, launch_local_processes, launched_world_size, shutdown_distributed,
    EVAL_COLUMNS, TRAIN_COLUMNS, ExponentialDecay, LinearDecay, make_optimizer, make_schedule, optimizer_class,
    optimizer_classes,
)

STATE_FORMAT = "sentiment-discovery-training-state"
STATE_FORMAT_VERSION = 1
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.pt"
CHECKPOINT_NAME = re.compile(r"^(e|iter)(\d+)$")

# After this many skipped updates in a row the run stops: something is broken, not unlucky.
MAX_NONFINITE_IN_A_ROW = 100


# --------------------------------------------------------------------------- precision


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


def fp32_state(state: RNNState) -> RNNState:
    return RNNState([h.detach().float() for h in state.hidden], [c.detach().float() for c in state.cell])


# --------------------------------------------------------------------------- RNG


def capture_rng_state(device: torch.device) -> dict:
    """Every RNG a training process draws from, in a form ``torch.load(weights_only=True)`` reads."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng_state(state: dict, device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- checkpoints


def read_state_json(directory: Path) -> dict:
    path = Path(directory) / STATE_JSON
    if not path.is_file():
        raise UserError(f"{directory} is a model directory without {STATE_JSON}: not a training checkpoint")
    info = storage.read_json(path, STATE_FORMAT, STATE_FORMAT_VERSION)
    missing = [key for key in ("iteration", "data_position") if key not in info]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: the checkpoint is damaged")
    return info


def list_checkpoints(model_path: Path) -> list[tuple[int, Path]]:
    """Complete training checkpoints under ``model_path`` as (iteration, directory), oldest first."""
    found = []
    if not model_path.is_dir():
        return found
    for directory in model_path.iterdir():
        if not (directory.is_dir() and CHECKPOINT_NAME.match(directory.name)):
            continue
        if not all((directory / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_TENSORS, STATE_JSON)):
            continue
        try:
            iteration = int(read_state_json(directory)["iteration"])
        except (UserError, KeyError, TypeError, ValueError):
            continue
        # At equal iterations an epoch checkpoint counts as the newer one.
        found.append((iteration, directory.name.startswith("e"), directory))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(iteration, directory) for iteration, _, directory in found]


def model_directories(model_path: Path) -> list[Path]:
    """Every ``e<N>``/``iter<N>`` directory, complete training checkpoint or not."""
    if not model_path.is_dir():
        return []
    return sorted(p for p in model_path.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name))


def tidy_checkpoints(model_path: Path) -> list[str]:
    """Finish or remove what killed saves left in ``model_path``; one line per thing done.

    Call it only while holding the experiment's lock (no save of another run in flight).
    """
    if not model_path.is_dir():
        return []
    done = []
    bases = set()
    for entry in model_path.iterdir():
        for suffix in (storage.PARTIAL_SUFFIX, storage.PREVIOUS_SUFFIX, storage.SAVING_SUFFIX):
            base = entry.name.removesuffix(suffix)
            if entry.name.endswith(suffix) and CHECKPOINT_NAME.match(base):
                bases.add(base)
    for base in sorted(bases):  # the same recovery as finetune's (recipes/finetune_loop.tidy_run_directory)
        message = storage.recover_directory(model_path / base)
        if message:
            done.append(message)
    return done


def prune_iteration_checkpoints(model_path: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` ``iter<N>`` checkpoints (epoch checkpoints stay)."""
    if keep <= 0:
        return []
    iteration_checkpoints = [d for _, d in list_checkpoints(model_path) if d.name.startswith("iter")]
    removed = iteration_checkpoints[:-keep]
    for directory in removed:
        # Renamed first, so a kill during the removal leaves a .partial (tidied by the next run),
        # never a half-deleted checkpoint that no listing sees and no pruning removes.
        doomed = storage.partial_directory(directory)
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(directory, doomed)
        shutil.rmtree(doomed)
    return removed


@dataclasses.dataclass
class TrainingState:
    """Everything that makes the next update what it would have been without a restart.

    ``carried`` holds this rank's rows of the recurrent state (None before the first batch).
    """

    model: ByteLM
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    batcher: TransposedBatcher
    scaler: torch.amp.GradScaler
    history: MetricsHistory = dataclasses.field(default_factory=MetricsHistory)
    carried: RNNState | None = None
    iteration: int = 0
    elapsed_s: float = 0.0
    nonfinite_in_a_row: int = 0

    @property
    def epoch(self) -> int:
        return self.batcher.epoch

    def save(
        self, directory: Path, ctx: DistributedContext, metadata: dict | None = None, run: dict | None = None
    ) -> Path:
        """Write the checkpoint (collective: every rank calls it, rank 0 writes)."""
        carried = None
        if self.carried is not None:
            carried = {
                "hidden": [ctx.gather_rows(h).cpu() for h in self.carried.hidden],
                "cell": [ctx.gather_rows(c).cpu() for c in self.carried.cell],
            }
        rng = ctx.gather_objects(capture_rng_state(ctx.device))
        directory = Path(directory)
        if ctx.is_main:
            with storage.replace_directory(directory) as staging:
                write_model_files(self.model, staging, metadata=metadata)
                tensors = {
                    "optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                    "carried_state": carried,
                    "rng": rng,
                }
                torch.save(tensors, staging / STATE_TENSORS)
                info = {
                    "format": STATE_FORMAT,
                    "format_version": STATE_FORMAT_VERSION,
                    "iteration": self.iteration,
                    "epoch": self.epoch,
                    "world_size": ctx.world_size,
                    "data_position": self.batcher.state_dict(),
                    "schedule": schedule_dict(self.schedule),
                    "elapsed_s": self.elapsed_s,
                    "nonfinite_in_a_row": self.nonfinite_in_a_row,
                    "history": self.history.to_dict(),
                    "run": run or {},
                }
                (staging / STATE_JSON).write_text(storage.json_text(info, sort_keys=True))
        ctx.barrier()
        return directory

    def restore(self, directory: Path, ctx: DistributedContext, say: Callable[[str], None] = lambda m: None) -> dict:
        """Load a checkpoint written by :meth:`save` into this state; returns its JSON record."""
        directory = Path(directory)
        info = read_state_json(directory)
        tensors_path = directory / STATE_TENSORS
        try:
            tensors = torch.load(tensors_path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
            raise UserError(f"{tensors_path} is truncated or corrupt ({type(error).__name__}: {error})") from None
        saved = load_model(directory)
        if dataclasses.asdict(saved.config) != dataclasses.asdict(self.model.config):
            raise UserError(f"{directory / CONFIG_FILE} describes another architecture than the model being trained")
        with torch.no_grad():
            self.model.load_state_dict(saved.state_dict())
        self.model.metadata = dict(saved.metadata)
        try:
            self.optimizer.load_state_dict(tensors["optimizer"])
        except (KeyError, ValueError) as error:
            raise UserError(
                f"{tensors_path}: the optimizer state does not fit --optimizer_type's optimizer ({error})"
            ) from None
        if self.scaler.is_enabled() and tensors.get("scaler"):
            self.scaler.load_state_dict(tensors["scaler"])
        self.batcher.load_state_dict(info["data_position"])
        carried = tensors.get("carried_state")
        if carried is None:
            self.carried = None
        else:
            rows = slice(ctx.rank * self.batcher.batch_size, (ctx.rank + 1) * self.batcher.batch_size)
            self.carried = RNNState(
                [h[rows].to(ctx.device) for h in carried["hidden"]], [c[rows].to(ctx.device) for c in carried["cell"]]
            )
        rng = tensors.get("rng") or []
        if len(rng) == ctx.world_size:
            restore_rng_state(rng[ctx.rank], ctx.device)
        else:
            say(
                f"notice: {tensors_path} holds RNG states of {len(rng)} processes, not {ctx.world_size}; "
                "dropout masks will differ from an uninterrupted run"
            )
        self.history.load_dict(info.get("history", {}))
        self.iteration = int(info["iteration"])
        self.elapsed_s = float(info.get("elapsed_s", 0.0))
        self.nonfinite_in_a_row = int(info.get("nonfinite_in_a_row", 0))
        return info


# --------------------------------------------------------------------------- updates


@dataclasses.dataclass(frozen=True)
class StepResult:
    loss: float  # mean cross-entropy over the global batch, in nats
    grad_norm: float  # before clipping
    learning_rate: float
    skipped: bool  # non-finite loss or gradient: the weights were not changed
    stop: bool  # some rank was asked to stop


@dataclasses.dataclass(frozen=True)
class EvalResult:
    loss: float  # nats per byte
    bytes: int

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.loss)


class Trainer:
    """Runs updates and evaluations on a :class:`TrainingState`, on one process or under DDP."""

    def __init__(
        self,
        state: TrainingState,
        ctx: DistributedContext,
        *,
        precision: Precision,
        clip: float = 1.0,
        max_nonfinite_in_a_row: int = MAX_NONFINITE_IN_A_ROW,
    ):
        self.state = state
        self.ctx = ctx
        self.precision = precision
        self.clip = clip
        self.max_nonfinite_in_a_row = max_nonfinite_in_a_row
        self.model = state.model
        self.network: nn.Module = state.model
        if ctx.distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(state.model, device_ids=device_ids)
        self.parameters = [p for p in state.model.parameters() if p.requires_grad]

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, reset: torch.Tensor, stop: bool = False) -> StepResult:
        """One update on one batch ([B, T] each, this rank's rows)."""
        state, device = self.state, self.ctx.device
        learning_rate = state.schedule.lr(state.iteration, state.epoch)
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate
        inputs, targets, reset = (t.to(device, non_blocking=True) for t in (inputs, targets, reset))
        if state.carried is None:
            state.carried = self.model.init_state(inputs.shape[0], device)
        self.model.train()
        state.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            logits, final_state = self.network(inputs, state.carried, reset)
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), targets.reshape(-1))
        state.carried = fp32_state(final_state)
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
        grad_norm = nn.utils.clip_grad_norm_(self.parameters, self.clip if self.clip > 0 else math.inf)
        # The numbers every rank must agree on, in one collective.
        shared = self.ctx.all_reduce_sum(torch.stack([loss.detach().float(), torch.tensor(float(stop), device=device)]))
        mean_loss = shared[0].item() / self.ctx.world_size
        stop = shared[1].item() > 0
        grad_norm = grad_norm.item()
        skipped = not (math.isfinite(mean_loss) and math.isfinite(grad_norm))
        if skipped:
            state.optimizer.zero_grad(set_to_none=True)
            state.nonfinite_in_a_row += 1
            if not all(torch.isfinite(t).all() for t in state.carried.hidden + state.carried.cell):
                state.carried = self.model.init_state(inputs.shape[0], device)
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
        return StepResult(mean_loss, grad_norm, learning_rate, skipped, stop)

    @torch.no_grad()
    def evaluate(self, corpus: ByteCorpus, batch_size: int, seq_length: int, persist_state: int) -> EvalResult:
        """Mean loss over one pass of ``corpus`` (every rank reads its streams; sums are reduced)."""
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
            recurrent = fp32_state(recurrent)
            total += nn.functional.cross_entropy(
                logits.float().reshape(-1, VOCAB_SIZE), targets.reshape(-1), reduction="sum"
            ).double()
        count = torch.tensor(float(batcher.batches_per_epoch * batch_size * seq_length), dtype=torch.float64)
        count = count.to(device)
        summed = self.ctx.all_reduce_sum(torch.stack([total, count]))
        self.model.train(was_training)
        return EvalResult(loss=summed[0].item() / summed[1].item(), bytes=int(summed[1].item()))
