"""``sentiment-discovery models``: the models installed in the model cache, and those ``download`` fetches."""

from ..configs.models import ModelsConfig
from ..foundation import model_cache
from ..foundation.text import print_result


def _size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def run(config: ModelsConfig) -> None:
    installed = model_cache.installed()
    print_result(f"installed in {model_cache.models_root()} (${model_cache.CACHE_ENV} moves it):")
    if not installed:
        print_result("  (none)")
    else:
        rows = [("name", "units", "size", "source", "sentiment unit")]
        for model in installed:
            units = "?" if model.units is None else f"{model.units:,}"
            unit = "-" if model.sentiment_unit is None else str(model.sentiment_unit)
            rows.append((model.name, units, _size(model.size_bytes), model.source, unit))
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for index, row in enumerate(rows):
            line = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            if config.paths and index:
                line += f"  {installed[index - 1].path}"
            print_result(line)
    names = {model.name for model in installed}
    print_result("downloadable (`sentiment-discovery download NAME`):")
    for name, description in model_cache.DOWNLOADABLE.items():
        print_result(f"  {name}{' (installed)' if name in names else ''}: {description}")
