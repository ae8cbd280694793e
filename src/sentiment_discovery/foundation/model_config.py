"""The architecture of a byte-level language model, in a module that imports no torch.

:class:`ModelConfig` is the one declaration of the architecture settings: their defaults,
help text and allowed values. ``train`` and ``benchmark`` take their architecture flags from
these fields (``options.option_like``), so ``4096`` is written here only; the model
(``model.py``, which re-exports the class) and every ``config.json`` read them too.
"""

import dataclasses

from .choices import RNN_TYPES
from .options import check_options, option
from .storage import dataclass_from_dict


@dataclasses.dataclass
class ModelConfig:
    """Architecture of a :class:`ByteLM`; saved as the ``model`` section of ``config.json``."""

    rnn_type: str = option("mlstm", choices=RNN_TYPES, help="recurrent layer type")
    embed_size: int = option(64, help="byte embedding size", minimum=1)
    rnn_size: int = option(4096, help="units per recurrent layer", minimum=1)
    layers: int = option(1, help="stacked recurrent layers", minimum=1)
    dropout: float = option(0.0, help="dropout on each layer's output", minimum=0, below=1)
    weight_norm: bool = option(False, help="weight normalisation of the recurrent (and output) weights")
    lstm_only: bool = option(False, help="with -weight_norm, only the recurrent weights (as the paper)")

    def __post_init__(self) -> None:
        check_options(self, prefix="")  # "rnn_size must be at least 1, not 0": a setting, not a flag, here

    @property
    def normalize_output(self) -> bool:
        """Weight norm on the output layer too (``weight_norm`` without ``lstm_only``)."""
        return self.weight_norm and not self.lstm_only

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """From ``config.json``: every key stated (a default would silently build another architecture)."""
        return dataclass_from_dict(cls, values, "model config key", require_all=True)


# The architecture settings, in declaration order (the flags train takes for them).
ARCHITECTURE_SETTINGS = tuple(field.name for field in dataclasses.fields(ModelConfig))
