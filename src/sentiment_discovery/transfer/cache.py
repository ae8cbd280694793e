"""The features a classifier reads, and a cache of them keyed by everything they depend on.

A :class:`ModelIdentity` names the weights (by hash), the layer, the text preparation, the
precision and the pooling; with the texts' hash it keys :class:`FeatureCache`, so a cached
matrix is always the one the model would compute. The checkpoint, precision and features
modules (torch) are imported inside the functions that need them: a saved classifier loads
without torch.
"""

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..checkpoint import WEIGHTS_FILE, resolve_model_directory
from ..features import pooled_width
from ..foundation import log, storage
from ..foundation.choices import POOLINGS
from ..foundation.errors import UserError
from ..foundation.text import recorded_text_options
from ..precision import resolve_precision


def texts_sha256(texts: Sequence[str]) -> str:
    """Hash of the texts exactly as read (after the reader's choice of key, delimiter and dropped rows)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", errors="surrogatepass")
        # Length prefixes keep ["ab", "c"] and ["a", "bc"] apart.
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What features depend on besides the texts: which weights, which layer, which text preparation."""
    name: str
    path: str
    weights_sha256: str
    rnn_size: int
    layer: int  # resolved, never negative
    preprocess: bool
    text_options: dict
    # The precision the features were made in ("fp32", "bf16" or "fp16", never "auto"): bf16
    # features differ from fp32 ones in the last digits, so it is part of the cache key. A
    # classifier records it, but new texts are featurized in what suits the machine at hand
    # (docs/transfer.md measures that the labels agree).
    precision: str = "fp32"
    # "final" (the cell state after the last byte, the paper's feature) or "mean" (over the bytes).
    pooling: str = "final"

    @classmethod
    def of(
        cls,
        model,
        directory: str | os.PathLike,
        *,
        layer: int = -1,
        preprocess: bool = True,
        precision: str = "auto",
        pooling: str = "final",
    ) -> "ModelIdentity":
        resolved = resolve_model_directory(directory)
        layers = model.config.layers
        if not -layers <= layer < layers:
            raise UserError(f"-layer {layer} does not exist: the model has {layers} layer(s)")
        if pooling not in POOLINGS:
            raise UserError(f"-pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        return cls(
            name=resolved.name.removesuffix(".previous"),
            path=str(resolved.resolve()),
            weights_sha256=storage.file_sha256(resolved / WEIGHTS_FILE),
            rnn_size=model.config.rnn_size,
            layer=layer % layers,
            preprocess=preprocess,
            text_options=recorded_text_options(model.text_options),
            precision=resolve_precision(precision, model.device),
            pooling=pooling,
        )

    def feature_key(self, texts: Sequence[str]) -> str:
        description = {
            "weights_sha256": self.weights_sha256,
            "texts_sha256": texts_sha256(texts),
            "layer": self.layer,
            "preprocess": self.preprocess,
            "text_options": self.text_options,
            "precision": self.precision,
            "pooling": self.pooling,
        }
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()

    @property
    def feature_width(self) -> int:
        """Length of a text's feature vector (``concat`` pooling joins three states)."""
        return pooled_width(self.rnn_size, self.pooling)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class FeatureCache:
    """Feature matrices on disk, ``<directory>/<key>.npy``, written atomically.

    A key covers everything the features depend on (:meth:`ModelIdentity.feature_key`),
    so a hit is always valid; an unreadable file is featurized again.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def load(self, key: str, rows: int, width: int) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            log.notice(f"ignoring unreadable cached features {path} ({error})")
            return None
        if features.dtype != np.float32 or features.shape != (rows, width):
            log.notice(f"ignoring cached features {path} of shape {features.shape}")
            return None
        if not np.isfinite(features).all():
            log.notice(f"ignoring cached features {path}: they hold NaN or infinite values (a damaged file)")
            return None
        return features

    def save(self, key: str, features: np.ndarray) -> Path | None:
        """Store ``features``; a cache that cannot be written (a read-only or full disk) is only a warning."""
        path = self.path(key)
        try:
            with storage.atomic_file(path, "wb") as handle:
                np.save(handle, features)
        except OSError as error:
            log.warning(f"features not cached: {storage.os_error_message(error)}")
            return None
        return path


@dataclasses.dataclass
class FeatureRun:
    features: np.ndarray  # float32 [texts, rnn_size]
    seconds: float  # featurizing time (0 on a cache hit)
    cached: bool

    @property
    def texts_per_s(self) -> float | None:
        return None if self.cached or self.seconds <= 0 else len(self.features) / self.seconds


def featurize_cached(
    model,
    texts: Sequence[str],
    identity: ModelIdentity,
    cache: FeatureCache | None,
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> FeatureRun:
    """The features of ``texts`` from the cache, or from the model (and then stored)."""
    key = identity.feature_key(texts) if cache is not None else None
    if cache is not None:
        features = cache.load(key, len(texts), identity.feature_width)
        if features is not None:
            return FeatureRun(features, 0.0, cached=True)
    start = time.perf_counter()
    features = model.featurize(
        texts,
        batch_size=batch_size,
        preprocess=identity.preprocess,
        layer=identity.layer,
        progress=progress,
        precision=identity.precision,
        pooling=identity.pooling,
    )
    seconds = time.perf_counter() - start
    if cache is not None:
        cache.save(key, features)
    return FeatureRun(features, seconds, cached=False)
