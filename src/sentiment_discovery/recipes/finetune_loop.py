"""One fine-tuning run in this process, for ``sentiment-discovery finetune`` (``recipes/finetune.py``
holds its flags and the run directory's lock): the start model and the labelled texts, the
head's starting point, the training, and the outputs (``finetune_outputs``).

The training is the engine's (:mod:`sentiment_discovery.training`), as ``train``'s is: a
:class:`~sentiment_discovery.training.Trainer` with :class:`ClassifierLoss` (the
classification loss plus the auxiliary next-byte loss) over labelled, length-sorted batches
(:class:`~sentiment_discovery.finetune.EpochBatches`), the per-group learning rates of a
:class:`~sentiment_discovery.training.WarmupDecay` schedule, gradual unfreezing before each
update, the engine's metric window and history (``history.csv``, ``learning_curve.png``),
and its exact checkpoint in ``checkpoint/`` (the weights kept as ``best/`` keeps them, see
:class:`ClassifierFiles`), from which ``--resume`` continues exactly. Every ``-eval_every``
epochs it evaluates on validation, keeping the best weights in ``best/`` (early stopping after
``-patience``).

``config`` is always a :class:`~sentiment_discovery.recipes.finetune.FinetuneConfig`.
"""

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .. import defaults, finetune, training
from ..checkpoint import STATE_JSON, load_model, save_model
from ..fast_mlstm import reuse_freed_memory
from ..features import encode_texts, length_sorted_batches
from ..foundation import log, memory, storage
from ..foundation.errors import UserError
from ..precision import products_autocast, resolve_precision
from ..runtime import seed_everything, select_device
from ..transfer import domain_accuracies
from .common import resolve_load_model
from .finetune_outputs import MODEL_SUBDIR, finish, head_probe
from .splits import LabelledFiles, Split, encode_classes, hold_out_validation, read_splits

CHECKPOINT_DIR = "checkpoint"
# What a finished run leaves for its users (classify -classifier, visualize): never replaced by a fresh run.
OUTPUTS = (MODEL_SUBDIR, "classifier.json", "results.json")
HISTORY = training.Table("history.csv", ("step", "epoch", "split", "loss", "lm_loss", "accuracy", "learning_rate",
                                         "bytes", "seconds"))
LEARNING_CURVE = "learning_curve.png"
# Flags that may change between a run and its --resume.
RESUMABLE_CHANGES = ("resume", "max_steps", "cuda")
# The checkpoint file of versions before the shared training engine.
EARLIER_STATE_JSON = "state.json"


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
class Progress:
    """What a fine-tuning checkpoint holds beside the engine's state (``TrainingState.progress``)."""

    bytes_seen: int = 0
    best_accuracy: float = -1.0
    best_step: int = -1
    evaluations_without_gain: int = 0
    finished: bool = False


# --------------------------------------------------------------------------- weights


def save_weights(directory: Path, model: finetune.SequenceClassifier) -> None:
    """The language model (a model directory) and the head, swapped in whole."""
    with storage.replace_directory(directory) as staging:  # <name>.partial, swapped in whole
        save_model(model.language_model, staging / MODEL_SUBDIR)
        head = {name: tensor.detach().cpu().contiguous() for name, tensor in model.head.state_dict().items()}
        save_file(head, staging / "head.safetensors")


def load_weights(directory: Path, model: finetune.SequenceClassifier, device) -> None:
    saved = load_model(directory / MODEL_SUBDIR, device=device)
    with torch.no_grad():
        model.language_model.load_state_dict(saved.state_dict())
        model.head.load_state_dict({k: v.to(device) for k, v in load_file(directory / "head.safetensors").items()})


class ClassifierFiles:
    """The model's files in a fine-tuning checkpoint: ``weights/``, as :func:`save_weights` writes ``best/``."""

    def __init__(self, device: torch.device):
        self.device = device

    def save(self, model, staging: Path, metadata: dict | None) -> None:
        save_weights(staging / "weights", model)

    def load(self, model, directory: Path) -> None:
        load_weights(directory / "weights", model, self.device)


# --------------------------------------------------------------------------- the loss and evaluation


