"""The training loop of ``sentiment-discovery finetune`` and its exact checkpoints.

:func:`train` runs the updates (schedule, gradual unfreezing, clipping, the auxiliary
next-byte loss), evaluates on validation every ``-eval_every`` epochs keeping the best
weights in ``best/`` (early stopping after ``-patience``), and saves ``checkpoint/``
(weights, optimizer, random state, :class:`RunState`), from which ``--resume`` continues
exactly; ``history.csv`` and ``learning_curve.png`` are rewritten at each evaluation.
"""

from __future__ import annotations  # annotations name classes of modules imported on first use

import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import log, storage
from ..errors import UserError

# Lazy imports: numpy, torch and the training modules are imported where they are used, not here: the CLI
# imports this module (through recipes/finetune) for the flags, and `--help` should not wait for them.
if TYPE_CHECKING:
    import numpy as np

    from .. import finetune

CHECKPOINT_DIR = "checkpoint"
MODEL_SUBDIR = "model"
STATE_FORMAT = "sentiment-discovery-finetune-state"
HISTORY_COLUMNS = ("step", "epoch", "split", "loss", "lm_loss", "accuracy", "learning_rate", "bytes", "seconds")
# Flags that may change between a run and its --resume.
RESUMABLE_CHANGES = ("resume", "max_steps", "cuda")
EMPTY_WINDOW = {"loss": 0.0, "lm_loss": 0.0, "correct": 0, "texts": 0, "bytes": 0, "seconds": 0.0}


@dataclasses.dataclass
class Texts:
    """A split as the model reads it: prepared bytes (cut to the longest length fed) and labels."""

    name: str
    data: list[bytes]
    labels: np.ndarray | None
    domains: list[str] | None = None  # validation with -domain_key: accuracy is the mean over these

    @property
    def bytes(self) -> int:
        return sum(len(d) for d in self.data)



@dataclasses.dataclass
class RunState:
    """What a checkpoint holds besides the weights and the optimizer: where the run is and what it saw."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    bytes_seen: int = 0
    elapsed_s: float = 0.0
    best_accuracy: float = -1.0
    best_step: int = -1
    evaluations_without_gain: int = 0
    finished: bool = False
    history: list[dict] = dataclasses.field(default_factory=list)
    # Sums over the updates since the last history row (saved, so a resumed run writes the same rows).
    window: dict = dataclasses.field(default_factory=lambda: dict(EMPTY_WINDOW))



def say(message: str) -> None:
    log.say(message)


# --------------------------------------------------------------------------- training


# --------------------------------------------------------------------------- training


def evaluate(model, texts: Texts, precision: str, device, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the classifier on ``texts``, dropout off.

    With domains, the accuracy is the mean of the domains' accuracies (``transfer.domain_accuracies``).
    """
    accuracy, loss, _ = evaluate_by_domain(model, texts, precision, device, batch_size)
    return accuracy, loss


