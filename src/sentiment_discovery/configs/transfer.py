"""The flags of ``sentiment-discovery transfer`` (run: :mod:`sentiment_discovery.recipes.transfer`)."""

import dataclasses

from ..foundation.choices import DEFAULT_C_GRID, POOLINGS
from ..foundation.options import option
from .common import SEED_MODEL_NO_OPS, SEED_PROCESS_NO_OPS, ExperimentConfig, FeatureOptions


def _default_c_grid() -> list[float]:
    return list(DEFAULT_C_GRID)


WHOLE_TEXTS = "each text is featurized whole, from a fresh state, in batches of texts of similar length."


@dataclasses.dataclass(kw_only=True)
class TransferConfig(FeatureOptions, ExperimentConfig):
    # 2017 flags that sentiment_transfer.py took and transfer ignores (flag -> why)
    NO_OP_FLAGS = {
        **SEED_MODEL_NO_OPS,
        **SEED_PROCESS_NO_OPS,
        "seq_length": WHOLE_TEXTS,
        "persist_state": WHOLE_TEXTS,
        "transpose": WHOLE_TEXTS,
        "no_wrap": WHOLE_TEXTS,
        "shuffle": "texts are featurized in file order (-split holds out a part drawn with -seed).",
        "lazy": "the labelled files are read whole; the features are cached on disk.",
        "cache": "the features are cached on disk instead (-feature_cache, -no_feature_cache).",
        "preprocess": "texts are always prepared as the model read text in training (-no_preprocess turns that off).",
    }

    load_model: str = option(
        help="model directory, or a checkpoint name such as e0.pt in <experiment_dir>/<experiment_name>/<model_dir>/",
        aliases=["model"],
    )
    train: str = option(help="labelled training file (CSV/TSV/JSON/JSON Lines, optionally .gz)")
    valid: str | None = option(None, help="labelled validation file; without it, -split holds out part of -train")
    test: str | None = option(None, help="test file; labelled unless -no_test_eval")
    label_key: str = option("label", help="column or key holding the label (0/1; any whole numbers with -multiclass)")
    split: float = option(
        0.9, help="without -valid: the fraction of -train kept for training, the rest validates", above=0, maximum=1
    )
    drop_unlabeled: bool = option(False, help="skip rows without a label instead of stopping")
    binarize_sent: bool = option(False, help="labels are ratings: the lower half of their range is 0, the upper 1")
    multiclass: bool = option(
        False, help="labels are any integers (such as 1-5 stars), each distinct training label a class; "
        "K > 2 classes are fitted one-vs-rest"
    )
    no_test_eval: bool = option(False, help="the test file has no labels: classify it, report no test accuracy")
    num_neurons: int = option(
        1, help="how many top units the n_neurons classifier uses", minimum=1,
        expect="between 1 and the model's units",  # the upper bound is the model's, checked once it is loaded
    )
    write_results: str | None = option(
        None, help="CSV of probabilities and top-unit values per test text (train text without -test)"
    )
    # (no declared range: -1 and other negatives count from the top, and the model says how many there are)
    layer: int = option(-1, help="layer whose cell state is the feature (-1: the top one)")
    pooling: str = option(
        "final",
        choices=POOLINGS,
        help="feature of a text: the cell state after its last byte (final, the paper's), its mean over "
        "the text's bytes (mean: far better from small models), its per-unit max, or all three joined (concat); "
        "the classifier records it",
    )
    no_preprocess: bool = option(False, help="feed the raw UTF-8 bytes without the release's padding and cleaning")
    c_grid: list[float] = option(
        default_factory=_default_c_grid,
        help="regularization strengths C tried, chosen on validation accuracy",
        above=0,
    )
    standardize: bool = option(False, help="scale each unit to mean 0, std 1 on train before the regression")
    jobs: int = option(0, help="regressions fitted in parallel (0: the usable cores, at most 4)", minimum=0)
    # (its bound, at least 1, holds only without -no_data_efficiency: checked in check_flags)
    data_efficiency_seeds: int = option(3, help="random subsets per size in the data-efficiency curve")
    no_data_efficiency: bool = option(False, help="skip the data-efficiency curve")
    cv: int = option(
        0,
        help="K-fold cross-validation of -train alone, as for MR, CR, SUBJ, MPQA (stratified, seeded with -seed, equal "
        "texts in one fold; C chosen on the next fold, never the test fold); 0: off",
        minimum=0,  # and 1 and 2 are refused where the folds are dealt, with the texts counted
        expect="a number of folds (10 is the usual), or 0 for no cross-validation",
    )


COMMAND_CONFIG = TransferConfig
