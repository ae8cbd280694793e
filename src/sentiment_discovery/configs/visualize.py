"""The flags of ``sentiment-discovery visualize`` (run: :mod:`sentiment_discovery.recipes.visualize`)."""

import dataclasses

from ..foundation.choices import MAX_GENERATE_BYTES, MAX_HOLD, PRECISIONS
from ..foundation.options import option
from .common import SEED_MODEL_NO_OPS, SEED_PROCESS_NO_OPS, ExperimentConfig

ONLY_TEXT = "visualize reads only -text, prepared as the model read text in training."
FRESH_STATE = "the text is read from a fresh state."


@dataclasses.dataclass(kw_only=True)
class VisualizeConfig(ExperimentConfig):
    # 2017 flags that visualize.py took and visualize ignores: it reads no data files (flag -> why)
    NO_OP_FLAGS = {
        **SEED_MODEL_NO_OPS,
        **SEED_PROCESS_NO_OPS,
        "train": ONLY_TEXT,
        "valid": ONLY_TEXT,
        "test": ONLY_TEXT,
        "split": ONLY_TEXT,
        "text_key": ONLY_TEXT,
        "label_key": ONLY_TEXT,
        "delim": ONLY_TEXT,
        "drop_unlabeled": ONLY_TEXT,
        "binarize_sent": ONLY_TEXT,
        "data_set_type": ONLY_TEXT,
        "lazy": ONLY_TEXT,
        "preprocess": ONLY_TEXT,
        "shuffle": ONLY_TEXT,
        "cache": ONLY_TEXT,
        "batch_size": "one text is read (or generated) at a time.",
        "persist_state": FRESH_STATE,
        "transpose": FRESH_STATE,
        "no_wrap": FRESH_STATE,
    }

    load_model: str | None = option(
        None,
        help="model directory, or a checkpoint name such as e0.pt in <experiment_dir>/<experiment_name>/<model_dir>/ "
        "(default: the model shipped with the package)",
        aliases=["model"],
    )
    text: str = option("The meaning of life is ", help="text to visualise; with -generate, the start of the text")
    neuron: int | None = option(
        None,
        help="unit whose cell state is drawn (default: the -classifier's sentiment unit, else the one recorded "
        "with the model; a negative one is drawn negated)",
    )
    classifier: str | None = option(
        None,
        help="results directory written by transfer (or its classifier.json): draw its sentiment unit (top unit, "
        "sign and layer) on the model it was fitted on (or -load_model, which must be that model)",
    )
    # (no declared range for -neuron and -layer: negatives mean something, and the model says how many there are)
    layer: int = option(-1, help="layer the unit belongs to (-1: the top one)")
    generate: bool = option(False, help="continue the text up to a total of seq_length bytes")
    seq_length: int = option(
        256, help="with -generate: total length in bytes of the prompt and its continuation", minimum=1,
        maximum=MAX_GENERATE_BYTES,
    )
    temperature: float = option(0.4, help="with -generate: sampling temperature (0: always the likeliest byte)", minimum=0,
        expect="0 (greedy) or more",
    )
    overwrite: float | None = option(
        None, help="with -generate: hold the unit's cell state at this value (e.g. +1 or -1) while generating",
        minimum=-MAX_HOLD, maximum=MAX_HOLD,
    )
    negate: bool = option(
        False,
        help="the unit is a negative-sentiment unit: flip its colours and the overwrite value "
        "(automatic for a saved sentiment unit of sign -1)",
    )
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="precision of the products; auto: bf16 where the hardware runs it natively, else fp32",
    )


COMMAND_CONFIG = VisualizeConfig
