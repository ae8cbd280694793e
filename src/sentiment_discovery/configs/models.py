"""The flags of ``sentiment-discovery models`` (run: :mod:`sentiment_discovery.recipes.models`)."""

import dataclasses

from ..foundation.options import option


@dataclasses.dataclass(kw_only=True)
class ModelsConfig:
    paths: bool = option(False, help="print each installed model's directory too")


COMMAND_CONFIG = ModelsConfig