class ClassifierLoss:
    """The classification loss plus ``lm_loss_weight`` times the auxiliary next-byte loss, on the
    texts ``indices`` of ``texts``; reports per-batch sums for the metric window."""

    def __init__(self, texts: Texts, lm_loss_weight: float):
        self.texts = texts
        self.lm_loss_weight = lm_loss_weight

    def __call__(self, trainer: training.Trainer, indices: np.ndarray) -> tuple[torch.Tensor, dict]:
        device = trainer.ctx.device
        batch_bytes = [self.texts.data[i] for i in indices]
        tokens, reset, is_text = finetune.text_batch(batch_bytes, device)
        labels = torch.as_tensor(self.texts.labels[indices], device=device)
        with trainer.precision.autocast():
            logits, lm_loss = trainer.network(tokens, reset, is_text, lm_loss=self.lm_loss_weight > 0)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        total = loss if lm_loss is None else loss + self.lm_loss_weight * lm_loss
        values = {
            "loss": float(loss.detach()) * len(indices),
            "lm_loss": (0.0 if lm_loss is None else float(lm_loss.detach())) * len(indices),
            "correct": int((logits.argmax(dim=1) == labels).sum()),
            "texts": len(indices),
            "bytes": sum(len(b) for b in batch_bytes),
        }
        return total, values


def evaluate_by_domain(model, texts: Texts, precision: str, device, batch_size: int) -> tuple[float, float, dict]:
    """(accuracy, mean cross-entropy, accuracy of each domain or {}) of the classifier, dropout off.

    With domains, the accuracy is the mean of the domains' accuracies (``transfer.domain_accuracies``).
    """
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
    by_domain = domain_accuracies(right, texts.domains)
    return sum(by_domain.values()) / len(by_domain), loss / len(right), by_domain


# --------------------------------------------------------------------------- the run


def run_finetune(config, run_dir: Path, started: float) -> int:
    """The run (the caller holds ``run_dir``'s lock and has checked the flags)."""
    reuse_freed_memory()
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    # A checkpoint swap cut between its renames is put back: the same recovery as train's.
    for message in training.recover(run_dir / name for name in (CHECKPOINT_DIR, "best", MODEL_SUBDIR)):
        log.notice(message)
    earlier_format = (checkpoint_dir / EARLIER_STATE_JSON).is_file()
    has_checkpoint = (checkpoint_dir / STATE_JSON).is_file() or earlier_format
    if config.resume and not has_checkpoint:
        raise UserError(f"nothing to resume: {checkpoint_dir} holds no checkpoint")
    if not config.resume and has_checkpoint:
        raise UserError(f"{run_dir} already holds a fine-tuning run; pass --resume to continue it, or another -experiment_name")
    if config.resume and not (checkpoint_dir / STATE_JSON).is_file():
        raise UserError(f"{checkpoint_dir} was written by an earlier version of finetune, whose checkpoints this one "
                        "cannot continue; start afresh with another -experiment_name")
    outputs = [name for name in OUTPUTS if (run_dir / name).exists()]
    if not config.resume and outputs:  # a fresh run would replace them before its own are ready
        raise UserError(f"{run_dir} holds the outputs of an earlier fine-tuning run ({', '.join(outputs)}) but no "
                        "checkpoint to resume; pass another -experiment_name, or move them aside")
    device = select_device(config.cuda)
    precision = resolve_precision(config.precision, device)
    seed_everything(config.seed)

    start_model = resolve_start_model(config)
    language_model = load_model(start_model, device=device)
    files = LabelledFiles.from_config(config)
    splits = read_splits(files)
    class_labels = encode_classes(splits, files)  # -multiclass: labels become class indices 0..K-1
    if "valid" not in splits:
        if config.domain_key:
            raise UserError("-domain_key names a column of -valid: pass -valid FILE with that column")
        splits["train"], splits["valid"] = hold_out_validation(splits["train"], files)
    classes = finetune.check_classes(splits["train"].labels, "the training set")
    data = {name: prepare(language_model, split, config.max_text_length) for name, split in splits.items()}
    check_memory(language_model, data["train"], config, device)  # before the run directory is made
    model = finetune.SequenceClassifier(language_model, classes, config.pooling, config.dropout).to(device)
    groups = finetune.parameter_groups(model, config.head_lr, config.lr, config.layer_decay)
    # Each group's rate is the schedule's factor times its own (lr_scale, see training.Trainer.step).
    optimizer = torch.optim.Adam([{"params": g.parameters, "lr": g.lr, "lr_scale": g.lr} for g in groups])
    steps_per_epoch = math.ceil(len(data["train"].data) / config.batch_size)
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    engine_precision = training.Precision(precision, device.type)
    ctx = training.DistributedContext(device=device)
    state = training.TrainingState(
        model=model,
        optimizer=optimizer,
        schedule=training.WarmupDecay(total_steps, config.warmup, config.decay),
        batcher=finetune.EpochBatches([len(d) for d in data["train"].data], config.batch_size, config.seed),
        scaler=engine_precision.grad_scaler(),
        history=training.MetricsHistory(tables={"history": HISTORY}, draw=training.learning_curve),
        progress=Progress(),
        weights=ClassifierFiles(device),
    )
    probe_report = None
    if config.resume:
        state.restore(checkpoint_dir, ctx, config=config, resumable=RESUMABLE_CHANGES)
        log.info(f"resumed {checkpoint_dir} at update {state.iteration} of {total_steps} (epoch {state.epoch})")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        storage.remove(run_dir / "best")  # an unfinished run's, never an output (those were refused above)
        if config.head_init == "probe":
            probe_report = init_head_from_probe(model, data, config, precision)
        storage.write_json(run_dir / "probe.json", probe_report or {"head_init": config.head_init})
    if not state.progress.finished:
        trainer = training.Trainer(
            state, ctx, precision=engine_precision, loss=ClassifierLoss(data["train"], config.lm_loss_weight),
            clip=config.clip,
        )
        status = train(config, trainer, groups, data, run_dir, total_steps,
                       unfreeze_steps=int(round(config.unfreeze_every * steps_per_epoch)),
                       eval_steps=max(1, int(round(config.eval_every * steps_per_epoch))))
        if status is not None:  # stopped before the end: the checkpoint is saved, no outputs yet
            return status
    load_weights(run_dir / "best", model, device)
    state.history.plot(run_dir / LEARNING_CURVE)
    state.history.rewrite(run_dir)
    finish(config, model, data, splits, state, precision, device, run_dir, start_model, started, total_steps,
           class_labels)
    return 0