def evaluate_by_domain(model, texts: Texts, precision: str, device, batch_size: int) -> tuple[float, float, dict]:
    """(accuracy, mean cross-entropy, accuracy of each domain or {}) of the classifier, dropout off."""
    import torch
    from .. import finetune
    from ..precision import products_autocast

    from ..features import length_sorted_batches

    was_training = model.training
    model.eval()
    right = [False] * len(texts.data)
    loss = 0.0
    try:
        with torch.no_grad(), products_autocast(precision, device):
            for indices in length_sorted_batches([len(d) for d in texts.data], batch_size):
                batch = finetune.text_batch([texts.data[i] for i in indices], device)
                logits, _ = model(*batch)
                labels = torch.as_tensor(texts.labels[indices], device=device)
                for i, hit in zip(indices, (logits.argmax(dim=1) == labels).tolist()):
                    right[i] = hit
                loss += float(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
    finally:
        model.train(was_training)
    if texts.domains is None:
        return sum(right) / len(right), loss / len(right), {}
    from ..transfer import domain_accuracies

    by_domain = domain_accuracies(right, texts.domains)
    return sum(by_domain.values()) / len(by_domain), loss / len(right), by_domain


def train(config, model, optimizer, groups, schedule, data, state: RunState, precision, device, run_dir,
          total_steps, steps_per_epoch, unfreeze_steps, eval_steps) -> int | None:
    """Train until the end (returns None) or a stop (returns the exit status, a checkpoint saved)."""
    import torch
    from .. import finetune, training
    from ..precision import products_autocast

    from tqdm.auto import tqdm

    train_texts = data["train"]
    lengths = [len(d) for d in train_texts.data]
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    parameters = [p for g in groups for p in g.parameters]
    bar = tqdm(total=total_steps, initial=state.step, unit="update", desc="finetune", dynamic_ncols=True)
    window = state.window
    model.train()
    with training.StopRequest(say) as stop:
        while state.step < total_steps:
            batches = finetune.epoch_batches(lengths, config.batch_size, config.seed, state.epoch)
            if state.batch_in_epoch >= len(batches):
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                continue
            indices = batches[state.batch_in_epoch]
            began = time.perf_counter()
            finetune.set_trainable(groups, finetune.unfrozen_depth(state.step, unfreeze_steps))
            factor = schedule.factor(state.step)
            for group, param_group in zip(groups, optimizer.param_groups):
                param_group["lr"] = group.lr * factor
            batch_bytes = [train_texts.data[i] for i in indices]
            tokens, reset, is_text = finetune.text_batch(batch_bytes, device)
            labels = torch.as_tensor(train_texts.labels[indices], device=device)
            with products_autocast(precision, device):
                logits, lm_loss = model(tokens, reset, is_text, lm_loss=config.lm_loss_weight > 0)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            total = loss if lm_loss is None else loss + config.lm_loss_weight * lm_loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], config.clip)
            optimizer.step()
            seconds = time.perf_counter() - began
            state.step += 1
            state.batch_in_epoch += 1
            state.bytes_seen += sum(len(b) for b in batch_bytes)
            state.elapsed_s += seconds
            window["loss"] += float(loss.detach()) * len(indices)
            window["lm_loss"] += (0.0 if lm_loss is None else float(lm_loss.detach())) * len(indices)
            window["correct"] += int((logits.argmax(dim=1) == labels).sum())
            window["texts"] += len(indices)
            window["bytes"] += sum(len(b) for b in batch_bytes)
            window["seconds"] += seconds
            bar.update()
            bar.set_postfix(loss=f"{window['loss'] / window['texts']:.3f}",
                            bytes_per_s=f"{window['bytes'] / max(window['seconds'], 1e-9):.0f}")
            last = state.step == total_steps
            stopping = stop.requested or (config.max_steps and state.step >= config.max_steps)
            if state.step % eval_steps == 0 or last:
                record_train_window(state, window, optimizer, lm_loss is not None)
                if evaluate_and_keep_best(config, model, data["valid"], state, precision, device, run_dir):
                    last = True
                save_checkpoint(checkpoint_dir, config, model, optimizer, state)
                plot_learning_curve(state.history, run_dir / "learning_curve.png")
                write_history(state.history, run_dir / "history.csv")
            if last:
                break
            if stopping:  # the open window of train metrics is saved with the state and continued on resume
                save_checkpoint(checkpoint_dir, config, model, optimizer, state)
                bar.close()
                why = "-max_steps reached" if not stop.requested else "stopped"
                say(f"{why} at update {state.step} of {total_steps}; checkpoint saved in {checkpoint_dir}; "
                    "continue with the same command and --resume")
                return stop.exit_status if stop.requested else 0
    bar.close()
    state.finished = True
    save_checkpoint(checkpoint_dir, config, model, optimizer, state)
    return None


def record_train_window(state: RunState, window: dict, optimizer, with_lm_loss: bool) -> None:
    if not window["texts"]:
        return
    state.history.append({
        "step": state.step, "epoch": state.epoch, "split": "train", "loss": window["loss"] / window["texts"],
        "lm_loss": window["lm_loss"] / window["texts"] if with_lm_loss else None,
        "accuracy": window["correct"] / window["texts"], "learning_rate": optimizer.param_groups[1]["lr"],
        "bytes": state.bytes_seen, "seconds": round(state.elapsed_s, 2),
    })
    window.update(EMPTY_WINDOW)


def evaluate_and_keep_best(config, model, valid: Texts, state: RunState, precision, device, run_dir) -> bool:
    """Evaluate on validation, save the weights if best so far; True when early stopping says stop.

    With domains the score is the mean of their accuracies; each domain's gets its own history row
    (split ``valid:<domain>``).
    """
    accuracy, loss, by_domain = evaluate_by_domain(model, valid, precision, device, config.eval_batch_size)
    row = {"step": state.step, "epoch": state.epoch, "split": "valid", "loss": loss, "lm_loss": None,
           "accuracy": accuracy, "learning_rate": None, "bytes": state.bytes_seen, "seconds": round(state.elapsed_s, 2)}
    state.history.append(row)
    state.history += [row | {"split": f"valid:{name}", "loss": None, "accuracy": value} for name, value in by_domain.items()]
    improved = accuracy > state.best_accuracy
    if improved:
        state.best_accuracy, state.best_step, state.evaluations_without_gain = accuracy, state.step, 0
        save_weights(run_dir / "best", model)
    else:
        state.evaluations_without_gain += 1
    rate = state.bytes_seen / max(state.elapsed_s, 1e-9)
    what = "validation accuracy" if not by_domain else "mean validation accuracy over domains"
    shown = "".join(f"; {name} {100 * value:.1f}%" for name, value in by_domain.items())
    say(f"update {state.step}: {what} {100 * accuracy:.2f}% (best {100 * state.best_accuracy:.2f}% "
        f"at update {state.best_step}), loss {loss:.4f}, {rate:.0f} bytes/s{shown}")
    return bool(config.patience) and state.evaluations_without_gain >= config.patience



