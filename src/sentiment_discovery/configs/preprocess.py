"""The flags of ``sentiment-discovery preprocess`` (run: :mod:`sentiment_discovery.recipes.preprocess`)."""

import dataclasses

from ..foundation.choices import DEFAULT_NUM_SHARDS, FORMATS
from ..foundation.options import option


@dataclasses.dataclass(kw_only=True)
class PreprocessConfig:
    inputs: list[str] = option(
        positional=True, metavar="INPUT", help="CSV/TSV/JSON/JSON Lines/text files (optionally .gz), read in order"
    )
    out: str = option(help="corpus directory to write (train/valid/test byte files, offsets, manifest.json)")
    text_key: str = option(
        "sentence",
        help="column or key holding the text (ignored for .txt: one text per line); comma-separated for one key per input"
    )
    split: str = option(
        "1000,1,1", help="train,validation,test proportions (texts dealt in runs of their sum), or a training fraction"
    )
    num_shards: int = option(
        DEFAULT_NUM_SHARDS, help="shards shared among the splits in proportion; -persist_state 1 resets at each",
        minimum=1,
    )
    shuffle: bool = option(False, help="deal each run of texts to the splits in a random order (seeded)")
    seed: int = option(1234, help="random seed for -shuffle", minimum=0, maximum=2**32 - 1)  # what NumPy accepts
    input_format: str | None = option(None, choices=FORMATS, help="format of every input (default: by extension)")
    delim: str | None = option(None, help="column delimiter for delimited files (default: ',' or tab for .tsv)")
    strict: bool = option(False, help="stop at invalid UTF-8, empty texts or records without the text key")
    keep_markup: bool = option(False, help="keep HTML/markup tags instead of stripping them")
    to_ascii: bool = option(False, help="transliterate to ASCII (unidecode)")
    max_length: int | None = option(None, help="keep at most this many bytes of each cleaned text", minimum=1)
    workers: int | None = option(
        None, help="processes that clean the texts while one reads and writes (default: the cores idle at start; "
        "1: one process does it all); the corpus is the same byte for byte", minimum=1,
    )


COMMAND_CONFIG = PreprocessConfig
