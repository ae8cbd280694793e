"""Flags and paths shared by the train, transfer and visualize recipes (the seed's layout).

Results go to ``<experiment_dir>/<experiment_name>/...``: model checkpoints under
``<model_dir>/``, metric histories under ``history/``, heatmaps under ``heatmaps/``,
transfer results under ``<dataset>/<model>/``.

The 2017 scripts shared one set of flags (model, data, device and process flags); each
command config's ``NO_OP_FLAGS`` table keeps the ones that mean nothing to it accepted as
no-ops, so that every 2017 command line still runs (docs/seed.md).
"""

import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import log, model_cache
from ..choices import FORMATS
from ..errors import UserError
from ..options import option
from ..precision import PRECISIONS

if TYPE_CHECKING:
    from .. import transfer


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


# ---------------------------------------------------------------- -load_model


def resolve_load_model(name: str, config: ExperimentConfig, say=None) -> Path:
    """The model directory that ``-load_model NAME`` means.

    NAME is a model directory, the name of an installed model (docs/models.md), or (as in the 2017 commands) a checkpoint name such as
    ``e0.pt`` looked up in ``<experiment_dir>/<experiment_name>/<model_dir>/``, where it
    names the model directory ``e0``. As in 2017, where ``e<K>.pt`` was saved when epoch K's
    loop ended, early (-max_iters, a stop) or not, ``e<K>.pt`` of an epoch that never
    finished is that epoch's newest checkpoint (``iter<N>``), with a notice (to ``say``,
    default the package's logger).
    """
    path = Path(name)
    if path.is_dir():
        return path
    stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.name
    candidates = [config.model_path / stem, config.model_path / path.name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    named = model_cache.lookup(name)
    if named is not None:
        return named
    if path.is_file():
        from ..checkpoint import not_a_model_directory  # lazy: checkpoint imports torch (start-up time)

        raise not_a_model_directory(path)
    epoch = re.fullmatch(r"e(\d+)", stem) if path.name.endswith(".pt") and path.parent == Path(".") else None
    if epoch:
        unfinished = _newest_checkpoint_of_epoch(config.model_path, int(epoch.group(1)))
        if unfinished is not None:
            (say or log.say)(
                f"notice: -load_model {name}: epoch {epoch.group(1)} did not finish (no {candidates[0]}); "
                f"using its newest checkpoint, {unfinished}"
            )
            return unfinished
    held = _checkpoint_names(config.model_path)
    there = f"; {config.model_path} holds {held}" if held else ""
    if model_cache.is_name(name) and not held and not name.endswith(".pt"):  # e0.pt names a checkpoint
        raise model_cache.unknown_model_error(name)
    raise UserError(f"no model {name!r}: not a directory, and {candidates[0]} does not exist{there}")


def _checkpoint_names(model_path: Path) -> str:
    # lazy: checkpoint imports torch, which --help should not wait for
    from ..checkpoint import model_directories

    names = [directory.name for directory in model_directories(model_path)]
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


def _newest_checkpoint_of_epoch(model_path: Path, epoch: int) -> Path | None:
    # lazy: checkpoint imports torch, which --help should not wait for
    from ..checkpoint import list_checkpoints, read_state_json

    for _, directory in reversed(list_checkpoints(model_path)):
        if directory.name.startswith("iter") and read_state_json(directory).get("epoch") == epoch:
            return directory
    return None


def print_result(line: str) -> None:
    """Print a result line on stdout; a character the terminal's encoding cannot show becomes
    "?" rather than a crash (classify's rows, visualize's generated text)."""
    encoding = sys.stdout.encoding or "utf-8"
    print(line.encode(encoding, errors="replace").decode(encoding))


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

    def cache(self, experiment_path: Path) -> "transfer.FeatureCache | None":
        if self.no_feature_cache:
            return None
        from .. import transfer  # lazy: transfer imports torch and scikit-learn (start-up time)

        return transfer.FeatureCache(self.feature_cache or experiment_path / "feature_cache")
