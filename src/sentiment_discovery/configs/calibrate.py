"""The flags of ``sentiment-discovery calibrate`` (run: :mod:`sentiment_discovery.recipes.calibrate`)."""

import dataclasses

from ..foundation.choices import PRECISIONS
from ..foundation.options import option, option_like
from .common import FeatureOptions


@dataclasses.dataclass(kw_only=True)
class CalibrateConfig:
    classifier: str = option(help="results directory of a binary classifier (transfer or finetune), or its classifier.json")
    valid: str = option(help="labelled held-out selection file: the temperature, the n-gram C and the blend are chosen on it")
    out: str = option(help="new directory to write the calibrated classifier into (with a copy of its model)")
    ngrams: bool = option(False, help="fit an n-gram part on -train and keep the blend where it beats both parts on -valid")
    train: str | None = option(None, help="labelled training file of the n-gram part (with -ngrams)")
    domain_key: str | None = option(
        None, help="column of -valid naming each text's domain: choices are by the mean of the domains' accuracies"
    )
    text_key: str = option_like(FeatureOptions, "text_key")
    label_key: str = option("label", help="column or key holding the label (0 or 1)")
    batch_size: int = option_like(FeatureOptions, "batch_size")
    precision: str = option("auto", choices=PRECISIONS, help="precision of the featurizing products (as classify's)")
    seed: int = option(1234, help="random seed of the n-gram regression", minimum=0, maximum=2**32 - 1)


COMMAND_CONFIG = CalibrateConfig