def train(config, trainer: training.Trainer, groups, data: dict, run_dir: Path, total_steps: int,
          unfreeze_steps: int, eval_steps: int) -> int | None:
    """Train until the end (returns None) or a stop (returns the exit status, a checkpoint saved)."""
    state, progress, window = trainer.state, trainer.state.progress, trainer.state.window
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    bar = tqdm(total=total_steps, initial=state.iteration, unit="update", desc="finetune", dynamic_ncols=True)
    trainer.model.train()
    with training.StopRequest() as stop:
        while state.iteration < total_steps:
            began = time.perf_counter()
            indices = state.batcher.next()
            finetune.set_trainable(groups, finetune.unfrozen_depth(state.iteration, unfreeze_steps))
            result = trainer.step(indices, stop=stop.requested)
            seconds = time.perf_counter() - began
            progress.bytes_seen += result.values["bytes"]
            state.elapsed_s += seconds
            window.add(**result.values, seconds=seconds)
            bar.update()
            bar.set_postfix(loss=f"{window['loss'] / window['texts']:.3f}",
                            bytes_per_s=f"{window['bytes'] / max(window['seconds'], 1e-9):.0f}")
            last = state.iteration == total_steps
            stopping = stop.requested or (config.max_steps and state.iteration >= config.max_steps)
            if state.iteration % eval_steps == 0 or last:
                record_train_window(state, config.lm_loss_weight > 0)
                if evaluate_and_keep_best(config, trainer, data["valid"], run_dir):
                    last = True
                save_checkpoint(config, trainer, checkpoint_dir)
                state.history.plot(run_dir / LEARNING_CURVE)
                state.history.rewrite(run_dir)
            if last:
                break
            if stopping:  # the open metric window is saved with the state and continued on resume
                save_checkpoint(config, trainer, checkpoint_dir)
                bar.close()
                why = "-max_steps reached" if not stop.requested else "stopped"
                log.info(f"{why} at update {state.iteration} of {total_steps}; checkpoint saved in {checkpoint_dir}; "
                         "continue with the same command and --resume")
                return stop.exit_status if stop.requested else 0
    bar.close()
    progress.finished = True
    save_checkpoint(config, trainer, checkpoint_dir)
    return None


def save_checkpoint(config, trainer: training.Trainer, directory: Path) -> None:
    run = {"command": "finetune", "flags": dataclasses.asdict(config), "precision": trainer.precision.name}
    trainer.state.save(directory, trainer.ctx, run=run)


def record_train_window(state: training.TrainingState, with_lm_loss: bool) -> None:
    window = state.window
    if not window["texts"]:
        return
    state.history.add(
        "history", step=state.iteration, epoch=state.epoch, split="train", loss=window["loss"] / window["texts"],
        lm_loss=window["lm_loss"] / window["texts"] if with_lm_loss else None,
        accuracy=window["correct"] / window["texts"], learning_rate=state.optimizer.param_groups[1]["lr"],
        bytes=state.progress.bytes_seen, seconds=round(state.elapsed_s, 2),
    )
    window.reset()


