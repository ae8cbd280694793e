"""Flags shared by several commands (the seed's layout), and the 2017 flags kept as no-ops.

Results go to ``<experiment_dir>/<experiment_name>/...``: model checkpoints under
``<model_dir>/``, metric histories under ``history/``, heatmaps under ``heatmaps/``,
transfer results under ``<dataset>/<model>/``.

The 2017 scripts shared one set of flags (model, data, device and process flags); each
command config's ``NO_OP_FLAGS`` table keeps the ones that mean nothing to it accepted as
no-ops, so that every 2017 command line still runs (docs/seed.md).
"""

import dataclasses
from pathlib import Path

from ..foundation.choices import FORMATS, PRECISIONS
from ..foundation.options import option


@dataclasses.dataclass(kw_only=True)
class ExperimentConfig:
    experiment_dir: str = option("./experiments", help="root directory for results, models and figures")
    experiment_name: str = option("mlstm", help="results are written to <experiment_dir>/<experiment_name>/")
    model_dir: str = option("model", help="subdirectory of the experiment that holds model checkpoints")
    cuda: bool = option(False, help="use the GPU; without one, a warning and the CPU")
    seed: int = option(1234, help="random seed", minimum=0, maximum=2**32 - 1)  # what NumPy accepts

    @property
    def experiment_path(self) -> Path:
        return Path(self.experiment_dir) / self.experiment_name

    @property
    def model_path(self) -> Path:
        return self.experiment_path / self.model_dir


# ---------------------------------------------------------------- 2017 flags kept as no-ops
# Each command config lists its own in a NO_OP_FLAGS table (flag name -> why it has no
# effect, the notice printed when it is given); these are the parts the tables share.

ARCHITECTURE = "the architecture is read from the model directory (config.json)."
ONE_PROCESS = "this command runs in one process, on the CPU or (-cuda) one GPU."

# The 2017 model flags, which every script took; a model directory now says what it is.
SEED_MODEL_NO_OPS = {
    "should_test": "this command does not train.",
    "rnn_type": ARCHITECTURE,
    "embed_size": ARCHITECTURE,
    "rnn_size": ARCHITECTURE,
    "layers": ARCHITECTURE,
    "dropout": ARCHITECTURE,
    "weight_norm": ARCHITECTURE,
    "lstm_only": ARCHITECTURE,
    "data_size": "the model always reads bytes, 256 values.",
}

# The 2017 device and process flags, which only training uses now.
SEED_PROCESS_NO_OPS = {
    "num_gpus": ONE_PROCESS,
    "benchmark": "only training lets cuDNN pick its kernels.",
    "distributed": ONE_PROCESS,
    "rank": ONE_PROCESS,
    "world_size": ONE_PROCESS,
    "verbose": ONE_PROCESS,
}


@dataclasses.dataclass(kw_only=True)
class FeatureOptions:
    """Flags shared by ``transfer`` and ``classify``: reading the files and featurizing them."""

    text_key: str = option("sentence", help="column or key holding the text")
    input_format: str | None = option(
        None, help="file format (default: from the extension)", choices=FORMATS, aliases=["data_set_type"]
    )
    delim: str | None = option(None, help="column delimiter for delimited files (default: by extension)")
    batch_size: int = option(64, help="texts per featurization batch (sorted by length)", minimum=1)
    feature_cache: str | None = option(
        None, help="directory of cached features (default: <experiment_dir>/<experiment_name>/feature_cache)"
    )
    no_feature_cache: bool = option(False, help="featurize again instead of reading and writing cached features")
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="precision of the featurizing products; auto: bf16 where the hardware runs it natively (about twice "
        "as fast as fp32), else fp32; a classifier records the one it was fitted on, classify need not match it",
    )
