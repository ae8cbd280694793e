"""The flags of ``sentiment-discovery classify`` (run: :mod:`sentiment_discovery.recipes.classify`)."""

import dataclasses

from ..foundation.options import option
from .common import ExperimentConfig, FeatureOptions


@dataclasses.dataclass(kw_only=True)
class ClassifyConfig(FeatureOptions, ExperimentConfig):
    classifier: str | None = option(
        None,
        help="results directory written by transfer (or the classifier.json in it); "
        "default: the classifier shipped with the package, on its default model",
    )
    text: list[str] | None = option(
        None, help="a text to label (before any -input texts)", repeatable=True, metavar="TEXT"
    )
    input: str | None = option(None, help="file of texts to label (CSV/TSV/JSON/JSON Lines/text, optionally .gz)")
    output: str | None = option(
        None,
        help="CSV to write: text, prediction, probabilities, top unit values; without it, one line per text is "
        "printed: probability positive, label, text (tab-separated)",
    )
    model: str | None = option(
        None,
        help="model directory or checkpoint name such as e0.pt (default: the model the classifier was fitted on)",
        aliases=["load_model"],
    )


COMMAND_CONFIG = ClassifyConfig
