"""``sentiment-discovery train``: the byte-level language model trained on a corpus (the seed's
``text_reconstruction.py``).

Raw review files are cleaned into an on-disk byte corpus once (cached under
``<experiment_dir>/corpora/``); batches are parallel byte streams whose recurrent state is
carried from batch to batch. Results go to ``<experiment_dir>/<experiment_name>/``:
checkpoints ``<model_dir>/e<epoch>`` (each epoch end) and ``<model_dir>/iter<N>`` (every
``-save_iters``), metric histories ``history/train.csv`` and ``history/eval.csv``, and the
loss curve ``loss.png``. ``--resume`` continues from the newest checkpoint exactly.

One process, or one per GPU under DistributedDataParallel: ``torchrun --nproc_per_node N
-m sentiment_discovery train ...``, or ``-distributed -num_gpus N`` to start them here.
"""

from __future__ import annotations  # the annotations name classes of modules imported on first use

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import storage
from ..choices import PERSIST_STATE_CHOICES, SCHEDULES
from ..errors import UserError
from ..model_config import ARCHITECTURE_SETTINGS, ModelConfig
from ..options import check_options, option, option_like
from ..precision import PRECISIONS, resolve_precision
from ..text import PAPER_TEXT_OPTIONS, TextOptions
from .common import SEED_MODEL_NO_OPS, ExperimentConfig, resolve_load_model

# Lazy imports: torch and the components that use it are imported in the functions that need them, not
# here: the CLI imports this module for its flags, and `--help` should not wait for torch.
if TYPE_CHECKING:
    from .. import training
    from ..data.corpus import ByteCorpus
    from ..model import ByteLM

CORPUS_CACHE = "corpora"
HISTORY_DIR = "history"
LOSS_PLOT = "loss.png"
MODEL_FLAGS = ARCHITECTURE_SETTINGS  # train takes a flag for each


NO_LABELS = "training reads texts only, no labels."


