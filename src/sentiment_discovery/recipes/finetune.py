"""``sentiment-discovery finetune``: the language model and a classifier head trained together.

Reads labelled files like ``transfer`` (same flags, same readers), starts the head from an
L2 logistic regression fitted on the pooled features (``-head_init probe``), then trains
every weight with Adam (separate learning rates for the head and the language model,
per-layer decay, warm-up and decay, gradual unfreezing, an optional auxiliary next-byte
loss), evaluating on validation every ``-eval_every`` epochs and keeping the best weights
(early stopping after ``-patience`` evaluations without a gain).

Everything goes to ``<experiment_dir>/<experiment_name>/finetune/``: the fine-tuned model
directory ``model/`` (config.json + model.safetensors), ``classifier.json`` (read by
``classify``, ``visualize`` and ``SentimentClassifier.load``), ``results.json``,
``history.csv``, ``learning_curve.png``, and ``checkpoint/``, from which ``--resume``
continues exactly after Ctrl-C, ``-max_steps`` or a crash.
"""

from __future__ import annotations  # annotations name classes of modules imported on first use


import csv
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

from typing import TYPE_CHECKING

from .. import log, storage
from ..choices import DECAYS, HEAD_INITS, POOLINGS
from ..errors import UserError
from ..options import check_options, option, option_like
from ..precision import PRECISIONS
from .common import ExperimentConfig, resolve_load_model
from .transfer import Split, TransferConfig, encode_classes, hold_out_validation, read_splits

# Lazy imports: numpy, torch and the training modules are imported where they are used, not here: the CLI
# imports this module for its flags, and `--help` should not wait for them.
if TYPE_CHECKING:
    import numpy as np
    import torch

    from .. import finetune, transfer

RUN_DIR = "finetune"
CHECKPOINT_DIR = "checkpoint"
MODEL_SUBDIR = "model"
STATE_FORMAT = "sentiment-discovery-finetune-state"
HISTORY_COLUMNS = ("step", "epoch", "split", "loss", "lm_loss", "accuracy", "learning_rate", "bytes", "seconds")
# Flags that may change between a run and its --resume.
RESUMABLE_CHANGES = ("resume", "max_steps", "cuda")
EMPTY_WINDOW = {"loss": 0.0, "lm_loss": 0.0, "correct": 0, "texts": 0, "bytes": 0, "seconds": 0.0}


@dataclasses.dataclass(kw_only=True)
class FinetuneConfig(ExperimentConfig):
    load_model: str | None = option(
        None, help="model directory to start from (default: the pre-trained language model shipped with the "
        "package, default_model/frozen/model)",
        aliases=["model"],
    )
    # ---- data: the flags and readers of `transfer` (declared there)
    train: str = option_like(TransferConfig, "train")
    valid: str | None = option_like(TransferConfig, "valid")
    test: str | None = option(None, help="test file, evaluated once with the best weights; labelled unless -no_test_eval")
    text_key: str = option_like(TransferConfig, "text_key")
    label_key: str = option("label", help="column or key holding the label")
    input_format: str | None = option_like(TransferConfig, "input_format")
    delim: str | None = option_like(TransferConfig, "delim")
    split: float = option_like(TransferConfig, "split")
    drop_unlabeled: bool = option_like(TransferConfig, "drop_unlabeled")
    binarize_sent: bool = option_like(TransferConfig, "binarize_sent")
    multiclass: bool = option_like(
        TransferConfig, "multiclass", help="labels are any integers (such as 1-5 stars), each distinct training label "
        "a class; the head has one output per class"
    )
    no_test_eval: bool = option(False, help="the test file has no labels: report no test accuracy")
    max_text_length: int = option(
        1024, help="longest text fed in training, in bytes: longer ones keep their first and last halves (0: whole)",
        minimum=0,  # and 1 to 15 are refused in check_flags: 0 or at least 16 is not one range
    )
    # ---- the classifier
    pooling: str = option(
        "mean", choices=POOLINGS,
        help="what the head reads: the top layer's cell state after the last byte (final), its mean or max over "
        "the text, or all three joined (concat)",
    )
    head_init: str = option(
        "probe", choices=HEAD_INITS,
        help="start the head as an L2 logistic regression fitted on the pooled features (C chosen on validation), "
        "or at random",
    )
    dropout: float = option(0.0, help="dropout on the pooled features the head reads", minimum=0, below=1)
    # ---- optimisation
    epochs: float = option(1.0, help="passes over the training texts (fractions allowed)", above=0)
    batch_size: int = option(32, help="texts per update", minimum=1)
    lr: float = option(1e-4, help="Adam learning rate of the language model's top layer", above=0)
    head_lr: float = option(3e-4, help="Adam learning rate of the head", above=0)
    layer_decay: float = option(
        1.0, help="each layer below the top gets this times the learning rate of the one above (ULMFiT: 1/2.6)", above=0
    )
    warmup: float = option(
        0.0, help="fraction of the updates over which the learning rates rise linearly from 0", minimum=0, below=1
    )
    decay: str = option("constant", choices=DECAYS, help="after the warm-up: decay to 0 linearly, by cosine, or none")
    unfreeze_every: float = option(
        0.0, help="gradual unfreezing: train the head alone, then one more layer (top down) every this many epochs "
        "(0: every weight from the start)",
        minimum=0,
    )
    lm_loss_weight: float = option(
        0.0, help="weight of the auxiliary next-byte loss (nats/byte) added to the classification loss", minimum=0
    )
    clip: float = option(1.0, help="clip the gradient norm of all weights to this (0: off)", minimum=0)
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="precision of the matrix products: auto is bf16 on CPUs and GPUs with native bf16, else fp32; "
        "the classifier records it and classify featurizes the same way",
    )
    # ---- evaluation, stopping, saving
    eval_every: float = option(0.25, help="evaluate on validation every this many epochs (and at the end)", above=0)
    patience: int = option(
        4, help="stop after this many evaluations in a row without a better validation accuracy (0: never stop early)",
        minimum=0,
    )
    eval_batch_size: int = option(64, help="texts per batch when evaluating", minimum=1)
    max_steps: int = option(0, help="stop this run after this many updates in all, saving a checkpoint (0: off)", minimum=0)
    resume: bool = option(False, help="continue exactly from <experiment>/finetune/checkpoint/")


