"""The architecture of a byte-level language model, in a module that imports no torch.

:class:`ModelConfig` is the one declaration of the architecture settings: their defaults,
help text and allowed values. ``train`` and ``benchmark`` take their architecture flags from
these fields (``options.option_like``), so ``4096`` is written here only; the model
(``model.py``, which re-exports the class) and every ``config.json`` read them too.
"""

import dataclasses

from .choices import RNN_TYPES
from .errors import UserError
from .options import option
from .storage import dataclass_from_dict


@dataclasses.dataclass
class ModelConfig:
    """Architecture of a :class:`ByteLM`; saved as the ``model`` section of ``config.json``."""

    rnn_type: str = option("mlstm", choices=RNN_TYPES, help="recurrent layer type")
    embed_size: int = option(64, help="byte embedding size")
    rnn_size: int = option(4096, help="units per recurrent layer")
    layers: int = option(1, help="stacked recurrent layers")
    dropout: float = option(0.0, help="dropout on each layer's output")
    weight_norm: bool = option(False, help="weight normalisation of the recurrent (and output) weights")
    lstm_only: bool = option(False, help="with -weight_norm, only the recurrent weights (as the paper)")

    def __post_init__(self) -> None:
        if self.rnn_type not in RNN_TYPES:
            raise UserError(f"rnn_type must be one of {', '.join(RNN_TYPES)}, not {self.rnn_type!r}")
        for name in ("embed_size", "rnn_size", "layers"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), not {self.dropout}")

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
