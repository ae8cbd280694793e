"""``featurize`` and ``classify`` under torchrun: the few steps around ``sharding.py`` the two share.

Under ``torchrun --nproc_per_node N -m sentiment_discovery classify|featurize ...`` every process
featurizes its pieces of the input (``sharding.py``) into ``<output>.parts/``; rank 0 assembles
them in input order and writes the one output, the same bytes as one process writes; the other
ranks stop there. The parts go once the output is written; after a crash a rerun reuses them.
"""

import hashlib
import json
from pathlib import Path

from .. import sharding
from ..checkpoint import WEIGHTS_FILE, resolve_model_directory
from ..foundation import storage
from ..foundation.errors import UserError
from ..foundation.locations import model_directory
from ..precision import resolve_precision
from ..transfer.cache import texts_sha256


def classify_features(config, model, texts, identity, cache):
    """``classify``'s features across the processes: the matrix on rank 0, None on the others.

    The feature cache is looked up on rank 0 only (it need not be shared); a hit is announced to
    the other ranks, which then stop. Assembled features go to the cache as a one-process run's do.
    """
    context = sharding.join(config.cuda)  # already joined: the same group
    if config.output is None:
        raise UserError("under torchrun, classify writes its labels to -output FILE.csv; pass one")
    key = identity.feature_key(texts)
    cached = cache.load(key, len(texts), identity.feature_width) if cache is not None and context.is_main else None
    if context.gather_objects(cached is not None)[0]:
        return cached
    parts = sharding.parts_directory(config.output)
    features = sharding.featurize_across_ranks(
        model, texts, context, parts, key, batch_size=config.batch_size, preprocess=identity.preprocess,
        layer=identity.layer, pooling=identity.pooling, precision=identity.precision, progress=True,
    )
    if features is not None:
        if cache is not None:
            cache.save(key, features)
        sharding.Parts(parts, {}).remove()
    return features


def featurize_key(model_dir: Path, texts, *, layer: int, pooling: str, precision: str, preprocess: bool) -> str:
    """What ``featurize``'s features depend on, hashed: the weights, the texts and the options."""
    weights = storage.file_sha256(resolve_model_directory(model_dir) / WEIGHTS_FILE)
    description = {"weights_sha256": weights, "texts_sha256": texts_sha256(texts), "layer": layer,
                   "pooling": pooling, "precision": precision, "preprocess": preprocess}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def featurize_shares(config, model, texts, context):
    """``featurize``'s features across the processes: the matrix on rank 0, None on the others."""
    if not -model.config.layers <= config.layer < model.config.layers:
        raise UserError(f"-layer {config.layer} does not exist: the model has {model.config.layers} layer(s)")
    precision = resolve_precision(config.precision, model.device)
    layer = config.layer % model.config.layers
    key = featurize_key(Path(config.model) if config.model else model_directory(), texts, layer=layer,
                        pooling=config.pooling, precision=precision, preprocess=not config.no_preprocess)
    return sharding.featurize_across_ranks(
        model, texts, context, sharding.parts_directory(config.output), key, batch_size=config.batch_size,
        preprocess=not config.no_preprocess, layer=layer, pooling=config.pooling, precision=precision, progress=True,
    )
