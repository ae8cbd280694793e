"""One training run in this process (one of several under DDP), for ``sentiment-discovery
train`` (``recipes/train.py`` holds its flags and starts the processes): the corpora opened
(built first, once, on rank 0), where the run starts (``--resume``, ``-load_model``, or
afresh; an earlier run is never overwritten), the model and its training state, the loop
with its metric rows, evaluations and checkpoints, and ``-should_test``'s evaluations.

``config`` is always a :class:`~sentiment_discovery.recipes.train.TrainConfig`; messages go
through :mod:`~sentiment_discovery.foundation.log`, which ``-verbose`` quiets (``recipes/train.py``).
"""

import contextlib
import dataclasses
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import training
from ..checkpoint import (
    CHECKPOINT_NAME,
    STATE_JSON,
    STATE_TENSORS,
    list_checkpoints,
    load_model,
    model_directories,
    read_model_config,
)
from ..data.batching import TransposedBatcher
from ..data.corpus import ByteCorpus, CorpusOptions, ensure_corpus, read_manifest
from ..foundation import log, storage
from ..foundation.errors import UserError
from ..foundation.model_config import ARCHITECTURE_SETTINGS, ModelConfig
from ..foundation.text import PAPER_TEXT_OPTIONS, TextOptions
from ..model import ByteLM
from ..precision import resolve_precision
from ..runtime import seed_everything
from .common import resolve_load_model

CORPUS_CACHE = "corpora"
HISTORY_DIR = "history"
LOSS_PLOT = "loss.png"


# --------------------------------------------------------------------------- data


@dataclasses.dataclass
class Corpora:
    train: ByteCorpus
    valid: ByteCorpus | None
    test: ByteCorpus | None
    text_options: TextOptions


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def prepare_corpora(config, ctx: training.DistributedContext) -> Corpora:
    """Open (building them first on rank 0 when needed) the train, valid and test corpora."""
    cache = Path(config.experiment_dir) / CORPUS_CACHE

    def ensure(source: str, split) -> Path:
        return ensure_corpus(
            source,
            cache,
            CorpusOptions(text_key=config.text_key, split=split, delim=config.delim),
            progress=ctx.is_main and config.verbose >= 1,
        )

    def build_all() -> dict[str, Path]:
        directories = {"train": ensure(config.train, config.split)}
        for role in ("valid", "test"):
            source = getattr(config, role)
            if source is not None and not _same_file(source, config.train):
                directories[role] = ensure(source, (1.0,))
        return directories

    if ctx.is_main:
        directories = build_all()
    ctx.barrier()
    if not ctx.is_main:
        directories = build_all()

    train_dir = directories["train"]
    manifest = read_manifest(train_dir)
    corpora = {"train": ByteCorpus.open(train_dir, "train")}
    for role in ("valid", "test"):
        source = getattr(config, role)
        if source is None or _same_file(source, config.train):
            splits = manifest["splits"]
            if role in splits and splits[role]["texts"] > 0:
                corpora[role] = ByteCorpus.open(train_dir, role)
            elif source is not None:
                raise UserError(
                    f"-{role} is the training data, which means its corpus's {role!r} split, but {train_dir} has "
                    f"none; give -split 1000,1,1 (or a {role} file)"
                )
            else:
                corpora[role] = None
        else:
            directory = directories[role]
            splits = read_manifest(directory)["splits"]
            corpora[role] = ByteCorpus.open(directory, role if role in splits else "train")
    text_values = manifest.get("options", {}).get("text_options")
    text_options = TextOptions.from_dict(text_values) if isinstance(text_values, dict) else PAPER_TEXT_OPTIONS
    return Corpora(corpora["train"], corpora["valid"], corpora["test"], text_options)


# --------------------------------------------------------------------------- the run


def _model_config(config) -> ModelConfig:
    return ModelConfig(**{name: getattr(config, name) for name in ARCHITECTURE_SETTINGS})


def _differences(model_config: ModelConfig, config) -> list[str]:
    saved = dataclasses.asdict(model_config)
    return [
        f"-{name} {getattr(config, name)!r} (saved: {saved[name]!r})"
        for name in ARCHITECTURE_SETTINGS
        if saved[name] != getattr(config, name)
    ]


