"""Byte-level mLSTM language models, sentiment-neuron transfer and visualisation.

Reproduces "Learning to Generate Reviews and Discovering Sentiment" (Radford et al., 2017).

The public names are imported on first use (PEP 562), not with the package: the CLI
(``sentiment_discovery.cli``) then starts without importing torch, so a Ctrl-C while it
starts up lands inside its handler (one line, exit status 130), never in an import.
"""

import importlib

from .foundation.errors import UserError

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "load_model": ".checkpoint",
    "save_model": ".checkpoint",
    "featurize": ".features",
    "ByteLM": ".model",
    "CellOverwrite": ".model",
    "ModelConfig": ".model",
    "RNNState": ".model",
    "TextOptions": ".foundation.text",
    "preprocess_text": ".foundation.text",
}

__all__ = sorted([*_LAZY, "UserError"])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
