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

This module is the command's face: its flags, the data and the head's starting point, and the
run in order; the training loop and its checkpoints are in ``finetune_loop``, the outputs
written at the end in ``finetune_outputs``.
"""

from __future__ import annotations  # annotations name classes of modules imported on first use


import math
import time
from pathlib import Path

from typing import TYPE_CHECKING

from .. import memory, storage
from ..configs.finetune import FinetuneConfig
from ..errors import UserError
from ..options import check_options
from .common import resolve_load_model
from .finetune_loop import (
    CHECKPOINT_DIR, MODEL_SUBDIR, RunState, Texts, restore_checkpoint, say, tidy_run_directory, train,
)
from .finetune_outputs import finish, head_probe
from .splits import LabelledFiles, Split, encode_classes, hold_out_validation, read_splits

# Lazy imports: numpy, torch and the training modules are imported where they are used, not here: the CLI
# imports this module for its flags, and `--help` should not wait for them.
if TYPE_CHECKING:
    import numpy as np

    from .. import finetune

RUN_DIR = "finetune"
# What a finished run leaves for its users (classify -classifier, visualize): never replaced by a fresh run.
OUTPUTS = (MODEL_SUBDIR, "classifier.json", "results.json")


def check_flags(config: FinetuneConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    check_options(config)
    if 0 < config.max_text_length < 16:
        raise UserError(f"-max_text_length {config.max_text_length} is too short to hold a text; give at least 16 bytes")


def run(config: FinetuneConfig) -> int:
    """The run, holding the lock of its directory: a second run into it is refused before any work."""
    with storage.output_lock(config.experiment_path / RUN_DIR, what="-experiment_name"):
        return _run(config)


def _run(config: FinetuneConfig) -> int:
    import torch
    from .. import finetune
    from ..checkpoint import load_model
    from ..precision import resolve_precision
    from ..runtime import seed_everything, select_device

    started = time.perf_counter()
    check_flags(config)
    from ..fast_mlstm import reuse_freed_memory

    reuse_freed_memory()
    run_dir = config.experiment_path / RUN_DIR
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    for message in tidy_run_directory(run_dir):  # a checkpoint swap cut between its renames is put back
        say(f"notice: {message}")
    if config.resume and not (checkpoint_dir / "state.json").is_file():
        raise UserError(f"nothing to resume: {checkpoint_dir} holds no checkpoint")
    if not config.resume and (checkpoint_dir / "state.json").is_file():
        raise UserError(f"{run_dir} already holds a fine-tuning run; pass --resume to continue it, or another -experiment_name")
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
        storage.remove(run_dir / "best")  # an unfinished run's, never an output (those were refused above)
        if config.head_init == "probe":
            probe_report = init_head_from_probe(model, data, config, precision)
        storage.write_json(run_dir / "probe.json", probe_report or {"head_init": config.head_init})
    if not state.finished:
        status = train(config, model, optimizer, groups, schedule, data, state, precision, device, run_dir,
                       total_steps, steps_per_epoch, unfreeze_steps, eval_steps)
        if status is not None:  # stopped before the end: the checkpoint is saved, no outputs yet
            return status
    finish(config, model, data, splits, state, precision, device, run_dir, start_model, started, total_steps,
           class_labels)
    return 0


def check_memory(language_model, texts: Texts, config: FinetuneConfig, device) -> None:
    """Refuse a run whose weights and one update's states (-batch_size texts of the longest length) cannot fit."""
    import torch

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
    return Texts(split.name, data, split.labels, split.domains)



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
