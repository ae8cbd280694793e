"""``sentiment-discovery preprocess``: review dumps in, an on-disk byte corpus out (the release's ``-lazy``).

Streams the inputs once, cleans each text as in section 4 of the paper, deals them into
train/validation/test splits and writes each split as one flat byte file plus offsets,
with a manifest. Unchanged inputs and options make it a no-op. ``-workers N`` cleans the texts
on N processes while one reads the input and writes the corpus (``data/cleaning.py``).
"""

import dataclasses

from ..configs.preprocess import PreprocessConfig
from ..data.corpus import CorpusOptions, build_corpus
from ..foundation.cores import default_workers
from ..foundation.options import check_options
from ..foundation.text import PAPER_TEXT_OPTIONS


def run(config: PreprocessConfig) -> None:
    check_options(config)
    workers = config.workers if config.workers is not None else default_workers()
    text_options = dataclasses.replace(
        PAPER_TEXT_OPTIONS,
        strip_tags=not config.keep_markup,
        to_ascii=config.to_ascii,
        max_length=config.max_length,
    )
    options = CorpusOptions(
        text_key=config.text_key,
        split=config.split,
        num_shards=config.num_shards,
        shuffle=config.shuffle,
        seed=config.seed,
        text_options=text_options,
        fmt=config.input_format,
        delim=config.delim,
        strict=config.strict,
    )
    build_corpus(config.inputs, config.out, options, progress=True, workers=workers)
