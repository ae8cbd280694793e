"""The flags of ``sentiment-discovery download`` (run: :mod:`sentiment_discovery.recipes.download`)."""

import dataclasses

from ..foundation import model_cache
from ..foundation.choices import DATASET_NAMES
from ..foundation.options import option


@dataclasses.dataclass(kw_only=True)
class DownloadConfig:
    dataset: str = option(
        positional=True, choices=(*DATASET_NAMES, *model_cache.DOWNLOADABLE),
        help="which dataset, or which model (installed in the model cache under its name), to fetch",
    )
    to: str = option("data", help="datasets go to <to>/<dataset>/ (the layout of the shared data folder); "
                                  "models go to the model cache (docs/models.md)")
    mirror: str | None = option(
        None, help="directory or http(s) URL to take the files from instead of their canonical sources"
    )


COMMAND_CONFIG = DownloadConfig