COMMAND_CONFIG = FinetuneConfig


def check_flags(config: FinetuneConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    check_options(config)
    if 0 < config.max_text_length < 16:
        raise UserError(f"-max_text_length {config.max_text_length} is too short to hold a text; give at least 16 bytes")


@dataclasses.dataclass
class Texts:
    """A split as the model reads it: prepared bytes (cut to the longest length fed) and labels."""

    name: str
    data: list[bytes]
    labels: np.ndarray | None

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


def run(config: FinetuneConfig) -> int:
    """The run, holding the lock of its directory: a second run into it is refused before any work."""
    with storage.output_lock(config.experiment_path / RUN_DIR, what="-experiment_name"):
        return _run(config)


def _run(config: FinetuneConfig) -> int:
    import torch
    from .. import finetune, transfer
    from ..checkpoint import load_model
    from ..precision import resolve_precision
    from ..runtime import seed_everything, select_device

    started = time.perf_counter()
    check_flags(config)
    from ..fast_mlstm import reuse_freed_memory

    reuse_freed_memory()
    run_dir = config.experiment_path / RUN_DIR
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    if config.resume and not (checkpoint_dir / "state.json").is_file():
        raise UserError(f"nothing to resume: {checkpoint_dir} holds no checkpoint")
    if not config.resume and (checkpoint_dir / "state.json").is_file():
        raise UserError(f"{run_dir} already holds a fine-tuning run; pass --resume to continue it, or another -experiment_name")
    device = select_device(config.cuda)
    precision = resolve_precision(config.precision, device)
    seed_everything(config.seed)

    start_model = resolve_start_model(config)
    language_model = load_model(start_model, device=device)
    splits = read_splits(config)
    class_labels = encode_classes(splits, config)  # -multiclass: labels become class indices 0..K-1
    if "valid" not in splits:
        splits["train"], splits["valid"] = hold_out_validation(splits["train"], config)
    classes = finetune.check_classes(splits["train"].labels, "the training set")
    data = {name: prepare(language_model, split, config.max_text_length) for name, split in splits.items()}
    model = finetune.SequenceClassifier(language_model, classes, config.pooling, config.dropout).to(device)
    groups = finetune.parameter_groups(model, config.head_lr, config.lr, config.layer_decay)
    optimizer = torch.optim.Adam([{"params": g.parameters, "lr": g.lr} for g in groups])
    steps_per_epoch = math.ceil(len(data["train"].data) / config.batch_size)
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    schedule = finetune.Schedule(total_steps, config.warmup, config.decay)
    unfreeze_steps = int(round(config.unfreeze_every * steps_per_epoch))
    eval_steps = max(1, int(round(config.eval_every * steps_per_epoch)))
    state = RunState()
    probe_report = None
    if config.resume:
        restore_checkpoint(checkpoint_dir, config, model, optimizer, state, device)
        say(f"resumed {checkpoint_dir} at update {state.step} of {total_steps} (epoch {state.epoch})")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        for leftover in (run_dir / MODEL_SUBDIR, run_dir / transfer.CLASSIFIER_FILE, run_dir / "best"):
            remove(leftover)
        if config.head_init == "probe":
            probe_report = init_head_from_probe(model, data, config, precision)
        write_json(run_dir / "probe.json", probe_report or {"head_init": config.head_init})
    if not state.finished:
        status = train(config, model, optimizer, groups, schedule, data, state, precision, device, run_dir,
                       total_steps, steps_per_epoch, unfreeze_steps, eval_steps)
        if status is not None:  # stopped before the end: the checkpoint is saved, no outputs yet
            return status
    finish(config, model, data, splits, state, precision, device, run_dir, start_model, started, total_steps,
           class_labels)
    return 0


def resolve_start_model(config: FinetuneConfig) -> Path:
    """``-load_model``, else the shipped pre-trained model (``frozen/``, beside a fine-tuned default)."""
    if config.load_model is None:
        from .. import defaults

        pretrained = defaults.default_directory() / defaults.FROZEN_SUBDIR / defaults.MODEL_SUBDIR
        if (pretrained / "config.json").is_file():
            return pretrained
        return Path(defaults.model_directory())
    return resolve_load_model(config.load_model, config)


def prepare(language_model, split: Split, max_text_length: int) -> Texts:
    from .. import finetune
    from ..features import encode_texts

    data = [finetune.keep_ends(b, max_text_length) for b in encode_texts(language_model, split.texts)]
    return Texts(split.name, data, split.labels)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_json(path: Path, values: dict) -> None:
    storage.write_json(path, values)


# --------------------------------------------------------------------------- the head's starting point


def pooled_features(model: finetune.SequenceClassifier, texts: Texts, precision: str, batch_size: int) -> np.ndarray:
    return model.language_model.featurize(
        texts.data, batch_size=batch_size, progress=True, precision=precision, pooling=model.pooling
    )


def init_head_from_probe(model, data: dict[str, Texts], config: FinetuneConfig, precision: str) -> dict:
    from .. import finetune

    began = time.perf_counter()
    train_features = pooled_features(model, data["train"], precision, config.eval_batch_size)
    valid_features = pooled_features(model, data["valid"], precision, config.eval_batch_size)
    fit = finetune.fit_probe_head(train_features, data["train"].labels, valid_features, data["valid"].labels,
                                  seed=config.seed)
    model.head.load_probe(fit.coef, fit.intercept, fit.mean, fit.scale)
    accuracy = fit.valid_accuracy[fit.C]
    test_accuracy = None
    test = data.get("test")
    if test is not None and test.labels is not None:
        # Reported beside the fine-tuned result (the frozen-feature baseline of the same run), never used to choose.
        test_features = pooled_features(model, test, precision, config.eval_batch_size)
        test_accuracy = head_probe(model.head).accuracy(test_features, test.labels)
    shown = "" if test_accuracy is None else f", test {100 * test_accuracy:.2f}%"
    say(f"head starts as an L2 logistic regression on the {config.pooling}-pooled features: C={fit.C:g}, "
        f"validation accuracy {100 * accuracy:.2f}%{shown} ({time.perf_counter() - began:.0f} s)")
    return {"head_init": "probe", "C": fit.C, "valid_accuracy": accuracy, "test_accuracy": test_accuracy,
            "valid_accuracy_by_C": [{"C": c, "valid_accuracy": a} for c, a in fit.valid_accuracy.items()],
            "seconds": round(time.perf_counter() - began, 1)}


# --------------------------------------------------------------------------- training


def evaluate(model, texts: Texts, precision: str, device, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the classifier on ``texts``, dropout off."""
    import torch
    from .. import finetune
    from ..precision import products_autocast

    from ..features import length_sorted_batches

    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    try:
        with torch.no_grad(), products_autocast(precision, device):
            for indices in length_sorted_batches([len(d) for d in texts.data], batch_size):
                batch = finetune.text_batch([texts.data[i] for i in indices], device)
                logits, _ = model(*batch)
                labels = torch.as_tensor(texts.labels[indices], device=device)
                correct += int((logits.argmax(dim=1) == labels).sum())
                loss += float(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
    finally:
        model.train(was_training)
    return correct / len(texts.data), loss / len(texts.data)


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
    """Evaluate on validation, save the weights if best so far; True when early stopping says stop."""
    accuracy, loss = evaluate(model, valid, precision, device, config.eval_batch_size)
    state.history.append({"step": state.step, "epoch": state.epoch, "split": "valid", "loss": loss, "lm_loss": None,
                          "accuracy": accuracy, "learning_rate": None, "bytes": state.bytes_seen,
                          "seconds": round(state.elapsed_s, 2)})
    improved = accuracy > state.best_accuracy
    if improved:
        state.best_accuracy, state.best_step, state.evaluations_without_gain = accuracy, state.step, 0
        save_weights(run_dir / "best", model)
    else:
        state.evaluations_without_gain += 1
    rate = state.bytes_seen / max(state.elapsed_s, 1e-9)
    say(f"update {state.step}: validation accuracy {100 * accuracy:.2f}% (best {100 * state.best_accuracy:.2f}% "
        f"at update {state.best_step}), loss {loss:.4f}, {rate:.0f} bytes/s")
    return bool(config.patience) and state.evaluations_without_gain >= config.patience


# --------------------------------------------------------------------------- saving


def save_weights(directory: Path, model: finetune.SequenceClassifier) -> None:
    """The language model (a model directory) and the head, swapped in whole."""
    from ..checkpoint import save_model

    from safetensors.torch import save_file

    staging = directory.with_name(directory.name + ".saving")
    remove(staging)
    save_model(model.language_model, staging / MODEL_SUBDIR)
    head = {name: tensor.detach().cpu().contiguous() for name, tensor in model.head.state_dict().items()}
    save_file(head, staging / "head.safetensors")
    storage.swap_in(staging, directory)


def load_weights(directory: Path, model: finetune.SequenceClassifier, device) -> None:
    import torch
    from ..checkpoint import load_model

    from safetensors.torch import load_file

    saved = load_model(directory / MODEL_SUBDIR, device=device)
    with torch.no_grad():
        model.language_model.load_state_dict(saved.state_dict())
        model.head.load_state_dict({k: v.to(device) for k, v in load_file(directory / "head.safetensors").items()})


def comparable_config(config: FinetuneConfig) -> dict:
    values = dataclasses.asdict(config)
    return {k: v for k, v in values.items() if k not in RESUMABLE_CHANGES}


def save_checkpoint(directory: Path, config, model, optimizer, state: RunState) -> None:
    import torch
    from .. import training

    staging = directory.with_name(directory.name + ".saving")
    remove(staging)
    staging.mkdir(parents=True)
    save_weights(staging / "weights", model)
    torch.save({"optimizer": optimizer.state_dict(), "rng": training.capture_rng_state(model.language_model.device)},
               staging / "state.pt")
    info = {"format": STATE_FORMAT, "format_version": 1, "config": comparable_config(config),
            "state": dataclasses.asdict(state)}
    storage.write_json(staging / "state.json", info)
    storage.swap_in(staging, directory)


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
    defaults = {field.name: field.default for field in dataclasses.fields(FinetuneConfig)}
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


# --------------------------------------------------------------------------- the outputs


def finish(config, model, data, splits, state: RunState, precision, device, run_dir: Path, start_model: Path,
           started: float, total_steps: int, class_labels: list[int] | None = None) -> None:
    """Write the best weights as a model directory with its classifier, the accuracy lines and results.json."""
    import torch
    from .. import transfer
    from ..checkpoint import save_model

    load_weights(run_dir / "best", model, device)
    probe = head_probe(model.head)
    rnn_size = model.language_model.config.rnn_size
    # The unit the head weighs most (a concat feature's index taken back to its unit), for visualize.
    top = int(transfer.rank_units(probe, 1)[0])
    model_dir = save_model(model.language_model, run_dir / MODEL_SUBDIR, metadata={
        "finetuned": {"from": str(start_model), "classes": probe.n_classes, "pooling": config.pooling, "best_step": state.best_step},
        "sentiment_unit": top % rnn_size, "sentiment_unit_sign": transfer.unit_sign(probe, top),
        "sentiment_unit_source": "the fine-tuned head's largest weight",
    })
    identity = transfer.ModelIdentity.of(model.language_model, model_dir, precision=precision, pooling=config.pooling)
    identity = dataclasses.replace(identity, path=MODEL_SUBDIR)  # relative to classifier.json: the folder moves whole
    features, eval_seconds = {}, {}
    for name, split in splits.items():
        began = time.perf_counter()
        # Validation and test texts whole, as classify reads them; train as it was fed (cut to -max_text_length).
        texts = data[name].data if name == "train" else split.texts
        features[name] = model.language_model.featurize(texts, batch_size=config.eval_batch_size, progress=True,
                                                        precision=precision, pooling=config.pooling)
        eval_seconds[name] = round(time.perf_counter() - began, 1)
    labels = {name: split.labels for name, split in splits.items()}
    top_units = transfer.rank_units(probe, transfer.TOP_UNITS_SHOWN).tolist()
    sweep = transfer.sweep_regularization(features["train"], labels["train"], features["valid"], labels["valid"],
                                          units=top_units[:1], seed=config.seed)
    classifier = transfer.SentimentClassifier(
        all_neurons=probe, n_neurons=sweep.probe, top_units=[int(u) for u in top_units],
        top_unit_signs=[transfer.unit_sign(probe, u) for u in top_units], model=identity, classes=class_labels,
    )
    order = ("train", "valid", "test")

    def accuracies(p) -> list[float | None]:
        return [None if name not in features or labels[name] is None else p.accuracy(features[name], labels[name])
                for name in order]

    full, top = accuracies(probe), accuracies(sweep.probe)
    lines = transfer.seed_result_lines("all_neurons", full, probe)
    lines.append(transfer.top_units_line(classifier.top_units))
    lines += transfer.seed_result_lines("n_neurons", top, sweep.probe)
    print("\n".join(lines), flush=True)
    classifier.save(run_dir)
    plot_learning_curve(state.history, run_dir / "learning_curve.png")
    write_history(state.history, run_dir / "history.csv")
    probe_report = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").is_file() else None
    results = {
        "kind": "finetuned",
        "start_model": str(start_model),
        "model": identity.to_dict(),
        "files": {"train": config.train, "valid": config.valid, "test": config.test},
        "texts": {name: len(split.texts) for name, split in splits.items()},
        "finetuned_accuracy": dict(zip(order, full)),
        "top_unit_accuracy": dict(zip(order, top)),
        "top_units": classifier.top_units,
        "best_step": state.best_step,
        "best_valid_accuracy_during_training": state.best_accuracy,
        "steps": state.step,
        "total_steps": total_steps,
        "epochs_run": round(state.step / math.ceil(len(data["train"].data) / config.batch_size), 3),
        "head_init": probe_report,
        "precision": precision,
        "seed_output": lines,
        "timing": {
            "train_seconds": round(state.elapsed_s, 1),
            "bytes_trained": state.bytes_seen,
            "bytes_per_s": round(state.bytes_seen / max(state.elapsed_s, 1e-9), 1),
            "final_evaluation_seconds": eval_seconds,
            "this_invocation_seconds": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(),
        },
        "history": state.history,
        "command_config": dataclasses.asdict(config),
    }
    if class_labels is not None:
        evaluated = "test" if labels.get("test") is not None else "valid"
        results["classes"] = class_labels
        results["per_class"] = transfer.class_report(
            class_labels, probe.predict(features[evaluated]), labels[evaluated], labels["train"], evaluated,
        )
    write_json(run_dir / "results.json", results)
    say(f"fine-tuned model and classifier saved to {run_dir}/ (classify -classifier {run_dir})")


def head_probe(head: finetune.ClassifierHead) -> "transfer.LinearProbe":
    """The binary head as the logistic regression ``classify`` applies: the logit difference of class 1 over 0.

    A head of K > 2 classes: its K logits as they are, their softmax the probabilities.
    """
    from .. import transfer

    weight = head.linear.weight.detach().double().cpu().numpy()
    bias = head.linear.bias.detach().double().cpu().numpy()
    if weight.shape[0] > 2:
        return transfer.LinearProbe(
            coef=weight, intercept=bias, C=0.0, softmax=True,
            mean=head.mean.detach().double().cpu().numpy(), scale=head.scale.detach().double().cpu().numpy(),
        )
    return transfer.LinearProbe(
        coef=weight[1] - weight[0], intercept=float(bias[1] - bias[0]), C=0.0,
        mean=head.mean.detach().double().cpu().numpy(), scale=head.scale.detach().double().cpu().numpy(),
    )
