"""``sentiment-discovery download sst2|imdb|mr|cr|subj|mpqa``: the standard labelled sets, verified by sha256."""

import dataclasses

from .. import log
from ..data.download import DATASETS, download
from ..options import option


@dataclasses.dataclass(kw_only=True)
class DownloadConfig:
    dataset: str = option(positional=True, choices=tuple(DATASETS), help="which dataset to fetch")
    to: str = option("data", help="files go to <to>/<dataset>/ (the layout of the shared data folder)")
    mirror: str | None = option(
        None, help="directory or http(s) URL to take the files from instead of their canonical sources"
    )


COMMAND_CONFIG = DownloadConfig


def run(config: DownloadConfig) -> None:
    download(
        config.dataset,
        config.to,
        mirror=config.mirror,
        progress=True,
        report=log.say,
    )