# --------------------------------------------------------------------------- saving


def save_weights(directory: Path, model: finetune.SequenceClassifier) -> None:
    """The language model (a model directory) and the head, swapped in whole."""
    from ..checkpoint import save_model

    from safetensors.torch import save_file

    with storage.replace_directory(directory) as staging:  # <name>.partial, swapped in whole
        save_model(model.language_model, staging / MODEL_SUBDIR)
        head = {name: tensor.detach().cpu().contiguous() for name, tensor in model.head.state_dict().items()}
        save_file(head, staging / "head.safetensors")


def load_weights(directory: Path, model: finetune.SequenceClassifier, device) -> None:
    import torch
    from ..checkpoint import load_model

    from safetensors.torch import load_file

    saved = load_model(directory / MODEL_SUBDIR, device=device)
    with torch.no_grad():
        model.language_model.load_state_dict(saved.state_dict())
        model.head.load_state_dict({k: v.to(device) for k, v in load_file(directory / "head.safetensors").items()})


def comparable_config(config) -> dict:
    """The run's flags (a ``FinetuneConfig``) save those a ``--resume`` may change."""
    values = dataclasses.asdict(config)
    return {k: v for k, v in values.items() if k not in RESUMABLE_CHANGES}


def save_checkpoint(directory: Path, config, model, optimizer, state: RunState) -> None:
    import torch
    from .. import training

    # Swapped in whole, as train's checkpoints are: a kill between the two renames leaves
    # checkpoint.previous, which tidy_run_directory puts back at the next start.
    with storage.replace_directory(directory) as staging:
        save_weights(staging / "weights", model)
        torch.save({"optimizer": optimizer.state_dict(), "rng": training.capture_rng_state(model.language_model.device)},
                   staging / "state.pt")
        info = {"format": STATE_FORMAT, "format_version": 1, "config": comparable_config(config),
                "state": dataclasses.asdict(state)}
        storage.write_json(staging / "state.json", info)


def tidy_run_directory(run_dir: Path) -> list[str]:
    """Finish or remove what killed saves left in ``run_dir`` (the checkpoint, ``best/``, ``model/``), as
    ``train`` does for its checkpoints (:func:`storage.recover_directory`); one line per thing done.

    Call it only while holding the run directory's lock.
    """
    done = []
    for name in (CHECKPOINT_DIR, "best", MODEL_SUBDIR):
        message = storage.recover_directory(run_dir / name)
        if message:
            done.append(message)
    return done


def restore_checkpoint(directory: Path, config, model, optimizer, state: RunState, device) -> None:
    import torch
    from .. import training

    try:
        info = json.loads((directory / "state.json").read_text())
        tensors = torch.load(directory / "state.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the same user problem
        raise UserError(f"{directory} is truncated or corrupt ({type(error).__name__}: {error})") from None
    if info.get("format") != STATE_FORMAT:
        raise UserError(f"{directory / 'state.json'} is not a {STATE_FORMAT} file")
    saved, now = info["config"], comparable_config(config)
    # A flag newer than the checkpoint (such as -multiclass) reads as its default there.
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k, defaults.get(k)) != now.get(k))
    if changed:
        shown = "; ".join(f"-{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise UserError(f"--resume needs the flags of the run it continues; changed: {shown}")
    load_weights(directory / "weights", model, device)
    optimizer.load_state_dict(tensors["optimizer"])
    training.restore_rng_state(tensors["rng"], device)
    for key, value in info["state"].items():
        setattr(state, key, value)


def write_history(history: list[dict], path: Path) -> None:
    with storage.atomic_file(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def plot_learning_curve(history: list[dict], path: Path) -> Path:
    """Train loss and validation accuracy against updates, replaced atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    loss_axes = figure.add_subplot()
    rows = [r for r in history if r["split"] == "train"]
    loss_axes.plot([r["step"] for r in rows], [r["loss"] for r in rows], "o-", color="tab:blue", label="train loss")
    loss_axes.set_xlabel("update")
    loss_axes.set_ylabel("train loss (nats)", color="tab:blue")
    accuracy_axes = loss_axes.twinx()
    rows = [r for r in history if r["split"] == "valid"]
    accuracy_axes.plot([r["step"] for r in rows], [100 * r["accuracy"] for r in rows], "s-", color="tab:orange",
                       label="validation accuracy")
    accuracy_axes.set_ylabel("validation accuracy (%)", color="tab:orange")
    loss_axes.grid(True, alpha=0.3)
    loss_axes.set_title("fine-tuning: train loss and validation accuracy")
    with storage.atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path

