"""``sentiment-discovery import-openai SRC DEST`` and ``import-pytorch SRC DEST``.

Both commands share this config and run: the format is read from SRC itself (a folder of
.npy files is OpenAI's release or the port's export, a file is a PyTorch checkpoint), so
either name imports any supported source; the two names are what users look for.
"""

import dataclasses

from .. import log
from ..options import option


@dataclasses.dataclass(kw_only=True)
class ImportConfig:
    src: str = option(
        help="OpenAI's model/ folder (0.npy ... 14.npy), the port's NumPy export folder, "
        "or a 2017 PyTorch reproduction checkpoint (.pt)",
        positional=True,
        metavar="SRC",
    )
    dest: str = option(
        help="model directory to write (config.json + model.safetensors)", positional=True, metavar="DEST"
    )
    overwrite: bool = option(False, help="replace DEST if it already holds something")


COMMAND_CONFIG = ImportConfig


def run(config: ImportConfig) -> None:
    from ..importers import import_weights  # lazy, not at the top: `--help` should not wait for torch

    model = import_weights(config.src, config.dest, overwrite=config.overwrite, progress=True)
    cfg = model.config
    parameters = sum(p.numel() for p in model.parameters())
    unit = model.metadata.get("sentiment_unit")
    log.info(
        f"imported {model.metadata['source']} {model.metadata['layout']} from {config.src}: {cfg.rnn_type}, "
        f"{cfg.layers} layer(s) of {cfg.rnn_size} units, embed_size {cfg.embed_size}, "
        f"{parameters / 1e6:.1f}M parameters -> {config.dest}"
        + (f" (sentiment unit {unit})" if unit is not None else "")
    )
    if "output_layer" in model.metadata:
        note = model.metadata["output_layer"]
        log.notice(f"output layer {note}: features are exact, next-byte predictions are not")
