"""Where the default model and classifier live: names and paths only, no loading.

The package data directory ``sentiment_discovery/default_model/`` (or the directory that
``$SENTIMENT_DISCOVERY_DEFAULT_MODEL`` names) holds ``model/``, ``classifier/`` and, beside
a fine-tuned default, ``frozen/`` with the same two (``defaults`` describes the layout and
installs one). The loaders (``checkpoint.load_model``, ``transfer.SentimentClassifier.load``)
and ``defaults`` all find them here, so this module imports nothing of the package but
its errors: the imports between those modules then run one way.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError

ENV_VAR = "SENTIMENT_DISCOVERY_DEFAULT_MODEL"
PACKAGE_DIRECTORY = Path(__file__).resolve().parents[1] / "default_model"  # the package's, beside foundation/
MODEL_SUBDIR = "model"
CLASSIFIER_SUBDIR = "classifier"
# The pre-trained model and its frozen-feature classifier, shipped beside a fine-tuned default.
FROZEN_SUBDIR = "frozen"
# The file a fitted classifier is saved as, in its results directory.
CLASSIFIER_FILE = "classifier.json"
MODEL_PART = f"{MODEL_SUBDIR}/config.json"
CLASSIFIER_PART = f"{CLASSIFIER_SUBDIR}/{CLASSIFIER_FILE}"

GET_A_MODEL = (
    "train one with `sentiment-discovery train` or convert published weights with "
    "`sentiment-discovery import-openai`"
)
INSTALL = "or install a default model with `sentiment-discovery export-default`"


def default_directory() -> Path:
    """``$SENTIMENT_DISCOVERY_DEFAULT_MODEL`` if set, else the package's ``default_model/``."""
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser() if value else PACKAGE_DIRECTORY


def _describe(root: Path) -> str:
    return f"{root} (${ENV_VAR})" if os.environ.get(ENV_VAR) else str(root)


def require(parts: Sequence[str], hint: str) -> Path:
    """The default directory, or one ``UserError`` naming the parts of it that are missing.

    ``parts`` are paths relative to the default directory, e.g. ``model/config.json``.
    """
    root = default_directory()
    missing = [part for part in parts if not (root / part).is_file()]
    if missing:
        raise UserError(f"no default model installed: {_describe(root)} lacks {' and '.join(missing)}; {hint}")
    return root


def model_directory(hint: str | None = None) -> Path:
    """The default model directory; ``hint`` ends the error when it is missing."""
    hint = hint or f"pass a model directory ({GET_A_MODEL}), {INSTALL}"
    return require([MODEL_PART], hint) / MODEL_SUBDIR


def classifier_directory(hint: str | None = None) -> Path:
    """The default classifier's directory (with the model it needs)."""
    hint = hint or f"pass a classifier (the results directory `sentiment-discovery transfer` writes), {INSTALL}"
    return require([MODEL_PART, CLASSIFIER_PART], hint) / CLASSIFIER_SUBDIR


def frozen_classifier_directory() -> Path:
    """The frozen-feature classifier shipped beside a fine-tuned default, with the pre-trained model it reads."""
    parts = [f"{FROZEN_SUBDIR}/{MODEL_PART}", f"{FROZEN_SUBDIR}/{CLASSIFIER_PART}"]
    return require(parts, "this default model ships no frozen-feature classifier") / FROZEN_SUBDIR / CLASSIFIER_SUBDIR
