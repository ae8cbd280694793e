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

This module is the command's face: its flags and ``run``. The run in this process (the data,
the head's starting point, the training on the engine of :mod:`sentiment_discovery.training`
that ``train`` also drives) is :mod:`sentiment_discovery.recipes.finetune_loop`; the outputs
written at the end are ``finetune_outputs``'s.
"""

import time

from ..configs.finetune import FinetuneConfig
from ..foundation import storage
from ..foundation.errors import UserError
from ..foundation.options import check_options
from . import finetune_loop

RUN_DIR = "finetune"


def check_flags(config: FinetuneConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    check_options(config)
    if 0 < config.max_text_length < 16:
        raise UserError(f"-max_text_length {config.max_text_length} is too short to hold a text; give at least 16 bytes")


def run(config: FinetuneConfig) -> int:
    """The run, holding the lock of its directory: a second run into it is refused before any work."""
    started = time.perf_counter()
    with storage.output_lock(config.experiment_path / RUN_DIR, what="-experiment_name"):
        check_flags(config)
        return finetune_loop.run_finetune(config, config.experiment_path / RUN_DIR, started)


