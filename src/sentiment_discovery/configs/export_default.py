"""The flags of ``sentiment-discovery export-default`` (run: :mod:`sentiment_discovery.recipes.export_default`)."""

import dataclasses

from ..foundation.locations import ENV_VAR
from ..foundation.options import option


@dataclasses.dataclass(kw_only=True)
class ExportDefaultConfig:
    model: str = option(help="model directory the classifier was fitted on (config.json + model.safetensors)")
    classifier: str = option(help="results directory written by transfer (or the classifier.json in it)")
    bf16: bool = option(
        False, help="store the weights in bfloat16: half the size on disk; the classifier's probabilities are checked"
    )
    out: str | None = option(
        None,
        help=f"directory to install into (default: ${ENV_VAR}, else the package's default_model/)",
    )


COMMAND_CONFIG = ExportDefaultConfig
