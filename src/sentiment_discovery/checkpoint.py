"""The model directory: ``config.json`` + ``model.safetensors``, saved atomically.

A save writes a complete ``<dir>.partial`` and then swaps it in with renames, so a crash at
any point leaves either the previous model or the new one loadable; ``<dir>.previous``
exists only between the two renames and is loaded (with a notice) if the swap was cut off.

A training checkpoint of ``train`` is a model directory named ``e<epoch>`` or ``iter<N>``
that also holds the training state (``training_state.json``, ``training_state.pt``, written
by :mod:`sentiment_discovery.training`); naming and listing them is here, beside the model
directory, for the commands that only read them (``transfer``, ``visualize``, ``-load_model``).
"""

import os
import re
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .foundation import log, model_cache, storage
from .foundation.errors import UserError
from .foundation.locations import model_directory
from .foundation.text import TextOptions
from .model import ByteLM, ModelConfig

FORMAT_NAME = "sentiment-discovery-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

STATE_FORMAT = "sentiment-discovery-training-state"
STATE_FORMAT_VERSION = 1
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.pt"
CHECKPOINT_NAME = re.compile(r"^(e|iter)(\d+)$")


def model_config_dict(model: ByteLM, metadata: dict | None = None) -> dict:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": asdict(model.config),
        "text": asdict(model.text_options),
        "metadata": metadata or {},
    }


def save_model(
    model: ByteLM, directory: str | os.PathLike, metadata: dict | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Save ``model`` as a model directory; ``dtype`` (e.g. bfloat16) shrinks the stored weights."""
    directory = Path(directory)
    with storage.replace_directory(directory) as staging:
        write_model_files(model, staging, metadata, dtype)
    return directory


def write_model_files(
    model: ByteLM, directory: Path, metadata: dict | None = None, dtype: torch.dtype | None = None
) -> None:
    """``config.json`` and ``model.safetensors`` into ``directory`` (a staging directory: see :func:`save_model`)."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    if metadata is None:
        metadata = getattr(model, "metadata", {})
    save_file(tensors, directory / WEIGHTS_FILE, metadata={"format": FORMAT_NAME})
    (directory / CONFIG_FILE).write_text(storage.json_text(model_config_dict(model, metadata), sort_keys=True))


def update_model_metadata(directory: str | os.PathLike, **values) -> Path:
    """Add ``values`` to a model's ``config.json`` metadata; the weights (and their hash) stay the same.

    Only explicit acts call this (``export-default``); nothing that evaluates a model does.
    """
    directory = Path(directory)
    config = read_model_config(directory)
    config["metadata"] = {**(config.get("metadata") or {}), **values}
    return storage.write_json(directory / CONFIG_FILE, config, sort_keys=True)


def resolve_model_directory(path: str | os.PathLike) -> Path:
    """The directory to load: ``path`` itself, or its ``.previous`` copy after a cut-off save.

    ``path`` may also be the name of an installed model (``sentiment-discovery models``); a
    directory of that name, where the command runs, wins.
    """
    given = os.fspath(path)
    path = Path(path)
    if not path.exists() and not path.with_name(path.name + ".previous").is_dir():
        named = model_cache.lookup(given)
        if named is not None:
            path = named
        elif model_cache.is_name(given):
            raise model_cache.unknown_model_error(given)
    if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if path.is_dir():
        return path
    previous = path.with_name(path.name + ".previous")
    if previous.is_dir():
        log.notice(f"{path} was being replaced when a save stopped; loading {previous}")
        return previous
    if path.is_file():
        raise not_a_model_directory(path)
    raise UserError(f"model directory {path} does not exist")


def not_a_model_directory(path: Path) -> UserError:
    """The error for a file given where a model directory belongs: a 2017 checkpoint is named as such."""
    if path.suffix.lower() in (".pt", ".pth"):
        return UserError(
            f"{path} is a PyTorch file, not a model directory; convert it once with "
            f"`sentiment-discovery import-pytorch {path} DEST` and pass DEST"
        )
    return UserError(
        f"{path} is a file, not a model directory ({CONFIG_FILE} + {WEIGHTS_FILE}); import published weights "
        "with `sentiment-discovery import-openai` or `import-pytorch`"
    )


def read_model_config(directory: Path) -> dict:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{config_path} is missing; a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    config = storage.read_json(config_path, FORMAT_NAME, FORMAT_VERSION, what="config")
    for key in ("model", "text"):
        if not isinstance(config.get(key), dict):
            raise UserError(f"{config_path} has no '{key}' section")
    return config


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> ByteLM:
    """Load a model directory; any problem is one :class:`UserError` naming the file.

    ``path`` is a model directory or the name of an installed model (``openai-mlstm``,
    see docs/models.md). Without ``path``, the default model shipped in the package (or the
    one that ``$SENTIMENT_DISCOVERY_DEFAULT_MODEL`` names); see ``docs/default_model.md``.
    """
    if path is None:
        path = model_directory()
    directory = resolve_model_directory(path)
    config = read_model_config(directory)
    try:
        model_config = ModelConfig.from_dict(config["model"])
        text_options = TextOptions.from_dict(config["text"])
    except TypeError as error:
        raise UserError(f"{directory / CONFIG_FILE}: {error}") from None
    except UserError as error:
        raise UserError(f"{directory / CONFIG_FILE}: {error}") from None
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise UserError(f"{weights_path} is missing")
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{weights_path} is truncated or corrupt ({error})") from None
    model = ByteLM(model_config, text_options)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:5])}")
        raise UserError(f"{weights_path} does not match {CONFIG_FILE} ({'; '.join(detail)})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise UserError(
                f"{weights_path}: tensor {name} has shape {list(tensor.shape)} but {CONFIG_FILE} "
                f"implies {list(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(
                f"{weights_path}: tensor {name} holds NaN or infinite values, so every feature would be NaN; "
                "the model is damaged (use an earlier checkpoint)"
            )
    model.load_state_dict({name: tensor.float() for name, tensor in tensors.items()})
    model.metadata = config.get("metadata", {})
    return model.to(device).eval()


# --------------------------------------------------------------------------- training checkpoints


def read_state_json(directory: Path) -> dict:
    """The JSON record of a training checkpoint (``training_state.json``), checked."""
    path = Path(directory) / STATE_JSON
    if not path.is_file():
        raise UserError(f"{directory} is a model directory without {STATE_JSON}: not a training checkpoint")
    info = storage.read_json(path, STATE_FORMAT, STATE_FORMAT_VERSION)
    missing = [key for key in ("iteration", "data_position") if key not in info]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: the checkpoint is damaged")
    return info


def list_checkpoints(model_path: Path) -> list[tuple[int, Path]]:
    """Complete training checkpoints under ``model_path`` as (iteration, directory), oldest first."""
    found = []
    if not model_path.is_dir():
        return found
    for directory in model_path.iterdir():
        if not (directory.is_dir() and CHECKPOINT_NAME.match(directory.name)):
            continue
        if not all((directory / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_TENSORS, STATE_JSON)):
            continue
        try:
            iteration = int(read_state_json(directory)["iteration"])
        except (UserError, KeyError, TypeError, ValueError):
            continue
        # At equal iterations an epoch checkpoint counts as the newer one.
        found.append((iteration, directory.name.startswith("e"), directory))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(iteration, directory) for iteration, _, directory in found]


def model_directories(model_path: Path) -> list[Path]:
    """Every ``e<N>``/``iter<N>`` directory, complete training checkpoint or not."""
    if not model_path.is_dir():
        return []
    return sorted(p for p in model_path.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name))