def _starting_point(config) -> tuple[Path | None, Path | None]:
    """(checkpoint to resume, model directory to start from); refuses to overwrite an earlier run."""
    model_path = config.model_path
    checkpoints = list_checkpoints(model_path)
    if config.resume and checkpoints:
        if config.load_model:
            log.notice(f"--resume continues {checkpoints[-1][1]}; -load_model {config.load_model} is ignored")
        _warn_of_newer_incomplete(model_path, checkpoints[-1])
        return checkpoints[-1][1], None
    if config.load_model:
        return None, resolve_load_model(config.load_model, config)
    existing = model_directories(model_path)
    if existing and not config.should_test:
        names = ", ".join(p.name for p in existing[-3:])
        if config.resume:
            raise UserError(f"{model_path} holds models ({names}) but no complete training checkpoint to resume")
        raise UserError(
            f"{model_path} already holds checkpoints of a run ({names}); pass --resume to continue it, or "
            "choose another -experiment_name"
        )
    if config.resume:
        log.notice(f"no checkpoint in {model_path} yet: starting a new run")
    return None, None


def _warn_of_newer_incomplete(model_path: Path, newest: tuple[int, Path]) -> None:
    """Say so when a newer checkpoint than the one resumed lacks its training state: that work is redone."""
    iteration, directory = newest
    for candidate in model_directories(model_path):
        if candidate == directory:
            continue
        match = CHECKPOINT_NAME.match(candidate.name)
        at = int(match.group(2)) if match.group(1) == "iter" else None
        if at is None:
            try:
                at = int(read_model_config(candidate)["metadata"]["training"]["iterations"])
            except (UserError, KeyError, TypeError, ValueError):
                continue
        if at > iteration and candidate not in {d for _, d in list_checkpoints(model_path)}:
            log.warning(
                f"{candidate} (iteration {at}) is newer but lacks its training state "
                f"({STATE_JSON}, {STATE_TENSORS}); resuming {directory.name} at iteration "
                f"{iteration}: {at - iteration} iteration(s) are trained again"
            )


def _build_model(config, resume_dir, start_dir, text_options) -> ByteLM:
    if resume_dir is not None:
        model_config = ModelConfig.from_dict(read_model_config(resume_dir)["model"])
        differences = _differences(model_config, config)
        if differences:
            raise UserError(f"{resume_dir} was trained with other model flags: {'; '.join(differences)}")
        return ByteLM(model_config, text_options)
    if start_dir is not None:
        model = load_model(start_dir)
        differences = _differences(model.config, config)
        if differences:
            log.notice(f"the architecture comes from {start_dir}; ignoring {'; '.join(differences)}")
        return model
    return ByteLM(_model_config(config), text_options)


def _total_iterations(config, batches_per_epoch: int) -> int:
    return config.max_iters if config.max_iters > 0 else config.epochs * batches_per_epoch


def run_training(config, ctx: training.DistributedContext) -> int:
    """The run, holding the experiment's lock: a second run into it is refused before any work."""
    with contextlib.ExitStack() as held:
        if ctx.is_main and not config.should_test:
            held.enter_context(storage.output_lock(config.experiment_path, what="-experiment_name"))
            for message in training.tidy_checkpoints(config.model_path):
                log.notice(message)
        return _train_holding_lock(config, ctx)


