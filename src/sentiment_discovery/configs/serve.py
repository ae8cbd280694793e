"""The flags of ``sentiment-discovery serve`` (run: :mod:`sentiment_discovery.recipes.serve`)."""

import dataclasses

from ..foundation.choices import PRECISIONS
from ..foundation.options import option, option_like
from .common import ExperimentConfig


@dataclasses.dataclass
class ServeConfig:
    model: str | None = option(
        None,
        help="model directory (default: the classifier's model; without --classifier, the model shipped with "
        "the package); a model without a classifier serves everything but /classify",
        aliases=["load_model"],
    )
    classifier: str | None = option(
        None,
        help="results directory written by transfer (or its classifier.json); default: the shipped classifier "
        "when no --model is given",
    )
    unit: int | None = option(
        None,
        help="unit the page shows first (default: the sentiment unit: the shipped one, the classifier's top "
        "unit, or the one recorded in the model)",
        aliases=["neuron"],
    )
    # (no declared range for --unit and --layer: negatives mean something, and the model says how many there are)
    layer: int | None = option(None, help="layer of --unit (default: the sentiment unit's, else the top one)")
    host: str = option("127.0.0.1", help="address to listen on; anything but loopback exposes the model to the network")
    port: int = option(8000, help="port to listen on (0: any free port, printed at start)", minimum=0, maximum=65535)
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="precision of the matrix products: auto (bf16 where the hardware runs it natively, else fp32), "
        "or fp32/bf16/fp16; /featurize may ask for another",
    )
    batch_size: int = option(64, help="texts per featurize batch (sorted by length)", minimum=1)
    max_text_chars: int = option(10_000, help="longest text a request may send, in characters (longer: 413)", minimum=1)
    max_texts: int = option(256, help="most texts in one classify or featurize request (more: 413)", minimum=1)
    max_new_bytes: int = option(2_000, help="most bytes one generate request may write (more: 413)", minimum=1)
    max_batch_texts: int = option(
        256, help="most texts of waiting classify/featurize requests merged into one featurize call", minimum=1
    )
    cuda: bool = option_like(ExperimentConfig, "cuda")


COMMAND_CONFIG = ServeConfig
