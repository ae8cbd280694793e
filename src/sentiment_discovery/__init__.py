"""Byte-level mLSTM language models, sentiment-neuron transfer and visualisation.

Reproduces "Learning to Generate Reviews and Discovering Sentiment" (Radford et al., 2017).
"""

import importlib

from .errors import UserError
from .text import TextOptions, preprocess_text

__version__ = "0.1.0"

# The names below that need torch are imported on first use (PEP 562), not with the
# package: the command line imports the package, and `--help` should not wait for torch.
_LAZY = {
    "ByteLM": ".model",
    "CellOverwrite": ".model",
    "ModelConfig": ".model",
    "RNNState": ".model",
    "featurize": ".features",
    "load_model": ".checkpoint",
    "save_model": ".checkpoint",
}

__all__ = [
    "ByteLM",
    "CellOverwrite",
    "ModelConfig",
    "RNNState",
    "TextOptions",
    "UserError",
    "featurize",
    "load_model",
    "preprocess_text",
    "save_model",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