def _train_holding_lock(config, ctx: training.DistributedContext) -> int:
    if config.benchmark:
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        else:
            log.notice("-benchmark has no effect on the CPU")
    resume_dir, start_dir = _starting_point(config)  # an earlier run is refused before any work
    corpora = prepare_corpora(config, ctx)

    seed_everything(config.seed)  # the same initial weights in every process
    model = _build_model(config, resume_dir, start_dir, corpora.text_options).to(ctx.device).train()
    torch.manual_seed(config.seed + ctx.rank)  # but each process its own dropout masks
    requested = config.precision
    if ctx.distributed and requested == "auto":  # started by torchrun: rank 0 decides for every process
        requested = ctx.gather_objects(resolve_precision(requested, ctx.device) if ctx.is_main else None)[0]
    precision = training.Precision(requested, ctx.device.type)
    batcher = TransposedBatcher(
        corpora.train,
        config.batch_size,
        config.seq_length,
        persist_state=config.persist_state,
        wrap=not config.no_wrap,
        shuffle=config.shuffle,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    total = _total_iterations(config, batcher.batches_per_epoch)
    writes_history = ctx.is_main and not (config.no_loss or config.should_test)
    history_dir = config.experiment_path / HISTORY_DIR if writes_history else None
    state = training.TrainingState(
        model=model,
        optimizer=training.make_optimizer(config.optimizer_type, model.parameters(), config.lr),
        schedule=training.make_schedule(config.lr_scheduler, config.lr, total_iters=total, factor=config.lr_factor),
        batcher=batcher,
        scaler=precision.grad_scaler(),
        history=training.MetricsHistory(directory=history_dir),
    )
    if resume_dir is not None:
        try:
            info = state.restore(resume_dir, ctx)
        except UserError as error:
            earlier = [d for _, d in list_checkpoints(config.model_path) if d != resume_dir]
            if not earlier:
                raise
            raise UserError(
                f"{error}; the checkpoint before it, {earlier[-1]}, may be whole: move {resume_dir} aside "
                f"(mv {resume_dir} {resume_dir}.damaged) and --resume again"
            ) from None
        log.info(f"resumed {resume_dir} at iteration {state.iteration} (epoch {state.epoch})")
        saved_total = info.get("schedule", {}).get("total_iters")
        if config.lr_scheduler == "LinearLR" and saved_total not in (None, total):
            log.notice(f"the learning rate now decays to 0 over {total} iterations (the checkpoint's: {saved_total})")
    else:
        state.iteration = config.start_iter or config.start_epoch * batcher.batches_per_epoch
        if config.start_epoch:
            batcher.load_state_dict({**batcher.state_dict(), "epoch": config.start_epoch, "step": 0})
    trainer = training.Trainer(state, ctx, precision=precision, clip=config.clip)

    if config.should_test:
        return _report_evaluations(config, trainer, corpora, resume_dir or start_dir)

    if ctx.is_main:
        config.model_path.mkdir(parents=True, exist_ok=True)
        state.history.rewrite()
    if state.iteration >= total:
        log.info(f"nothing to do: the run is at iteration {state.iteration} of {total}")
        return 0
    return _loop(config, ctx, trainer, corpora, total)


def _evaluate(config, trainer: training.Trainer, corpus: ByteCorpus, split: str) -> training.EvalResult:
    result = trainer.evaluate(
        corpus,
        config.eval_batch_size or config.batch_size,
        config.eval_seq_length or config.seq_length,
        config.persist_state,
    )
    state = trainer.state
    state.history.add_eval(
        iteration=state.iteration,
        epoch=state.epoch,
        split=split,
        loss=result.loss,
        bits_per_byte=result.bits_per_byte,
        bytes=result.bytes,
    )
    return result


def _report_evaluations(config, trainer, corpora: Corpora, source) -> int:
    if source is None:
        raise UserError("-should_test evaluates a trained model: give -load_model, or --resume with a checkpoint")
    if corpora.valid is None and corpora.test is None:
        raise UserError("-should_test needs evaluation data: give -valid or -test (or a -split with those parts)")
    for split in ("valid", "test"):
        corpus = getattr(corpora, split)
        if corpus is not None:
            result = _evaluate(config, trainer, corpus, split)
            log.info(f"{source}: {split} {result.bits_per_byte:.4f} bits per byte over {result.bytes} bytes")
    return 0


def _loop(config, ctx, trainer: training.Trainer, corpora: Corpora, total: int) -> int:
    state = trainer.state
    global_batch_bytes = config.batch_size * config.seq_length * ctx.world_size
    bar = tqdm(
        total=total,
        initial=state.iteration,
        desc="train",
        unit="it",
        disable=not (ctx.is_main and config.verbose >= 1),
        dynamic_ncols=True,
    )
    window = state.window  # empty: a row ends at every checkpoint
    window.reset()
    run_started = time.perf_counter() - state.elapsed_s

    def log_row(last: training.StepResult) -> None:
        now = time.perf_counter()
        state.elapsed_s = now - run_started
        seconds = max(now - window.started, 1e-9)
        good = window["updates"] - window["skipped"]
        loss = window["loss"] / good if good else float("nan")
        chars_per_s = window["updates"] * global_batch_bytes / seconds
        state.history.add_train(
            iteration=state.iteration,
            epoch=state.epoch,
            loss=loss,
            bits_per_byte=training.bits_per_byte(loss),
            learning_rate=last.learning_rate,
            grad_norm=window["grad_norm"] / good if good else float("nan"),
            chars_per_s=chars_per_s,
            skipped_updates=window["skipped"],
            elapsed_s=state.elapsed_s,
        )
        postfix = {
            "loss": f"{loss:.4f}",
            "bpb": f"{training.bits_per_byte(loss):.3f}",
            "lr": f"{last.learning_rate:.3g}",
            "gnorm": f"{window['grad_norm'] / max(good, 1):.3g}",
            "chars/s": f"{chars_per_s:,.0f}",
        }
        bar.set_postfix(ordered_dict=postfix, refresh=False)
        window.reset()

    def save(name: str, evaluate: bool, final: bool = False) -> None:
        if window["updates"]:
            log_row(last)  # a row ends at every checkpoint, so a resumed run writes the same rows
        started = time.perf_counter()
        if evaluate:
            for split in ("valid", "test") if final else ("valid",):
                corpus = getattr(corpora, split)
                if corpus is not None:
                    result = _evaluate(config, trainer, corpus, split)
                    log.info(f"iteration {state.iteration}: {split} {result.bits_per_byte:.4f} bits per byte")
        state.elapsed_s = time.perf_counter() - run_started
        metadata = dict(state.model.metadata)
        metadata["training"] = {"iterations": state.iteration, "bytes_seen": state.iteration * global_batch_bytes}
        last_valid = state.history.last_eval("valid")
        if last_valid is not None:
            metadata["training"]["valid_bits_per_byte"] = last_valid["bits_per_byte"]
        run_info = {"command": "train", "flags": dataclasses.asdict(config), "precision": trainer.precision.name}
        path = state.save(config.model_path / name, ctx, metadata=metadata, run=run_info)
        if ctx.is_main:
            if not config.no_loss:
                state.history.plot(config.experiment_path / LOSS_PLOT)
            for removed in training.prune_iteration_checkpoints(config.model_path, config.keep_iters):
                log.info(f"removed old checkpoint {removed}")
        log.info(f"saved {path}")
        window.started += time.perf_counter() - started  # chars/s counts training time only

    status = 0
    last = None
    with training.StopRequest() as stop_request:
        while True:
            for batch in state.batcher:
                last = trainer.step(batch.inputs, batch.targets, batch.reset, stop=stop_request.requested)
                if last.skipped:
                    window.add(updates=1, skipped=1)
                else:
                    window.add(updates=1, loss=last.loss, grad_norm=last.grad_norm)
                bar.update(1)
                if last.skipped and not (trainer.precision.name == "fp16" and state.scaler.get_scale() > 1.0):
                    log.warning(f"iteration {state.iteration}: non-finite loss or gradient; the update was skipped")
                if state.iteration % config.log_iters == 0:
                    log_row(last)
                if last.stop or state.iteration >= total:
                    break
                mid_epoch = state.batcher.step < state.batcher.batches_per_epoch
                if config.save_iters and state.iteration % config.save_iters == 0 and mid_epoch:
                    save(f"iter{state.iteration}", evaluate=True)
            epoch_done = state.batcher.step >= state.batcher.batches_per_epoch
            name = f"e{state.epoch}" if epoch_done else f"iter{state.iteration}"
            if last is not None and last.stop:
                # A stop that lands on a save point still evaluates there, as the uninterrupted run does.
                at_save_point = epoch_done or state.iteration >= total or bool(
                    config.save_iters and state.iteration % config.save_iters == 0
                )
                save(name, evaluate=at_save_point, final=state.iteration >= total)
                status = stop_request.exit_status if stop_request.requested else 128 + 15
                log.info(f"stopped at iteration {state.iteration}; continue with the same command and --resume")
                break
            if epoch_done or state.iteration >= total:
                save(name, evaluate=True, final=state.iteration >= total)
            if state.iteration >= total:
                break
    bar.close()
    return status
