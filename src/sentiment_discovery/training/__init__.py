"""The training engine that ``train`` and ``finetune`` both drive: a model, a loss and batches
go in; updates, evaluations, exact checkpoints and metric histories come out.

- :mod:`.checkpoints`: :class:`TrainingState` (everything a run needs to continue exactly)
  and its checkpoints, with one crash-recovery path (:func:`recover`);
- :mod:`.trainer`: :class:`Trainer` (one update with the recipe's loss; the language model's
  evaluation), :class:`NextByteLoss`, :class:`Precision`;
- :mod:`.schedules`: the learning-rate schedules and the optimizer by name;
- :mod:`.metrics`: bits per byte, the metric window, the history with its CSV files and plot;
- :mod:`.distributed`: one engine on one process or many, and stopping on a signal.

Nothing here parses flags. The names callers use are re-exported here (``training.<name>``).
"""

from ..checkpoint import (
    CHECKPOINT_NAME,
    STATE_FORMAT,
    STATE_FORMAT_VERSION,
    STATE_JSON,
    STATE_TENSORS,
    list_checkpoints,
    model_directories,
    read_state_json,
)
from .checkpoints import (
    LanguageModelFiles,
    TrainingState,
    capture_rng_state,
    check_resumable_flags,
    prune_iteration_checkpoints,
    recover,
    restore_rng_state,
    tidy_checkpoints,
)
from .distributed import (
    DistributedContext,
    StopRequest,
    init_distributed,
    launch_local_processes,
    launched_world_size,
    shutdown_distributed,
)
from .metrics import (
    EVAL_COLUMNS,
    LANGUAGE_MODEL_TABLES,
    TRAIN_COLUMNS,
    MetricsHistory,
    MetricWindow,
    Table,
    bits_per_byte,
    learning_curve,
    loss_curve,
)
from .schedules import (
    ExponentialDecay,
    LinearDecay,
    Schedule,
    WarmupDecay,
    make_optimizer,
    make_schedule,
    optimizer_class,
    optimizer_classes,
    schedule_dict,
)
from .trainer import MAX_NONFINITE_IN_A_ROW, EvalResult, NextByteLoss, Precision, StepResult, Trainer

__all__ = [
    "CHECKPOINT_NAME", "STATE_FORMAT", "STATE_FORMAT_VERSION", "STATE_JSON", "STATE_TENSORS", "list_checkpoints",
    "model_directories", "read_state_json",
    "LanguageModelFiles", "TrainingState", "capture_rng_state", "check_resumable_flags",
    "prune_iteration_checkpoints", "recover", "restore_rng_state", "tidy_checkpoints",
    "DistributedContext", "StopRequest", "init_distributed", "launch_local_processes", "launched_world_size",
    "shutdown_distributed",
    "EVAL_COLUMNS", "LANGUAGE_MODEL_TABLES", "TRAIN_COLUMNS", "MetricsHistory", "MetricWindow", "Table",
    "bits_per_byte", "learning_curve", "loss_curve",
    "ExponentialDecay", "LinearDecay", "Schedule", "WarmupDecay", "make_optimizer", "make_schedule",
    "optimizer_class", "optimizer_classes", "schedule_dict",
    "MAX_NONFINITE_IN_A_ROW", "EvalResult", "NextByteLoss", "Precision", "StepResult", "Trainer",
]
