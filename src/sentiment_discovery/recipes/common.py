"""Flags and paths shared by the train, transfer and visualize recipes (the seed's layout).

Results go to ``<experiment_dir>/<experiment_name>/...``: model checkpoints under
``<model_dir>/``, metric histories under ``history/``, heatmaps under ``heatmaps/``,
transfer results under ``<dataset>/<model>/``.
"""

import dataclasses
from pathlib import Path

from ..errors import UserError
from ..options import option


@dataclasses.dataclass(kw_only=True)
class ExperimentConfig:
    experiment_dir: str = option("./experiments", help="root directory for results, models and figures")
    experiment_name: str = option("mlstm", help="results are written to <experiment_dir>/<experiment_name>/")
    model_dir: str = option("model", help="subdirectory of the experiment that holds model checkpoints")
    cuda: bool = option(False, help="use the GPU; without one, a warning and the CPU")
    seed: int = option(1234, help="random seed")

    @property
    def experiment_path(self) -> Path:
        return Path(self.experiment_dir) / self.experiment_name

    @property
    def model_path(self) -> Path:
        return self.experiment_path / self.model_dir


def resolve_load_model(name: str, config: ExperimentConfig) -> Path:
    """The model directory that ``-load_model NAME`` means.

    NAME is a model directory, or (as in the 2017 commands) a checkpoint name such as
    ``e0.pt`` looked up in ``<experiment_dir>/<experiment_name>/<model_dir>/``, where it
    names the model directory ``e0``.
    """
    path = Path(name)
    if path.is_dir():
        return path
    stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.name
    candidates = [config.model_path / stem, config.model_path / path.name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if path.is_file():
        raise UserError(
            f"{path} is a PyTorch file, not a model directory; convert it once with "
            f"`sentiment-discovery import-pytorch {path} DEST` and pass DEST"
        )
    raise UserError(f"no model {name!r}: not a directory, and {candidates[0]} does not exist")
