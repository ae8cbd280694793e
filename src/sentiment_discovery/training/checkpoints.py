"""The training state and its exact checkpoints, for ``train`` and ``finetune`` alike.

:class:`TrainingState` is everything a run needs to continue exactly: the model, the
optimizer, the learning-rate schedule, the loss scaler, the data position (``batcher``:
anything with ``epoch``, ``state_dict`` and ``load_state_dict``), the recurrent state carried
between batches, the RNG states of every rank, the metric history and the open metric
window, and what the recipe adds (``progress``, a dataclass). It is saved and restored whole.

A checkpoint is a directory holding the model's files (:class:`LanguageModelFiles`: the
checkpoint is itself a model directory, loadable by :func:`checkpoint.load_model`; or what
the recipe's ``weights`` writes), ``training_state.json`` (plain JSON, with the flags of the
run, which :meth:`TrainingState.restore` can hold a ``--resume`` to) and
``training_state.pt`` (tensors and plain containers only, read with
``torch.load(weights_only=True)``). It is written through :func:`storage.replace_directory`
and whatever a kill left is put right by one path, :func:`recover` (over
:func:`storage.recover_directory`).
"""

import dataclasses
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_FILE,
    STATE_FORMAT,
    STATE_FORMAT_VERSION,
    STATE_JSON,
    STATE_TENSORS,
    list_checkpoints,
    load_model,
    read_state_json,
    write_model_files,
)
from ..foundation import log, storage
from ..foundation.errors import UserError
from ..model import RNNState
from .distributed import DistributedContext
from .metrics import MetricsHistory, MetricWindow
from .schedules import Schedule, schedule_dict

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


# --------------------------------------------------------------------------- the model's files


class LanguageModelFiles:
    """``train``'s checkpoint is a model directory: ``config.json`` + ``model.safetensors`` at its root."""

    def save(self, model: nn.Module, staging: Path, metadata: dict | None) -> None:
        write_model_files(model, staging, metadata=metadata)

    def load(self, model: nn.Module, directory: Path) -> None:
        saved = load_model(directory)
        if dataclasses.asdict(saved.config) != dataclasses.asdict(model.config):
            raise UserError(f"{directory / CONFIG_FILE} describes another architecture than the model being trained")
        with torch.no_grad():
            model.load_state_dict(saved.state_dict())
        model.metadata = dict(saved.metadata)


def check_resumable_flags(saved: dict, config, resumable: tuple[str, ...]) -> None:
    """Refuse a ``--resume`` whose flags (a config dataclass) differ from the run's save ``resumable``.

    A flag newer than the checkpoint reads as its default there.
    """
    now = {k: v for k, v in dataclasses.asdict(config).items() if k not in resumable}
    saved = {k: v for k, v in saved.items() if k not in resumable}
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k, defaults.get(k)) != now.get(k))
    if changed:
        shown = "; ".join(f"-{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise UserError(f"--resume needs the flags of the run it continues; changed: {shown}")


# --------------------------------------------------------------------------- the state


@dataclasses.dataclass
class TrainingState:
    """Everything that makes the next update what it would have been without a restart.

    ``carried`` holds this rank's rows of the recurrent state (None before the first batch,
    and always for a model that carries none). ``progress`` is the recipe's own dataclass
    of plain values (finetune: the best accuracy so far, ...), saved and restored with the rest.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    batcher: object
    scaler: torch.amp.GradScaler
    history: MetricsHistory = dataclasses.field(default_factory=MetricsHistory)
    carried: RNNState | None = None
    iteration: int = 0
    elapsed_s: float = 0.0
    nonfinite_in_a_row: int = 0
    window: MetricWindow = dataclasses.field(default_factory=MetricWindow)
    progress: object | None = None
    weights: object = dataclasses.field(default_factory=LanguageModelFiles)

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
                self.weights.save(self.model, staging, metadata)
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
                    "window": self.window.to_dict(),
                    "progress": dataclasses.asdict(self.progress) if self.progress is not None else {},
                    "run": run or {},
                }
                (staging / STATE_JSON).write_text(storage.json_text(info, sort_keys=True))
        ctx.barrier()
        return directory

    def restore(
        self, directory: Path, ctx: DistributedContext, config=None, resumable: tuple[str, ...] = ()
    ) -> dict:
        """Load a checkpoint written by :meth:`save` into this state; returns its JSON record.

        With ``config`` (the run's flags), a checkpoint of other flags than those, save
        ``resumable``, is refused (:func:`check_resumable_flags`).
        """
        directory = Path(directory)
        info = read_state_json(directory)
        if config is not None:
            check_resumable_flags(info.get("run", {}).get("flags", {}), config, resumable)
        tensors_path = directory / STATE_TENSORS
        try:
            tensors = torch.load(tensors_path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
            raise UserError(f"{tensors_path} is truncated or corrupt ({type(error).__name__}: {error})") from None
        self.weights.load(self.model, directory)
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
            log.notice(
                f"{tensors_path} holds RNG states of {len(rng)} processes, not {ctx.world_size}; "
                "dropout masks will differ from an uninterrupted run"
            )
        self.history.load_dict(info.get("history", {}))
        self.window = MetricWindow(info.get("window", {}))
        if self.progress is not None:
            for key, value in info.get("progress", {}).items():
                setattr(self.progress, key, value)
        self.iteration = int(info["iteration"])
        self.elapsed_s = float(info.get("elapsed_s", 0.0))
        self.nonfinite_in_a_row = int(info.get("nonfinite_in_a_row", 0))
        return info


# --------------------------------------------------------------------------- crash recovery and pruning


def recover(directories) -> list[str]:
    """Finish or remove what killed saves left beside each of ``directories``; one line per thing done.

    Call it only while holding the output's lock (no save of another run in flight).
    """
    done = []
    for directory in directories:
        message = storage.recover_directory(directory)
        if message:
            done.append(message)
    return done


def tidy_checkpoints(model_path: Path) -> list[str]:
    """:func:`recover` for every ``e<N>``/``iter<N>`` checkpoint a killed save left in ``model_path``."""
    if not model_path.is_dir():
        return []
    bases = set()
    for entry in model_path.iterdir():
        for suffix in (storage.PARTIAL_SUFFIX, storage.PREVIOUS_SUFFIX, storage.SAVING_SUFFIX):
            base = entry.name.removesuffix(suffix)
            if entry.name.endswith(suffix) and CHECKPOINT_NAME.match(base):
                bases.add(base)
    return recover(model_path / base for base in sorted(bases))


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