def evaluate_and_keep_best(config, trainer: training.Trainer, valid: Texts, run_dir: Path) -> bool:
    """Evaluate on validation, save the weights if best so far; True when early stopping says stop.

    With domains the score is the mean of their accuracies; each domain's gets its own history row
    (split ``valid:<domain>``).
    """
    state, progress, model = trainer.state, trainer.state.progress, trainer.model
    accuracy, loss, by_domain = evaluate_by_domain(model, valid, trainer.precision.name, trainer.ctx.device,
                                                   config.eval_batch_size)
    row = {"step": state.iteration, "epoch": state.epoch, "split": "valid", "loss": loss, "lm_loss": None,
           "accuracy": accuracy, "learning_rate": None, "bytes": progress.bytes_seen,
           "seconds": round(state.elapsed_s, 2)}
    state.history.add("history", **row)
    for name, value in by_domain.items():
        state.history.add("history", **(row | {"split": f"valid:{name}", "loss": None, "accuracy": value}))
    improved = accuracy > progress.best_accuracy
    if improved:
        progress.best_accuracy, progress.best_step, progress.evaluations_without_gain = accuracy, state.iteration, 0
        save_weights(run_dir / "best", model)
    else:
        progress.evaluations_without_gain += 1
    rate = progress.bytes_seen / max(state.elapsed_s, 1e-9)
    what = "validation accuracy" if not by_domain else "mean validation accuracy over domains"
    shown = "".join(f"; {name} {100 * value:.1f}%" for name, value in by_domain.items())
    log.info(f"update {state.iteration}: {what} {100 * accuracy:.2f}% (best {100 * progress.best_accuracy:.2f}% "
             f"at update {progress.best_step}), loss {loss:.4f}, {rate:.0f} bytes/s{shown}")
    return bool(config.patience) and progress.evaluations_without_gain >= config.patience


# --------------------------------------------------------------------------- the data and the head's start


def check_memory(language_model, texts: Texts, config, device) -> None:
    """Refuse a run whose weights and one update's states (-batch_size texts of the longest length) cannot fit."""
    parameters = sum(p.numel() for p in language_model.parameters())
    length = max((len(d) for d in texts.data), default=1)
    streams = min(config.batch_size, len(texts.data))
    model_config = language_model.config
    needed = memory.training_bytes(parameters, streams, length, model_config.rnn_size, model_config.layers)
    available, where = None, "this machine"
    if device.type == "cuda":
        available, where = torch.cuda.mem_get_info(device)[0], "the GPU"
    memory.check_fits(
        needed, f"fine-tuning {parameters:,} weights on batches of {streams} texts of up to {length} bytes",
        "lower -batch_size or -max_text_length", available=available, where=where,
    )


def resolve_start_model(config) -> Path:
    """``-load_model``, else the shipped pre-trained model (``frozen/``, beside a fine-tuned default)."""
    if config.load_model is None:
        pretrained = defaults.default_directory() / defaults.FROZEN_SUBDIR / defaults.MODEL_SUBDIR
        if (pretrained / "config.json").is_file():
            return pretrained
        return Path(defaults.model_directory())
    return resolve_load_model(config.load_model, config)


def prepare(language_model, split: Split, max_text_length: int) -> Texts:
    data = [finetune.keep_ends(b, max_text_length) for b in encode_texts(language_model, split.texts)]
    return Texts(split.name, data, split.labels, split.domains)


def pooled_features(model: finetune.SequenceClassifier, texts: Texts, precision: str, batch_size: int) -> np.ndarray:
    return model.language_model.featurize(
        texts.data, batch_size=batch_size, progress=True, precision=precision, pooling=model.pooling
    )


def init_head_from_probe(model, data: dict[str, Texts], config, precision: str) -> dict:
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
    log.info(f"head starts as an L2 logistic regression on the {config.pooling}-pooled features: C={fit.C:g}, "
             f"validation accuracy {100 * accuracy:.2f}%{shown} ({time.perf_counter() - began:.0f} s)")
    return {"head_init": "probe", "C": fit.C, "valid_accuracy": accuracy, "test_accuracy": test_accuracy,
            "valid_accuracy_by_C": [{"C": c, "valid_accuracy": a} for c, a in fit.valid_accuracy.items()],
            "seconds": round(time.perf_counter() - began, 1)}
