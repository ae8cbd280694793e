"""Sentiment transfer: L1 logistic regression on a language model's features, and the sentiment neuron.

Components used by the ``transfer`` and ``classify`` recipes (and usable from Python):

- a feature cache keyed by the model's weights, the texts and the featurization options;
- the regularisation sweep: one L1 logistic regression per C, C chosen on validation
  accuracy, exactly as the paper's code did (grid 2^-8 ... 2^0, liblinear, raw features);
- unit ranking by absolute weight, the top-unit classifier and the threshold-0 rule;
- :class:`SentimentClassifier`, saved as JSON (never a pickle) and checked against the model;
- the data-efficiency curve, and the figures.

Probabilities are always computed here (``LinearProbe.decision_function``), never by
scikit-learn, so a classifier loaded from disk gives bit-identical probabilities.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import storage
from .errors import UserError
from .locations import CLASSIFIER_FILE, classifier_directory
from .storage import file_sha256  # noqa: F401 - part of this module's public API

DEFAULT_C_GRID = tuple(float(2.0**power) for power in range(-8, 1))
TOP_UNITS_SHOWN = 5
CLASSIFIER_FORMAT = "sentiment-discovery-classifier"
CLASSIFIER_FORMAT_VERSION = 1
PROBE_NAMES = ("all_neurons", "n_neurons")
# liblinear's default; the paper's code used it too. Fits that hit it are counted and reported.
MAX_ITER = 100


# --------------------------------------------------------------------------- hashing and the feature cache


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
        from .checkpoint import WEIGHTS_FILE, resolve_model_directory
        from .choices import POOLINGS
        from .precision import resolve_precision

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
            text_options=dataclasses.asdict(model.text_options),
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
        from .features import pooled_width

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
            print(f"notice: ignoring unreadable cached features {path} ({error})", file=sys.stderr)
            return None
        if features.dtype != np.float32 or features.shape != (rows, width):
            print(f"notice: ignoring cached features {path} of shape {features.shape}", file=sys.stderr)
            return None
        return features

    def save(self, key: str, features: np.ndarray) -> Path:
        path = self.path(key)
        with storage.atomic_file(path, "wb") as handle:
            np.save(handle, features)
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


# --------------------------------------------------------------------------- L1 logistic regression


def _l1_logistic_regression(C: float, seed: int):
    import sklearn
    from sklearn.linear_model import LogisticRegression

    # scikit-learn 1.8 spells the L1 penalty l1_ratio=1 and warns on penalty="l1".
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(C=C, solver="liblinear", max_iter=MAX_ITER, random_state=seed, **penalty)


@dataclasses.dataclass
class LinearProbe:
    """A logistic regression over some units' features: ``sigmoid(((x[:, units] - mean) / scale) @ coef + b)``.

    ``units`` None means every unit. ``mean``/``scale`` are the standardisation fitted on
    the training features (None: raw features, as in the paper).
    """

    coef: np.ndarray  # float64 [k]
    intercept: float
    C: float
    units: np.ndarray | None = None  # int64 [k]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    converged: bool = True

    @property
    def features_used(self) -> int:
        return int(np.count_nonzero(self.coef))

    @property
    def standardized(self) -> bool:
        return self.mean is not None

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """The classifier's inputs (float64) from a full feature matrix [N, rnn_size]."""
        selected = features if self.units is None else features[:, self.units]
        selected = np.asarray(selected, dtype=np.float64)
        if self.mean is not None:
            selected = (selected - self.mean) / self.scale
        return selected

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.inputs(features) @ self.coef + self.intercept

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of label 1 for each row, float64 [N]."""
        from scipy.special import expit

        return expit(self.decision_function(features))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return (self.decision_function(features) > 0).astype(np.int64)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))

    def to_dict(self) -> dict:
        return {
            "C": self.C,
            "units": None if self.units is None else [int(u) for u in self.units],
            "coef": _floats(self.coef),
            "intercept": self.intercept,
            "standardize": None if self.mean is None else {"mean": _floats(self.mean), "scale": _floats(self.scale)},
            "converged": self.converged,
        }

    def check_shape(self, feature_width: int, name: str) -> None:
        """A clear error unless the weights fit ``feature_width`` features (a hand-edited or damaged file)."""
        width = feature_width if self.units is None else len(self.units)
        if self.coef.shape != (width,):
            raise ValueError(f"{name} has {self.coef.size} weights for {width} features of {feature_width}")
        if self.units is not None and len(self.units) and not (0 <= self.units.min() and self.units.max() < feature_width):
            raise ValueError(f"{name} uses features outside 0..{feature_width - 1}")
        for part in ("mean", "scale"):
            values = getattr(self, part)
            if values is not None and values.shape != (width,):
                raise ValueError(f"{name} has {values.size} standardization {part}s for {width} features")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.intercept)):
            raise ValueError(f"{name} has non-finite weights")

    @classmethod
    def from_dict(cls, values: dict) -> "LinearProbe":
        standardize = values.get("standardize") or {}
        units = values.get("units")
        return cls(
            coef=np.asarray(values["coef"], dtype=np.float64),
            intercept=float(values["intercept"]),
            C=float(values["C"]),
            units=None if units is None else np.asarray(units, dtype=np.int64),
            mean=_array_or_none(standardize.get("mean")),
            scale=_array_or_none(standardize.get("scale")),
            converged=bool(values.get("converged", True)),
        )


def _floats(array: np.ndarray) -> list[float]:
    # Python floats print in their shortest round-trip form, so JSON keeps every bit.
    return [float(value) for value in array]


def _array_or_none(values) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float64)


@dataclasses.dataclass
class PreparedInputs:
    """Training inputs converted once (float64, optionally standardised) and shared by every fit of a sweep."""

    train: np.ndarray
    units: np.ndarray | None
    mean: np.ndarray | None
    scale: np.ndarray | None

    @classmethod
    def of(cls, features: np.ndarray, units: Sequence[int] | None = None, standardize: bool = False):
        units = None if units is None else np.asarray(units, dtype=np.int64)
        selected = np.asarray(features if units is None else features[:, units], dtype=np.float64)
        mean = scale = None
        if standardize:
            mean = selected.mean(axis=0)
            scale = selected.std(axis=0)
            scale[scale == 0] = 1.0  # a constant unit stays 0 instead of dividing by zero
            selected = (selected - mean) / scale
        return cls(np.ascontiguousarray(selected), units, mean, scale)

    def fit(self, labels: np.ndarray, C: float, seed: int) -> LinearProbe:
        model = _l1_logistic_regression(C, seed).fit(self.train, labels)
        return LinearProbe(
            coef=model.coef_[0].astype(np.float64),
            intercept=float(model.intercept_[0]),
            C=float(C),
            units=self.units,
            mean=self.mean,
            scale=self.scale,
            converged=bool(np.max(model.n_iter_) < MAX_ITER),
        )


@dataclasses.dataclass
class Sweep:
    """The probe at the chosen C and the validation accuracy of every C tried, in grid order."""

    probe: LinearProbe
    valid_accuracy: dict[float, float]
    unconverged: int = 0

    @property
    def C(self) -> float:
        return self.probe.C


def check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size == 0:
        raise UserError(f"{what} is empty")
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{what} has labels other than 0/1; pass -binarize_sent to split ratings at their middle")
    if np.unique(labels).size < 2:
        raise UserError(f"{what} has only label {int(labels[0])}; a classifier needs examples of both labels")
    return labels.astype(np.int64)


def sweep_regularization(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    valid_features: np.ndarray,
    valid_labels: np.ndarray,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    units: Sequence[int] | None = None,
    standardize: bool = False,
    seed: int = 0,
    jobs: int = 1,
    patience: int | None = None,
    progress: bool = False,
) -> Sweep:
    """Fit one L1 logistic regression per C on train, keep the one most accurate on validation.

    Ties go to the smaller C (the sparser model). ``patience``: walk the grid in
    increasing C and stop once that many values in a row were less accurate than the best
    so far (large C are the slow fits); otherwise all values are fitted, ``jobs`` at a time
    (liblinear releases the GIL, so threads run in parallel without copying the features).
    """
    with _quiet_convergence():
        return _sweep(
            train_features, train_labels, valid_features, valid_labels,
            c_grid=c_grid, units=units, standardize=standardize, seed=seed, jobs=jobs, patience=patience,
            progress=progress,
        )


@contextlib.contextmanager
def _quiet_convergence():
    """Non-convergence is recorded per fit (``LinearProbe.converged``) and reported once, not warned per fit.

    Warning filters are process-wide, so this wraps whole sweeps from the calling thread,
    never fits inside worker threads.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _sweep(train_features, train_labels, valid_features, valid_labels, *, c_grid, units, standardize, seed, jobs,
           patience, progress) -> Sweep:
    from tqdm.auto import tqdm

    if not c_grid or any(not np.isfinite(c) or c <= 0 for c in c_grid):
        raise UserError(f"regularization coefficients must be positive numbers, not {list(c_grid)}")
    c_grid = sorted(float(c) for c in c_grid)
    train_labels = check_labels(train_labels, "the training set")
    prepared = PreparedInputs.of(train_features, units, standardize)
    probes: list[LinearProbe] = []
    bar = tqdm(total=len(c_grid), desc="L1 sweep", unit="C", disable=not progress, leave=False)
    if patience is None:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for probe in pool.map(lambda c: prepared.fit(train_labels, c, seed), c_grid):
                probes.append(probe)
                bar.update()
    else:
        best, misses = -1.0, 0
        for c in c_grid:
            probe = prepared.fit(train_labels, c, seed)
            probes.append(probe)
            bar.update()
            accuracy = probe.accuracy(valid_features, valid_labels)
            # Only a real drop counts: the smallest C often all give the empty model (a plateau).
            misses = misses + 1 if accuracy < best else 0
            best = max(best, accuracy)
            if misses >= patience:
                break
    bar.close()
    scores = [probe.accuracy(valid_features, valid_labels) for probe in probes]
    chosen = probes[int(np.argmax(scores))]
    return Sweep(
        probe=chosen,
        valid_accuracy={probe.C: score for probe, score in zip(probes, scores)},
        unconverged=sum(not probe.converged for probe in probes),
    )


