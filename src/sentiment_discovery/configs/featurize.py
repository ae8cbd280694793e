"""The flags of ``sentiment-discovery featurize`` (run: :mod:`sentiment_discovery.recipes.featurize`)."""

import dataclasses

from ..foundation.choices import POOLINGS, PRECISIONS
from ..foundation.options import option, option_like
from .common import ExperimentConfig, FeatureOptions
from .transfer import TransferConfig


@dataclasses.dataclass(kw_only=True)
class FeaturizeConfig:
    model: str | None = option(
        None, help="model directory (config.json + model.safetensors); default: the model shipped with the package",
        aliases=["load_model"],
    )
    input: str = option(help="CSV/TSV/JSON/JSON Lines/text file of texts (optionally .gz)")
    output: str = option(help="where to write the features, a .npy file of float32 [texts, rnn_size]")
    text_key: str = option_like(FeatureOptions, "text_key")
    delim: str | None = option_like(FeatureOptions, "delim")
    batch_size: int = option(64, help="texts per batch (sorted by length)", minimum=1)
    layer: int = option_like(TransferConfig, "layer")
    pooling: str = option(
        "final", choices=POOLINGS, help="the cell state after each text's last byte (final) or its mean over the text (mean)"
    )
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="precision of the products; auto: bf16 where the hardware runs it natively, else fp32 (docs/performance.md)",
    )
    no_preprocess: bool = option_like(TransferConfig, "no_preprocess")
    cuda: bool = option_like(ExperimentConfig, "cuda")


COMMAND_CONFIG = FeaturizeConfig
