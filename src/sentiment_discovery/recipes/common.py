"""What several recipes share: the model that ``-load_model`` names, and the feature cache.

Their shared flags (``ExperimentConfig``, ``FeatureOptions``, the 2017 no-op tables) are in
:mod:`sentiment_discovery.configs.common`.
"""

import re
from pathlib import Path

from .. import transfer
from ..checkpoint import list_checkpoints, model_directories, not_a_model_directory, read_state_json
from ..configs.common import ExperimentConfig, FeatureOptions
from ..foundation import log, model_cache
from ..foundation.errors import UserError

# ---------------------------------------------------------------- -load_model


def resolve_load_model(name: str, config: ExperimentConfig) -> Path:
    """The model directory that ``-load_model NAME`` means.

    NAME is a model directory, the name of an installed model (docs/models.md), or (as in the 2017 commands) a checkpoint name such as
    ``e0.pt`` looked up in ``<experiment_dir>/<experiment_name>/<model_dir>/``, where it
    names the model directory ``e0``. As in 2017, where ``e<K>.pt`` was saved when epoch K's
    loop ended, early (-max_iters, a stop) or not, ``e<K>.pt`` of an epoch that never
    finished is that epoch's newest checkpoint (``iter<N>``), with a notice.
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
        raise not_a_model_directory(path)
    epoch = re.fullmatch(r"e(\d+)", stem) if path.name.endswith(".pt") and path.parent == Path(".") else None
    if epoch:
        unfinished = _newest_checkpoint_of_epoch(config.model_path, int(epoch.group(1)))
        if unfinished is not None:
            log.notice(
                f"-load_model {name}: epoch {epoch.group(1)} did not finish (no {candidates[0]}); "
                f"using its newest checkpoint, {unfinished}"
            )
            return unfinished
    held = _checkpoint_names(config.model_path)
    there = f"; {config.model_path} holds {held}" if held else ""
    if model_cache.is_name(name) and not held and not name.endswith(".pt"):  # e0.pt names a checkpoint
        raise model_cache.unknown_model_error(name)
    raise UserError(f"no model {name!r}: not a directory, and {candidates[0]} does not exist{there}")


def _checkpoint_names(model_path: Path) -> str:
    names = [directory.name for directory in model_directories(model_path)]
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


def _newest_checkpoint_of_epoch(model_path: Path, epoch: int) -> Path | None:
    for _, directory in reversed(list_checkpoints(model_path)):
        if directory.name.startswith("iter") and read_state_json(directory).get("epoch") == epoch:
            return directory
    return None


def feature_cache(options: FeatureOptions, experiment_path: Path) -> "transfer.FeatureCache | None":
    """The feature cache that ``transfer`` and ``classify`` read and write (None with -no_feature_cache)."""
    if options.no_feature_cache:
        return None

    return transfer.FeatureCache(options.feature_cache or experiment_path / "feature_cache")