@dataclasses.dataclass(kw_only=True)
class TrainConfig(ExperimentConfig):
    # 2017 flags that text_reconstruction.py took and train ignores (flag -> why)
    NO_OP_FLAGS = {
        "lazy": "the corpus is always memory-mapped from disk, never read into memory.",
        "preprocess": "raw files are always cleaned as in section 4 of the paper when their corpus is built (once).",
        "data_set_type": "training always reads an unsupervised byte corpus.",
        "transpose": "batches are always parallel byte streams (the transposed layout).",
        "cache": "the memory-mapped corpus is cached by the operating system.",
        "data_size": SEED_MODEL_NO_OPS["data_size"],
        "label_key": NO_LABELS,
        "drop_unlabeled": NO_LABELS,
        "binarize_sent": NO_LABELS,
    }

    # ---- data
    train: str = option(
        help="training data: a CSV/TSV/JSON/JSON Lines/text file (optionally .gz), cleaned into a cached byte "
        "corpus on first use, or a corpus directory made by `preprocess`"
    )
    valid: str | None = option(
        None,
        help="validation data (file or corpus directory); the training file itself means the training corpus's "
        "valid split, which is also used when -valid is not given",
    )
    test: str | None = option(None, help="test data, like -valid; evaluated at the end of the run")
    text_key: str = option("sentence", help="column or key holding the text in CSV/JSON files")
    delim: str | None = option(None, help="column delimiter for delimited files (default: by extension)")
    split: str = option(
        "1000,1,1",
        help="how a raw -train file is dealt into train,valid,test (runs of their sum, as the 2017 release), "
        "or a training fraction such as 1.",
    )
    shuffle: bool = option(False, help="concatenate the texts in a new seeded order every epoch")
    persist_state: int = option(
        0,
        choices=PERSIST_STATE_CHOICES,
        help="reset the recurrent state at each text (0), each shard (1) or never (-1)",
    )
    no_wrap: bool = option(
        False, help="drop the bytes left over at the end of an epoch instead of wrapping streams around the corpus"
    )
    seq_length: int = option(256, help="bytes per stream per update (truncated backpropagation through time)", minimum=1)
    batch_size: int = option(32, help="streams per process; the global batch is batch_size x processes", minimum=1)
    eval_batch_size: int = option(0, help="streams per process when evaluating (0: -batch_size)", minimum=0)
    eval_seq_length: int = option(0, help="bytes per stream per evaluation batch (0: -seq_length)", minimum=0)
    # ---- model
    load_model: str | None = option(
        None,
        help="start from this model directory (or a checkpoint name such as e0.pt in <model_dir>/); the "
        "optimizer starts afresh (see --resume)",
    )
    # the architecture: declared once, in ModelConfig
    rnn_type: str = option_like(ModelConfig, "rnn_type")
    embed_size: int = option_like(ModelConfig, "embed_size")
    rnn_size: int = option_like(ModelConfig, "rnn_size")
    layers: int = option_like(ModelConfig, "layers")
    dropout: float = option_like(ModelConfig, "dropout")
    weight_norm: bool = option_like(ModelConfig, "weight_norm")
    lstm_only: bool = option_like(ModelConfig, "lstm_only")
    # ---- optimisation
    lr: float = option(5e-4, help="starting learning rate; scale it with the global batch (see docs/training.md)", minimum=0)
    optimizer_type: str = option("Adam", help="class name of a torch.optim optimizer (Adam, SGD, RMSprop, ...)")
    lr_scheduler: str = option(
        "LinearLR",
        choices=SCHEDULES,
        help="LinearLR: linear decay to 0 over the run, per iteration; ExponentialLR: times -lr_factor each epoch",
    )
    lr_factor: float = option(0.95, help="ExponentialLR's decay per epoch", above=0)
    clip: float = option(1.0, help="clip the gradient norm to this (0: no clipping)", minimum=0)
    epochs: int = option(1, help="epochs to train for", minimum=1)
    max_iters: int = option(0, help="total iterations to train for; takes precedence over -epochs (0 or -1: off)", minimum=-1)
    start_epoch: int = option(0, help="epoch to start at (for a run continued with -load_model)", minimum=0)
    start_iter: int = option(
        0, help="iteration to start at (for a run continued with -load_model; default start_epoch x batches per epoch)",
        minimum=0,
    )
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="matrix products in fp32, or autocast to bf16 / fp16 (loss scaling); auto: bf16 where the hardware "
        "runs it natively, else fp32",
    )
    no_loss: bool = option(False, help="do not write the metric history and the loss curve")
    # ---- checkpoints and metrics
    save_iters: int = option(5000, help="save a checkpoint iter<N> every this many iterations (0: only epoch ends)", minimum=0)
    keep_iters: int = option(2, help="keep the newest this many iter<N> checkpoints (0: all); epoch ones stay", minimum=0)
    log_iters: int = option(100, help="write a row of training metrics every this many iterations", minimum=1)
    resume: bool = option(False, help="continue exactly from the newest complete checkpoint in <model_dir>/")
    should_test: bool = option(
        False, help="do not train: report the bits per byte of -load_model (or the newest checkpoint) on valid/test"
    )
    # ---- devices and processes
    benchmark: bool = option(False, help="let cuDNN pick the fastest kernels (GPU only)")
    num_gpus: int = option(1, help="processes to start on this machine (one per GPU; Gloo processes on the CPU)", minimum=1)
    distributed: bool = option(False, help="train with DistributedDataParallel, one process per -num_gpus")
    rank: int = option(-1, help="this process's rank when started by hand (torchrun sets RANK instead)", minimum=-1)
    world_size: int = option(0, help="processes in all when started by hand with -rank (torchrun sets WORLD_SIZE)", minimum=0)
    verbose: int = option(1, choices=(0, 1, 2), help="0: quiet; 1: the first process prints; 2: every process prints")


COMMAND_CONFIG = TrainConfig


