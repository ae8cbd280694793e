"""Named models: the model cache that ``download`` and ``import-* --name`` fill (docs/models.md).

A model installed under a name lives in ``<cache>/models/<name>/``, an ordinary model
directory (``config.json`` + ``model.safetensors``). ``<cache>`` is
``$SENTIMENT_DISCOVERY_CACHE`` if set, else the platform's user cache: ``$XDG_CACHE_HOME``
(default ``~/.cache``) on Linux and other Unix systems, ``~/Library/Caches`` on macOS,
``%LOCALAPPDATA%`` on Windows, each with ``sentiment-discovery`` under it.

Every place that takes a model directory also takes a name: a directory that exists wins,
then an installed model of that name. This module reads ``config.json`` as plain JSON (no
torch), so ``sentiment-discovery models`` starts at once.
"""

import dataclasses
import json
import os
import re
import sys
from pathlib import Path

from .errors import UserError

CACHE_ENV = "SENTIMENT_DISCOVERY_CACHE"
APP_NAME = "sentiment-discovery"
MODELS_SUBDIR = "models"
DOWNLOADS_SUBDIR = "downloads"
CONFIG_FILE = "config.json"  # the model directory's (checkpoint.CONFIG_FILE), read here without torch

# The models ``sentiment-discovery download NAME`` fetches (their files: data/download.py).
DOWNLOADABLE = {
    "openai-mlstm": "OpenAI's released 4,096-unit byte mLSTM (Radford et al. 2017), sentiment unit 2388, 345 MB",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def cache_root() -> Path:
    """``$SENTIMENT_DISCOVERY_CACHE``, else the platform's user cache directory + ``sentiment-discovery``."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG specification ignores a relative path.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / APP_NAME


def models_root() -> Path:
    return cache_root() / MODELS_SUBDIR


def downloads_root() -> Path:
    """Where downloads wait, resumable, until verified and installed."""
    return cache_root() / DOWNLOADS_SUBDIR


def is_name(text: str | os.PathLike) -> bool:
    """Whether ``text`` can be a model's name: letters, digits, ``.``, ``_``, ``-``; no path separator."""
    text = os.fspath(text)
    return bool(_NAME.fullmatch(text)) and text not in (".", "..")


def check_name(name: str) -> str:
    if not is_name(name):
        raise UserError(
            f"{name!r} cannot name a model: use letters, digits, '.', '_' and '-' (no path separators), "
            "starting with a letter or digit"
        )
    return name


def named_directory(name: str) -> Path:
    """Where the model called ``name`` is (or would be) installed."""
    return models_root() / check_name(name)


def lookup(name: str | os.PathLike) -> Path | None:
    """The installed model directory called ``name``; None when there is none (or it is no name)."""
    if not is_name(name):
        return None
    directory = models_root() / os.fspath(name)
    if (directory / CONFIG_FILE).is_file():
        return directory
    previous = directory.with_name(directory.name + ".previous")  # a replacement cut off (checkpoint.py)
    return directory if (previous / CONFIG_FILE).is_file() else None


@dataclasses.dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    rnn_type: str
    units: int | None
    layers: int | None
    size_bytes: int
    source: str
    sentiment_unit: int | None


def _describe(directory: Path) -> InstalledModel | None:
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    unit = metadata.get("sentiment_unit")
    source = metadata.get("release") or metadata.get("source") or "local"
    size = sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
    return InstalledModel(
        name=directory.name,
        path=directory,
        rnn_type=str(model.get("rnn_type", "mlstm")),
        units=model.get("rnn_size") if isinstance(model.get("rnn_size"), int) else None,
        layers=model.get("layers") if isinstance(model.get("layers"), int) else None,
        size_bytes=size,
        source=str(source),
        sentiment_unit=unit if isinstance(unit, int) and not isinstance(unit, bool) else None,
    )


def installed() -> list[InstalledModel]:
    """The models in the cache, by name (a directory without a readable config.json is left out)."""
    root = models_root()
    if not root.is_dir():
        return []
    found = []
    for directory in sorted(root.iterdir()):
        if directory.is_dir() and is_name(directory.name) and (directory / CONFIG_FILE).is_file():
            described = _describe(directory)
            if described is not None:
                found.append(described)
    return found


def unknown_model_error(name: str) -> UserError:
    """One line: ``name`` is neither a directory nor an installed model; what is installed; how to get one."""
    names = [model.name for model in installed()]
    have = f"installed: {', '.join(names)}" if names else f"no model is installed in {models_root()}"
    fetch = " or ".join(f"`sentiment-discovery download {name}`" for name in DOWNLOADABLE)
    return UserError(
        f"no model {name!r}: not a model directory, nor an installed model ({have}); "
        f"fetch one with {fetch}, list them with `sentiment-discovery models`"
    )
