"""``sentiment-discovery import-openai SRC DEST`` and ``import-pytorch SRC DEST``.

Both commands share this config and run: the format is read from SRC itself (a folder of
.npy files is OpenAI's release or the port's export, a file is a PyTorch checkpoint), so
either name imports any supported source; the two names are what users look for. ``--name``
installs the model in the model cache instead of DEST (docs/models.md).
"""

import dataclasses

from .. import log, model_cache
from ..errors import UserError
from ..options import option

# --text: how the imported model prepares text (docs/importing.md).
TEXT_STYLES = ("authors", "openai", "nvidia-2017", "paper", "project")
# The importer's own GATE_LAYOUTS (importers.py imports torch, which --help should not wait for).
GATE_LAYOUTS = ("auto", "unfused", "fused", "fused-cuda")


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


def text_options(style: str):
    """The TextOptions of a --text style; None for authors (the importer's own choice)."""
    from .. import text  # lazy: --help imports this module, and the text options are needed only here

    return {
        "authors": None, "openai": text.OPENAI_TEXT_OPTIONS, "nvidia-2017": text.NVIDIA_2017_TEXT_OPTIONS,
        "paper": text.PAPER_TEXT_OPTIONS, "project": text.TextOptions(),
    }[style]


def run(config: ImportConfig) -> None:
    # lazy, not at the top: `--help` should not wait for torch
    from .. import storage
    from ..importers import import_weights

    if (config.dest is None) == (config.name is None):
        both = ", not both" if config.dest is not None else ""
        raise UserError(f"give DEST (a model directory to write) or --name NAME (install it in the model cache){both}")
    dest = config.dest if config.name is None else model_cache.named_directory(config.name)
    if config.name is not None and model_cache.lookup(config.name) is not None and not config.overwrite:
        raise UserError(f"a model called {config.name} is already installed ({dest}); pass --overwrite to replace it")
    with storage.output_lock(dest, what="model"):
        model = import_weights(
            config.src, dest, overwrite=config.overwrite, progress=True, gate_layout=config.gate_layout,
            text_options=text_options(config.text),
        )
    cfg = model.config
    parameters = sum(p.numel() for p in model.parameters())
    unit = model.metadata.get("sentiment_unit")
    log.info(
        f"imported {model.metadata['source']} {model.metadata['layout']} from {config.src}: {cfg.rnn_type}, "
        f"{cfg.layers} layer(s) of {cfg.rnn_size} units, embed_size {cfg.embed_size}, "
        f"{parameters / 1e6:.1f}M parameters -> {dest}"
        + (f" (sentiment unit {unit})" if unit is not None else "")
    )
    if "output_layer" in model.metadata:
        note = model.metadata["output_layer"]
        log.notice(f"output layer {note}: features are exact, next-byte predictions are not")
