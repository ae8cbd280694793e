"""The flags of ``sentiment-discovery import-openai`` and ``import-pytorch`` (run:
:mod:`sentiment_discovery.recipes.importers`), which share them."""

import dataclasses

from ..foundation.choices import GATE_LAYOUTS
from ..foundation.options import option

# --text: how the imported model prepares text (docs/importing.md).
TEXT_STYLES = ("authors", "openai", "nvidia-2017", "paper", "project")


@dataclasses.dataclass(kw_only=True)
class ImportConfig:
    src: str = option(
        help="OpenAI's model/ folder (0.npy ... 14.npy), the port's NumPy export folder, "
        "or a 2017 PyTorch reproduction checkpoint (.pt)",
        positional=True,
        metavar="SRC",
    )
    dest: str | None = option(
        None, help="model directory to write (config.json + model.safetensors); or give --name",
        positional=True, metavar="DEST",
    )
    name: str | None = option(
        None, help="install the model in the model cache under this name (see `sentiment-discovery models`) "
        "instead of writing DEST"
    )
    overwrite: bool = option(False, help="replace DEST (or the installed model called --name) if it exists")
    text: str = option(
        "authors", choices=TEXT_STYLES,
        help="how the model prepares text: authors (as the weights' authors' code did: openai for OpenAI's "
        "release, nvidia-2017 for a 2017 PyTorch checkpoint), openai, nvidia-2017, paper (section 4's "
        "cleaning) or project (this package's default); docs/importing.md",
    )
    gate_layout: str = option(
        "auto", choices=GATE_LAYOUTS,
        help="gate order of a 2017 first-release mLSTM checkpoint: unfused (i, f, o, u), fused (-fuse_lstm: "
        "i, f, g, o), fused-cuda (the same, recurrent bias dropped as CUDA's fused kernel did), auto (the "
        "checkpoint's saved -fuse_lstm flag, else unfused)",
    )


COMMAND_CONFIG = ImportConfig