def rank_units(probe: LinearProbe, count: int) -> np.ndarray:
    """The ``count`` units with the largest absolute weight, largest first (ties: lower index)."""
    importance = np.abs(probe.coef)
    order = np.argsort(-importance, kind="stable")[:count]
    return order if probe.units is None else probe.units[order]


def unit_sign(probe: LinearProbe, unit: int) -> int:
    """+1 if the unit fires high on positive texts in ``probe`` (its weight is not negative), else -1."""
    index = unit if probe.units is None else int(np.flatnonzero(probe.units == unit)[0])
    return -1 if probe.coef[index] < 0 else 1


def threshold_accuracy(values: np.ndarray, labels: np.ndarray, sign: int) -> float:
    """Accuracy of the paper's rule for a single unit: positive when ``sign * value > 0``."""
    return float(np.mean((sign * np.asarray(values) > 0).astype(np.int64) == labels))


# --------------------------------------------------------------------------- the classifier


@dataclasses.dataclass
class SentimentClassifier:
    """The full-feature probe, the top-unit probe and the units found, tied to one model's features."""

    all_neurons: LinearProbe
    n_neurons: LinearProbe
    top_units: list[int]
    top_unit_signs: list[int]
    model: ModelIdentity
    source: Path | None = dataclasses.field(default=None, compare=False)  # the file it was loaded from
    device: str = dataclasses.field(default="cpu", compare=False)
    # The precision new texts are featurized in (resolved when they are; "auto" suits the machine).
    precision: str = dataclasses.field(default="auto", compare=False)
    # The language model, loaded on first use by a prediction on texts.
    _language_model: object = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def probe(self, use: str) -> LinearProbe:
        if use not in PROBE_NAMES:
            raise UserError(f"unknown classifier {use!r}; choose {' or '.join(PROBE_NAMES)}")
        return getattr(self, use)

    # ---- saving and loading

    def to_dict(self) -> dict:
        return {
            "format": CLASSIFIER_FORMAT,
            "format_version": CLASSIFIER_FORMAT_VERSION,
            "model": self.model.to_dict(),
            "top_units": [int(u) for u in self.top_units],
            "top_unit_signs": [int(s) for s in self.top_unit_signs],
            "all_neurons": self.all_neurons.to_dict(),
            "n_neurons": self.n_neurons.to_dict(),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / CLASSIFIER_FILE
        return storage.write_json(path, self.to_dict())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        model: str | os.PathLike | None = None,
        device: str = "cpu",
        precision: str = "auto",
    ):
        """A saved classifier (its results directory or its ``classifier.json``); None: the shipped default.

        ``model``: the model directory whose features it reads; by default the one it was
        fitted on (a relative model path in the file is relative to the file's directory, as
        in the shipped default). Either way the model must be the same weights (checked by hash).
        ``precision``: that of the products when it featurizes texts; "auto" (bf16 where the
        hardware runs it natively, else fp32) whatever precision the classifier was fitted in.
        """
        if path is None:
            path = classifier_directory()
        path = Path(path)
        if path.is_dir():
            path = path / CLASSIFIER_FILE
        if not path.is_file():
            raise UserError(f"no classifier at {path}; pass the results directory that `transfer` wrote")
        values = storage.read_json(path, CLASSIFIER_FORMAT, CLASSIFIER_FORMAT_VERSION)
        try:
            classifier = cls(
                all_neurons=LinearProbe.from_dict(values["all_neurons"]),
                n_neurons=LinearProbe.from_dict(values["n_neurons"]),
                top_units=[int(u) for u in values["top_units"]],
                top_unit_signs=[int(s) for s in values["top_unit_signs"]],
                model=ModelIdentity(**values["model"]),
            )
            # concat pooling gives 3 x rnn_size features (features.pooled_width, written out
            # here: this module must load without torch's import for the features module).
            rnn_size = classifier.model.rnn_size
            width = 3 * rnn_size if classifier.model.pooling == "concat" else rnn_size
            for name in PROBE_NAMES:
                classifier.probe(name).check_shape(width, name)
            if len(classifier.top_unit_signs) != len(classifier.top_units) or not classifier.top_units:
                raise ValueError("top_units and top_unit_signs differ in length")
            if not all(0 <= unit < width for unit in classifier.top_units):
                raise ValueError(f"top_units lie outside 0..{width - 1}")
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path} is incomplete or corrupt ({type(error).__name__}: {error})") from None
        if not Path(classifier.model.path).is_absolute():
            located = (path.parent / classifier.model.path).resolve()
            classifier.model = dataclasses.replace(classifier.model, path=str(located))
        classifier.source, classifier.device, classifier.precision = path, device, precision
        if model is not None:
            classifier.attach_model(model)
        return classifier

    # ---- the model it belongs to

    def check_model(self, identity: ModelIdentity) -> None:
        """A clear error unless ``identity`` gives the features this classifier was fitted on."""
        source = self.source or "this classifier"
        if identity.rnn_size != self.model.rnn_size:
            raise UserError(
                f"{source} was fitted on a {self.model.rnn_size}-unit model ({self.model.path}), "
                f"but {identity.path} has {identity.rnn_size} units; pass the model it was fitted on"
            )
        if identity.weights_sha256 != self.model.weights_sha256:
            raise UserError(
                f"{source} was fitted on model {self.model.path} (weights sha256 {self.model.weights_sha256[:12]}...), "
                f"but {identity.path} has different weights ({identity.weights_sha256[:12]}...); "
                "pass the model it was fitted on, or run `transfer` with this one"
            )
        # Not the precision: the recorded one is a record, not an order (see ModelIdentity).
        for name in ("layer", "preprocess", "text_options", "pooling"):
            if getattr(identity, name) != getattr(self.model, name):
                raise UserError(
                    f"{source} was fitted on features with {name} {getattr(self.model, name)!r}, "
                    f"not {getattr(identity, name)!r} as {identity.path} gives now"
                )

    def attach_model(self, directory: str | os.PathLike) -> None:
        from .checkpoint import load_model

        language_model = load_model(directory, device=self.device)
        identity = ModelIdentity.of(
            language_model,
            directory,
            layer=self.model.layer,
            preprocess=self.model.preprocess,
            precision=self.precision,
            pooling=self.model.pooling,
        )
        self.check_model(identity)
        self._language_model = language_model

    @property
    def language_model(self):
        """The language model whose features it reads, loaded (and checked) on first use."""
        if self._language_model is None:
            self.attach_model(self.model.path)
        return self._language_model

    def features(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.language_model.featurize(
            list(texts), batch_size=batch_size, preprocess=self.model.preprocess, layer=self.model.layer,
            progress=progress, precision=self.precision, pooling=self.model.pooling,
        )

    def _as_features(self, texts_or_features) -> np.ndarray:
        if isinstance(texts_or_features, str):
            raise UserError("pass a list of texts, not a single string")
        if hasattr(texts_or_features, "shape"):
            features = np.asarray(texts_or_features)
            width = self.model.feature_width
            if features.ndim != 2 or features.shape[1] != width:
                raise UserError(
                    f"features of shape {tuple(features.shape)} do not fit a classifier of a "
                    f"{self.model.rnn_size}-unit model with {self.model.pooling} pooling; expected [texts, {width}]"
                )
            return features
        return self.features(texts_or_features)

    # ---- predictions

    def predict_proba(self, texts_or_features, use: str = "all_neurons") -> np.ndarray:
        """[N, 2] probabilities of labels 0 and 1 (scikit-learn's layout), from texts or features."""
        positive = self.probe(use).predict_proba(self._as_features(texts_or_features))
        return np.stack([1.0 - positive, positive], axis=1)

    def predict(self, texts_or_features, use: str = "all_neurons") -> np.ndarray:
        return self.probe(use).predict(self._as_features(texts_or_features))

    def probability_trace(self, text: str) -> np.ndarray:
        """P(positive) of the text so far, after each byte of the prepared text: float64 [bytes].

        The prefix ending at byte t is pooled as the classifier's features are (the state at
        t, or the mean or maximum of the states up to t), so the last value is
        ``predict_proba([text])[0, 1]``. The bytes are those the model reads (padding included);
        ``bytes`` are taken as already prepared, as ``featurize`` takes them.
        """
        import torch

        from .features import CHUNK_LENGTH, prefix_pooled
        from .model import RNNState
        from .precision import products_autocast
        from .text import preprocess_text

        if not isinstance(text, (str, bytes)):
            raise UserError(f"probability_trace takes one text (a str), not a {type(text).__name__}")
        if self._language_model is None:
            self.attach_model(self.model.path)
        model = self._language_model
        if isinstance(text, bytes):
            data = text
        else:
            data = preprocess_text(text, model.text_options) if self.model.preprocess else text.encode("utf-8")
        if not data:
            raise UserError("the text is empty; give some text")
        tokens = torch.tensor([list(data)], dtype=torch.int64, device=model.device)
        cells, state = [], None
        was_training = model.training
        model.eval()
        try:
            # Products in this classifier's featurizing precision ("auto" unless told), as predict_proba's.
            with torch.no_grad(), products_autocast(self.precision, model.device):
                for start in range(0, tokens.shape[1], CHUNK_LENGTH):
                    encoded = model.encode(tokens[:, start : start + CHUNK_LENGTH], state, return_cell_sequences=True)
                    state = RNNState([h.float() for h in encoded.state.hidden], [c.float() for c in encoded.state.cell])
                    cells.append(encoded.cell_sequences[self.model.layer][0].float())
        finally:
            model.train(was_training)
        pooled = prefix_pooled(torch.cat(cells), self.model.pooling)
        return self.all_neurons.predict_proba(pooled.cpu().numpy())


# --------------------------------------------------------------------------- fitting it all


@dataclasses.dataclass
class TransferFit:
    classifier: SentimentClassifier
    all_neurons: Sweep
    n_neurons: Sweep


def fit_sentiment_classifier(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    valid_features: np.ndarray,
    valid_labels: np.ndarray,
    model: ModelIdentity,
    *,
    num_neurons: int = 1,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    standardize: bool = False,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
) -> TransferFit:
    """The paper's procedure: L1 sweep on all units, rank units, sweep again on the top ``num_neurons``."""
    width = train_features.shape[1]
    if not 1 <= num_neurons <= width:
        raise UserError(f"-num_neurons must be between 1 and the model's {width} units, not {num_neurons}")
    common = dict(c_grid=c_grid, standardize=standardize, seed=seed, jobs=jobs, progress=progress)
    full = sweep_regularization(train_features, train_labels, valid_features, valid_labels, **common)
    top_units = rank_units(full.probe, max(TOP_UNITS_SHOWN, num_neurons)).tolist()
    top = sweep_regularization(
        train_features, train_labels, valid_features, valid_labels, units=top_units[:num_neurons], **common
    )
    classifier = SentimentClassifier(
        all_neurons=full.probe,
        n_neurons=top.probe,
        top_units=[int(u) for u in top_units],
        top_unit_signs=[unit_sign(full.probe, u) for u in top_units],
        model=model,
    )
    return TransferFit(classifier, full, top)


def accuracy_text(accuracy: float | None) -> str:
    return "--.--" if accuracy is None else f"{100 * accuracy:05.2f}"


def seed_result_lines(name: str, accuracies: Sequence[float | None], probe: LinearProbe) -> list[str]:
    """The 2017 release's three result lines for one classifier (``all_neurons`` or ``n_neurons``)."""
    shown = "/".join(accuracy_text(a) for a in accuracies)
    return [
        f"{shown} train/val/test accuracy w/ {name}",
        f"{probe.C:05.2f} regularization coef w/ {name}",
        f"{probe.features_used:05d} features used w/ all neurons {name}",
    ]


def top_units_line(units: Sequence[int]) -> str:
    return f"neuron(s) {', '.join(str(u) for u in units)} are top sentiment neurons"


def threshold_line(unit: int, sign: int, accuracies: Sequence[float | None]) -> str:
    shown = "/".join(accuracy_text(a) for a in accuracies)
    return f"{shown} train/val/test accuracy w/ neuron {unit} {'>' if sign > 0 else '<'} 0"


# --------------------------------------------------------------------------- predictions file


def write_predictions(
    path: str | os.PathLike,
    texts: Sequence[str],
    features: np.ndarray,
    classifier: SentimentClassifier,
    *,
    text_key: str = "text",
    labels: np.ndarray | None = None,
    label_key: str = "label",
    lines: Sequence[int | None] | None = None,
) -> Path:
    """One CSV row per text, in input order: [line], text, [label], prediction, both probabilities, top unit values.

    ``lines``: where each text was read (its line in the input file; None for none), written first.
    """
    import csv

    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise UserError(f"results are written as CSV; name the file .csv, not {path.name}")
    full = classifier.all_neurons.predict_proba(features)
    top = classifier.n_neurons.predict_proba(features)
    predicted = classifier.all_neurons.predict(features)
    units = classifier.top_units
    header = (["line"] if lines is not None else []) + [text_key] + ([label_key] if labels is not None else [])
    header += ["prediction", "probability_all_neurons", "probability_n_neurons"] + [f"neuron_{u}" for u in units]
    # surrogateescape: a text given as bytes that are not UTF-8 (a shell's $'\xff') is written back as those bytes.
    with storage.atomic_file(path, "w", newline="", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, text in enumerate(texts):
            values = ([] if lines is None else ["" if lines[row] is None else lines[row]]) + [text]
            values += [int(labels[row])] if labels is not None else []
            values += [int(predicted[row]), repr(float(full[row])), repr(float(top[row]))]
            # str() of a float32 is its shortest round-trip form.
            values += [str(features[row, u]) for u in units]
            writer.writerow(values)
    return path


# --------------------------------------------------------------------------- data efficiency


def curve_sizes(train_size: int, start: int = 10) -> list[int]:
    """10, 20, 50, 100, 200, 500, 1000, ... up to half of ``train_size`` (the full size is the main fit)."""
    sizes, scale = [], start
    while True:
        for step in (1, 2, 5):
            if 2 * scale * step > train_size:
                return sizes
            sizes.append(scale * step)
        scale *= 10


def curve_seeds(size: int, train_size: int, seeds: int) -> int:
    """Subsets drawn at ``size``: ``seeds``, fewer for large sizes (at least one).

    Sizes of a third of train or more get one subset, so that the whole curve fits about
    as many examples per C as the main sweep: its cost stays bounded by the main fit's.
    """
    return max(1, min(seeds, train_size // (3 * size)))


def stratified_sample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indices with the labels' class balance and at least one example of each label."""
    by_label = [np.flatnonzero(labels == value) for value in (0, 1)]
    positives = int(round(size * len(by_label[1]) / len(labels)))
    positives = min(max(positives, 1), size - 1, len(by_label[1]))
    negatives = min(size - positives, len(by_label[0]))
    chosen = [rng.choice(by_label[0], negatives, replace=False), rng.choice(by_label[1], positives, replace=False)]
    return np.sort(np.concatenate(chosen))


def data_efficiency_curve(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    valid_features: np.ndarray,
    valid_labels: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    *,
    sizes: Sequence[int] | None = None,
    seeds: int = 3,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    standardize: bool = False,
    seed: int = 0,
    jobs: int = 1,
    patience: int = 2,
    progress: bool = True,
) -> list[dict]:
    """Accuracy on ``eval`` of classifiers trained on small labelled subsets of train.

    For each size and seed (:func:`curve_seeds` subsets per size): a class-balanced random
    subset; the all-unit L1 sweep (C on validation, the grid walked upward and cut after
    ``patience`` drops, which keeps needless slow large-C fits out); then the subset's own
    top unit alone (its C chosen the same way). Subsets run ``jobs`` at a time. One row
    per (size, seed).
    """
    from tqdm.auto import tqdm

    train_labels = check_labels(train_labels, "the training set")
    sizes = curve_sizes(len(train_labels)) if sizes is None else [int(s) for s in sizes]
    if any(not 2 <= size <= len(train_labels) for size in sizes):
        raise UserError(f"data-efficiency sizes must be between 2 and the {len(train_labels)} training texts")
    tasks = [(size, index) for size in sizes for index in range(curve_seeds(size, len(train_labels), seeds))]

    def run(task) -> dict:
        size, index = task
        rng = np.random.default_rng([seed, size, index])
        subset = stratified_sample(train_labels, size, rng)
        x, y = train_features[subset], train_labels[subset]
        options = dict(c_grid=c_grid, standardize=standardize, seed=seed, jobs=1, patience=patience, progress=False)
        full = _sweep(x, y, valid_features, valid_labels, units=None, **options)
        unit = int(rank_units(full.probe, 1)[0])
        single = _sweep(x, y, valid_features, valid_labels, units=[unit], **options)
        return {
            "size": size,
            "seed": index,
            "all_neurons_accuracy": full.probe.accuracy(eval_features, eval_labels),
            "all_neurons_C": full.C,
            "features_used": full.probe.features_used,
            "unit": unit,
            "unit_accuracy": single.probe.accuracy(eval_features, eval_labels),
            "unit_C": single.C,
        }

    rows = []
    bar = tqdm(total=len(tasks), desc="data efficiency", unit="fit", disable=not progress)
    with _quiet_convergence(), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for row in pool.map(run, tasks):
            rows.append(row)
            bar.update()
    bar.close()
    return rows


def summarize_curve(rows: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, per size."""
    summary = []
    for size in sorted({row["size"] for row in rows}):
        group = [row for row in rows if row["size"] == size]
        entry = {"size": size, "seeds": len(group)}
        for key in ("all_neurons_accuracy", "unit_accuracy"):
            values = np.array([row[key] for row in group])
            entry[key + "_mean"] = float(values.mean())
            entry[key + "_std"] = float(values.std())
        summary.append(entry)
    return summary


# --------------------------------------------------------------------------- figures


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_unit_histogram(values: np.ndarray, labels: np.ndarray, unit: int, sign: int, path: Path, split: str) -> Path:
    """Distribution of one unit's values by label, with the threshold-0 boundary."""
    figure = _figure()
    axes = figure.add_subplot()
    bins = np.histogram_bin_edges(values, bins=40)
    for label, color, name in ((0, "tab:red", "negative"), (1, "tab:green", "positive")):
        axes.hist(values[labels == label], bins=bins, alpha=0.55, color=color, label=f"{name} ({np.sum(labels == label)})")
    axes.axvline(0.0, color="black", linewidth=1, linestyle="--", label="threshold 0")
    axes.set_xlabel(f"cell state of unit {unit}")
    axes.set_ylabel("texts")
    direction = "high" if sign > 0 else "low"
    axes.set_title(f"unit {unit} on the {split} set (fires {direction} on positive texts)")
    axes.legend()
    figure.savefig(path)
    return path


def plot_unit_weights(probe: LinearProbe, top_units: Sequence[int], path: Path) -> Path:
    """The L1 classifier's weight of every unit; the top units are labelled."""
    figure = _figure(8.0, 3.6)
    axes = figure.add_subplot()
    units = np.arange(len(probe.coef)) if probe.units is None else probe.units
    axes.vlines(units, 0, probe.coef, linewidth=0.8, color="tab:blue")
    for unit in top_units:
        index = int(np.flatnonzero(units == unit)[0])
        axes.annotate(str(unit), (unit, probe.coef[index]), fontsize=8, ha="center",
                      va="bottom" if probe.coef[index] >= 0 else "top")
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xlabel("unit")
    axes.set_ylabel("weight" + (" (standardized features)" if probe.standardized else ""))
    axes.set_title(f"L1 logistic regression weights: {probe.features_used} of {len(probe.coef)} non-zero, C={probe.C:g}")
    figure.savefig(path)
    return path


def plot_data_efficiency(summary: Sequence[dict], path: Path, evaluated_on: str) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    sizes = [entry["size"] for entry in summary]
    for key, name, color in (("all_neurons", "all units (L1)", "tab:blue"), ("unit", "top unit alone", "tab:orange")):
        mean = np.array([entry[f"{key}_accuracy_mean"] for entry in summary]) * 100
        std = np.array([entry[f"{key}_accuracy_std"] for entry in summary]) * 100
        axes.plot(sizes, mean, marker="o", color=color, label=name)
        axes.fill_between(sizes, mean - std, mean + std, color=color, alpha=0.2)
    axes.set_xscale("log")
    axes.set_xlabel("labelled training examples")
    axes.set_ylabel(f"{evaluated_on} accuracy (%)")
    axes.set_title("data efficiency (mean and std over seeds)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.savefig(path)
    return path


def default_jobs(limit: int = 4) -> int:
    """Parallel fits by default: the usable cores, at most ``limit`` (each dense liblinear fit copies the features)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit))

