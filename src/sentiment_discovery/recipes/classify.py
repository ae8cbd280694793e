"""``sentiment-discovery classify``: label new, unlabelled texts with a classifier that ``transfer`` saved.

Writes one CSV row per input text, in input order: the text, the predicted label, the
probabilities of the full and top-unit classifiers, and the top units' values.
"""

import dataclasses
import sys

from .. import transfer
from ..checkpoint import load_model
from ..data.readers import read_texts
from ..errors import UserError
from ..options import option
from ..runtime import select_device
from .common import ExperimentConfig, resolve_load_model
from .transfer import FeatureOptions


@dataclasses.dataclass(kw_only=True)
class ClassifyConfig(FeatureOptions, ExperimentConfig):
    classifier: str = option(help="results directory written by transfer (or the classifier.json in it)")
    input: str = option(help="file of texts to label (CSV/TSV/JSON/JSON Lines/text, optionally .gz)")
    output: str = option(help="CSV to write: text, prediction, probabilities, top unit values")
    model: str | None = option(
        None,
        help="model directory or checkpoint name such as e0.pt (default: the model the classifier was fitted on)",
        aliases=["load_model"],
    )


COMMAND_CONFIG = ClassifyConfig


def run(config: ClassifyConfig) -> None:
    if not config.output.lower().endswith(".csv"):
        raise UserError(f"-output writes CSV; name the file .csv, not {config.output}")
    classifier = transfer.SentimentClassifier.load(config.classifier)
    model_path = resolve_load_model(config.model, config) if config.model else classifier.model.path
    texts = read_texts(config.input, config.text_key, fmt=config.input_format, delim=config.delim)
    if not texts:
        raise UserError(f"{config.input} holds no texts under {config.text_key!r}")
    model = load_model(model_path, device=select_device(config.cuda))
    identity = transfer.ModelIdentity.of(
        model, model_path, layer=classifier.model.layer, preprocess=classifier.model.preprocess
    )
    classifier.check_model(identity)
    features = transfer.featurize_cached(
        model, texts, identity, config.cache(config.experiment_path), batch_size=config.batch_size
    ).features
    written = transfer.write_predictions(config.output, texts, features, classifier, text_key=config.text_key)
    positive = int(classifier.predict(features).sum())
    print(f"{len(texts)} texts: {positive} positive, {len(texts) - positive} negative; wrote {written}", file=sys.stderr)
