"""``sentiment-discovery import-openai SRC DEST`` and ``import-pytorch SRC DEST``.

Both commands share one config (``configs/importers.py``) and this run: the format is read from SRC itself (a folder of
.npy files is OpenAI's release or the port's export, a file is a PyTorch checkpoint), so
either name imports any supported source; the two names are what users look for. ``--name``
installs the model in the model cache instead of DEST (docs/models.md).
"""

from ..configs.importers import ImportConfig
from ..foundation import log, model_cache, storage, text
from ..foundation.errors import UserError
from ..importers import import_weights


def text_options(style: str):
    """The TextOptions of a --text style; None for authors (the importer's own choice)."""
    return {
        "authors": None, "openai": text.OPENAI_TEXT_OPTIONS, "nvidia-2017": text.NVIDIA_2017_TEXT_OPTIONS,
        "paper": text.PAPER_TEXT_OPTIONS, "project": text.TextOptions(),
    }[style]


def run(config: ImportConfig) -> None:
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