def check_config(config: TrainConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    from .. import training

    check_options(config)
    if config.rank >= 0 and config.world_size < 1:
        raise UserError("-rank needs -world_size (the number of processes in all)")
    if config.rank >= config.world_size > 0:
        raise UserError(f"-rank {config.rank} is not below -world_size {config.world_size}")
    training.optimizer_class(config.optimizer_type)


def processes_to_start(config: TrainConfig) -> int:
    """How many processes ``run`` starts itself: 1 under a launcher or -rank, else -num_gpus."""
    from .. import training

    if training.launched_world_size() > 0 or config.rank >= 0:
        return 1
    return config.num_gpus if (config.distributed or config.num_gpus > 1) else 1


def run(config: TrainConfig) -> int:
    import torch

    from .. import training

    check_config(config)
    if config.rank >= 0 and training.launched_world_size() == 0:
        os.environ.update(RANK=str(config.rank), WORLD_SIZE=str(config.world_size))
        os.environ.setdefault("LOCAL_RANK", str(config.rank % max(1, config.num_gpus)))
    processes = processes_to_start(config)
    if processes > 1:
        if config.cuda and torch.cuda.is_available() and processes > torch.cuda.device_count():
            raise UserError(f"-num_gpus {processes} but this machine has {torch.cuda.device_count()} GPU(s)")
        # Build the corpora once, here, before the workers start: they then only open them.
        prepare_corpora(config, training.DistributedContext(), say=_printer(config, is_main=True))
        # "auto" decided once, here, so that every worker runs the same precision.
        device = torch.device("cuda" if config.cuda and torch.cuda.is_available() else "cpu")
        config = dataclasses.replace(config, precision=resolve_precision(config.precision, device))
        return training.launch_local_processes(processes, _worker, config)
    try:
        return train_process(config)
    except UserError:
        if _quiet_rank(config):
            return 2  # rank 0 reports it; eight copies of one message help nobody
        raise


def _quiet_rank(config: TrainConfig) -> bool:
    from .. import training

    return training.launched_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0 and config.verbose < 2


def _worker(config: TrainConfig) -> int:
    """A process started by ``-distributed -num_gpus N``: reports its own errors (no CLI above it)."""
    try:
        return train_process(config)
    except UserError as error:
        if not _quiet_rank(config):
            print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 128 + 2


def _printer(config: TrainConfig, is_main: bool, rank: int = 0):
    from tqdm.auto import tqdm

    from .. import training

    prints = config.verbose >= 2 or (config.verbose == 1 and is_main)
    prefix = f"[rank {rank}] " if config.verbose >= 2 and training.launched_world_size() > 1 else ""

    def say(message: str) -> None:
        if prints:
            tqdm.write(prefix + message, file=sys.stderr)

    return say


def train_process(config: TrainConfig) -> int:
    """The whole run in this process (one of several under DDP)."""
    from .. import training
    from ..fast_mlstm import reuse_freed_memory
    from ..runtime import configure_threads

    reuse_freed_memory()  # 7-18 % of training speed on CPU (see docs/performance.md)
    if training.launched_world_size() <= 1:  # several processes share the cores (launch_local_processes)
        configure_threads()
    warnings = []
    ctx = training.init_distributed(config.cuda, warn=warnings.append)
    try:
        say = _printer(config, ctx.is_main, ctx.rank)
        for warning in warnings:
            say(warning)
        return _train(config, ctx, say)
    finally:
        training.shutdown_distributed()


# --------------------------------------------------------------------------- data


@dataclasses.dataclass
class Corpora:
    train: ByteCorpus
    valid: ByteCorpus | None
    test: ByteCorpus | None
    text_options: TextOptions


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def prepare_corpora(config: TrainConfig, ctx: training.DistributedContext, say) -> Corpora:
    """Open (building them first on rank 0 when needed) the train, valid and test corpora."""
    from ..data.corpus import ByteCorpus, ensure_corpus, read_manifest

    cache = Path(config.experiment_dir) / CORPUS_CACHE

    def ensure(source: str, split) -> Path:
        return ensure_corpus(
            source,
            cache,
            text_key=config.text_key,
            split=split,
            delim=config.delim,
            progress=ctx.is_main and config.verbose >= 1,
            report=say if ctx.is_main else None,
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


def _model_config(config: TrainConfig) -> ModelConfig:
    return ModelConfig(**{name: getattr(config, name) for name in MODEL_FLAGS})


def _differences(model_config: ModelConfig, config: TrainConfig) -> list[str]:
    saved = dataclasses.asdict(model_config)
    return [
        f"-{name} {getattr(config, name)!r} (saved: {saved[name]!r})"
        for name in MODEL_FLAGS
        if saved[name] != getattr(config, name)
    ]


def _starting_point(config: TrainConfig, say) -> tuple[Path | None, Path | None]:
    """(checkpoint to resume, model directory to start from); refuses to overwrite an earlier run."""
    from .. import training

    model_path = config.model_path
    checkpoints = training.list_checkpoints(model_path)
    if config.resume and checkpoints:
        if config.load_model:
            say(f"notice: --resume continues {checkpoints[-1][1]}; -load_model {config.load_model} is ignored")
        _warn_of_newer_incomplete(model_path, checkpoints[-1], say)
        return checkpoints[-1][1], None
    if config.load_model:
        return None, resolve_load_model(config.load_model, config, say)  # say: only the ranks that print
    existing = training.model_directories(model_path)
    if existing and not config.should_test:
        names = ", ".join(p.name for p in existing[-3:])
        if config.resume:
            raise UserError(f"{model_path} holds models ({names}) but no complete training checkpoint to resume")
        raise UserError(
            f"{model_path} already holds checkpoints of a run ({names}); pass --resume to continue it, or "
            "choose another -experiment_name"
        )
    if config.resume:
        say(f"notice: no checkpoint in {model_path} yet: starting a new run")
    return None, None


def _warn_of_newer_incomplete(model_path: Path, newest: tuple[int, Path], say) -> None:
    """Say so when a newer checkpoint than the one resumed lacks its training state: that work is redone."""
    from .. import training
    from ..checkpoint import read_model_config

    iteration, directory = newest
    for candidate in training.model_directories(model_path):
        if candidate == directory:
            continue
        match = training.CHECKPOINT_NAME.match(candidate.name)
        at = int(match.group(2)) if match.group(1) == "iter" else None
        if at is None:
            try:
                at = int(read_model_config(candidate)["metadata"]["training"]["iterations"])
            except (UserError, KeyError, TypeError, ValueError):
                continue
        if at > iteration and candidate not in {d for _, d in training.list_checkpoints(model_path)}:
            say(
                f"warning: {candidate} (iteration {at}) is newer but lacks its training state "
                f"({training.STATE_JSON}, {training.STATE_TENSORS}); resuming {directory.name} at iteration "
                f"{iteration}: {at - iteration} iteration(s) are trained again"
            )


def _build_model(config, resume_dir, start_dir, text_options, say) -> ByteLM:
    from ..checkpoint import load_model, read_model_config
    from ..model import ByteLM

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
            say(f"notice: the architecture comes from {start_dir}; ignoring {'; '.join(differences)}")
        return model
    return ByteLM(_model_config(config), text_options)


def _total_iterations(config: TrainConfig, batches_per_epoch: int) -> int:
    return config.max_iters if config.max_iters > 0 else config.epochs * batches_per_epoch


def _train(config: TrainConfig, ctx: training.DistributedContext, say) -> int:
    """The run, holding the experiment's lock: a second run into it is refused before any work."""
    from .. import training

    with contextlib.ExitStack() as held:
        if ctx.is_main and not config.should_test:
            held.enter_context(storage.output_lock(config.experiment_path, what="-experiment_name"))
            for message in training.tidy_checkpoints(config.model_path):
                say(f"notice: {message}")
        return _train_holding_lock(config, ctx, say)


def _train_holding_lock(config: TrainConfig, ctx: training.DistributedContext, say) -> int:
    import torch

    from .. import training
    from ..data.batching import TransposedBatcher
    from ..runtime import seed_everything

    if config.benchmark:
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        else:
            say("notice: -benchmark has no effect on the CPU")
    resume_dir, start_dir = _starting_point(config, say)  # an earlier run is refused before any work
    corpora = prepare_corpora(config, ctx, say)

    seed_everything(config.seed)  # the same initial weights in every process
    model = _build_model(config, resume_dir, start_dir, corpora.text_options, say).to(ctx.device).train()
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
            info = state.restore(resume_dir, ctx, say)
        except UserError as error:
            earlier = [d for _, d in training.list_checkpoints(config.model_path) if d != resume_dir]
            if not earlier:
                raise
            raise UserError(
                f"{error}; the checkpoint before it, {earlier[-1]}, may be whole: move {resume_dir} aside "
                f"(mv {resume_dir} {resume_dir}.damaged) and --resume again"
            ) from None
        say(f"resumed {resume_dir} at iteration {state.iteration} (epoch {state.epoch})")
        saved_total = info.get("schedule", {}).get("total_iters")
        if config.lr_scheduler == "LinearLR" and saved_total not in (None, total):
            say(f"notice: the learning rate now decays to 0 over {total} iterations (the checkpoint's: {saved_total})")
    else:
        state.iteration = config.start_iter or config.start_epoch * batcher.batches_per_epoch
        if config.start_epoch:
            batcher.load_state_dict({**batcher.state_dict(), "epoch": config.start_epoch, "step": 0})
    trainer = training.Trainer(state, ctx, precision=precision, clip=config.clip)

    if config.should_test:
        return _report_evaluations(config, trainer, corpora, say, resume_dir or start_dir)

    if ctx.is_main:
        config.model_path.mkdir(parents=True, exist_ok=True)
        state.history.rewrite()
    if state.iteration >= total:
        say(f"nothing to do: the run is at iteration {state.iteration} of {total}")
        return 0
    return _loop(config, ctx, trainer, corpora, total, say)


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


def _report_evaluations(config, trainer, corpora: Corpora, say, source) -> int:
    if source is None:
        raise UserError("-should_test evaluates a trained model: give -load_model, or --resume with a checkpoint")
    if corpora.valid is None and corpora.test is None:
        raise UserError("-should_test needs evaluation data: give -valid or -test (or a -split with those parts)")
    for split in ("valid", "test"):
        corpus = getattr(corpora, split)
        if corpus is not None:
            result = _evaluate(config, trainer, corpus, split)
            say(f"{source}: {split} {result.bits_per_byte:.4f} bits per byte over {result.bytes} bytes")
    return 0


class _Window:
    """Sums of the updates since the last history row."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.updates = self.skipped = 0
        self.loss_sum = self.grad_norm_sum = 0.0
        self.started = time.perf_counter()

    def add(self, result: training.StepResult) -> None:
        self.updates += 1
        if result.skipped:
            self.skipped += 1
        else:
            self.loss_sum += result.loss
            self.grad_norm_sum += result.grad_norm


def _loop(config: TrainConfig, ctx, trainer: training.Trainer, corpora: Corpora, total: int, say) -> int:
    from tqdm.auto import tqdm

    from .. import training

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
    window = _Window()
    run_started = time.perf_counter() - state.elapsed_s

    def log_row(last: training.StepResult) -> None:
        now = time.perf_counter()
        state.elapsed_s = now - run_started
        seconds = max(now - window.started, 1e-9)
        good = window.updates - window.skipped
        loss = window.loss_sum / good if good else float("nan")
        chars_per_s = window.updates * global_batch_bytes / seconds
        state.history.add_train(
            iteration=state.iteration,
            epoch=state.epoch,
            loss=loss,
            bits_per_byte=training.bits_per_byte(loss),
            learning_rate=last.learning_rate,
            grad_norm=window.grad_norm_sum / good if good else float("nan"),
            chars_per_s=chars_per_s,
            skipped_updates=window.skipped,
            elapsed_s=state.elapsed_s,
        )
        postfix = {
            "loss": f"{loss:.4f}",
            "bpb": f"{training.bits_per_byte(loss):.3f}",
            "lr": f"{last.learning_rate:.3g}",
            "gnorm": f"{window.grad_norm_sum / max(good, 1):.3g}",
            "chars/s": f"{chars_per_s:,.0f}",
        }
        bar.set_postfix(ordered_dict=postfix, refresh=False)
        window.reset()

    def save(name: str, evaluate: bool, final: bool = False) -> None:
        if window.updates:
            log_row(last)  # a row ends at every checkpoint, so a resumed run writes the same rows
        started = time.perf_counter()
        if evaluate:
            for split in ("valid", "test") if final else ("valid",):
                corpus = getattr(corpora, split)
                if corpus is not None:
                    result = _evaluate(config, trainer, corpus, split)
                    say(f"iteration {state.iteration}: {split} {result.bits_per_byte:.4f} bits per byte")
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
                say(f"removed old checkpoint {removed}")
        say(f"saved {path}")
        window.started += time.perf_counter() - started  # chars/s counts training time only

    status = 0
    last = None
    with training.StopRequest(say) as stop_request:
        while True:
            for batch in state.batcher:
                last = trainer.step(batch.inputs, batch.targets, batch.reset, stop=stop_request.requested)
                window.add(last)
                bar.update(1)
                if last.skipped and not (trainer.precision.name == "fp16" and state.scaler.get_scale() > 1.0):
                    say(f"warning: iteration {state.iteration}: non-finite loss or gradient; the update was skipped")
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
                say(f"stopped at iteration {state.iteration}; continue with the same command and --resume")
                break
            if epoch_done or state.iteration >= total:
                save(name, evaluate=True, final=state.iteration >= total)
            if state.iteration >= total:
                break
    bar.close()
    return status
