"""``sentiment-discovery download sst2|imdb|mr|cr|subj|mpqa|openai-mlstm``.

A dataset is verified by sha256 into ``<to>/<dataset>/``; a model (``openai-mlstm``) is
fetched into the model cache's downloads (resumable), verified by git blob ids, imported and
installed under its name (docs/models.md), after which the downloaded files are removed.
"""

from ..configs.download import DownloadConfig
from ..data import releases
from ..data.download import download
from ..foundation import log, model_cache, storage
from ..foundation.errors import UserError


def install_model(name: str, mirror: str | None = None, progress: bool = True) -> None:
    """Download the release ``name``, verify it, import it and install it in the model cache."""
    release = releases.MODEL_RELEASES[name]
    blob_ids = dict(release.files)
    installed = model_cache.lookup(name)
    if installed is not None and _recorded_files(installed) == blob_ids:
        log.info(f"{name} is already installed in {installed}, from files with the published git blob ids")
        return
    target = model_cache.named_directory(name)
    staging = model_cache.downloads_root() / name
    with storage.output_lock(target, what="model"):
        try:
            folder, location = releases.download_release(release, staging, mirror=mirror, progress=progress)
        except UserError:
            _remove_if_empty(staging)  # a rejected file leaves nothing behind (a cut-off one stays, to resume)
            _remove_if_empty(model_cache.downloads_root())
            raise
        from ..importers import import_weights  # lazy: download of a dataset runs without torch

        metadata = {"release": name, "source_url": location, "files": blob_ids, "description": release.description}
        model = import_weights(folder, target, overwrite=True, progress=progress, metadata=metadata)
        if release.sentiment_unit is not None and release.sentiment_unit < model.config.rnn_size:
            from ..checkpoint import update_model_metadata  # lazy, as above

            update_model_metadata(target, sentiment_unit=release.sentiment_unit)
        storage.remove(staging)
        _remove_if_empty(model_cache.downloads_root())
    unit = f", sentiment unit {release.sentiment_unit}" if release.sentiment_unit is not None else ""
    log.info(
        f"installed {name} ({model.config.rnn_size} units{unit}) in {target}; use it as "
        f"`--model {name}` or `-load_model {name}`, or load_model({name!r}) in Python"
    )


def _remove_if_empty(folder) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _recorded_files(directory) -> dict | None:
    try:
        config = storage.read_json(directory / model_cache.CONFIG_FILE)
    except UserError:  # an unreadable config: installed again
        return None
    metadata = config.get("metadata") if isinstance(config, dict) else None
    return metadata.get("files") if isinstance(metadata, dict) else None


def run(config: DownloadConfig) -> None:
    if config.dataset in model_cache.DOWNLOADABLE:
        install_model(config.dataset, mirror=config.mirror)
        return
    download(config.dataset, config.to, mirror=config.mirror, progress=True)
