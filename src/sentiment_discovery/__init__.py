"""Byte-level mLSTM language models, sentiment-neuron transfer and visualisation.

Reproduces "Learning to Generate Reviews and Discovering Sentiment" (Radford et al., 2017).
"""

from .checkpoint import load_model, save_model
from .errors import UserError
from .features import featurize
from .model import ByteLM, CellOverwrite, ModelConfig, RNNState
from .text import TextOptions, preprocess_text

__version__ = "0.1.0"

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
