"""The sentiment classifier: two probes on one model's features and the units they found, saved as JSON.

:class:`SentimentClassifier` holds the all-unit probe, the top-unit probe and the ranked
units, with the identity of the model whose features it reads; it is saved as
``classifier.json`` (never a pickle) and checked against the model by hash when it is
loaded with one. :func:`fit_sentiment_classifier` is the paper's procedure that makes one.
"""

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model
from ..features import CHUNK_LENGTH, prefix_pooled
from ..foundation import storage
from ..foundation.choices import POOLINGS
from ..foundation.errors import UserError
from ..foundation.locations import CLASSIFIER_FILE, classifier_directory
from ..foundation.text import TextOptions, preprocess_text
from ..precision import products_autocast
from .cache import ModelIdentity
from .labels import is_default_classes
from .ngrams import NgramProbe
from .probe import LinearProbe, rank_units, unit_sign
from .sweep import DEFAULT_C_GRID, Sweep, sweep_regularization

TOP_UNITS_SHOWN = 5
CLASSIFIER_FORMAT = "sentiment-discovery-classifier"
CLASSIFIER_FORMAT_VERSION = 1
PROBE_NAMES = ("all_neurons", "n_neurons")


@dataclasses.dataclass
class SentimentClassifier:
    """The full-feature probe, the top-unit probe and the units found, tied to one model's features."""
    all_neurons: LinearProbe
    n_neurons: LinearProbe
    top_units: list[int]
    top_unit_signs: list[int]
    model: ModelIdentity
    # The labels the probes' classes 0..K-1 stand for (-multiclass); None: the binary 0/1, not written to the file.
    classes: list[int] | None = None
    # Calibration (``calibrate``): the full classifier's scores are divided by this before the sigmoid/softmax.
    temperature: float = 1.0
    # The n-gram part (``calibrate -ngrams``): the full classifier's score is
    # (1 - ngram_weight) * the language model's + ngram_weight * the n-grams'; None: the language model alone.
    ngrams: NgramProbe | None = None
    ngram_weight: float = 0.0
    source: Path | None = dataclasses.field(default=None, compare=False)  # the file it was loaded from
    device: str = dataclasses.field(default="cpu", compare=False)
    # The precision new texts are featurized in (resolved when they are; "auto" suits the machine).
    precision: str = dataclasses.field(default="auto", compare=False)
    # The language model, loaded on first use by a prediction on texts.
    _language_model: object = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def class_labels(self) -> list[int]:
        """The label of each class, in the order of the probabilities: [0, 1] for a binary classifier."""
        return [0, 1] if self.classes is None else list(self.classes)

    @property
    def multiclass(self) -> bool:
        """More than two classes: probabilities [N, K], no sentiment unit threshold rule."""
        return len(self.class_labels) > 2

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
            **({} if is_default_classes(self.classes) else {"classes": [int(c) for c in self.classes]}),
            **({} if self.temperature == 1.0 else {"temperature": float(self.temperature)}),
            **({} if self.ngrams is None else {"ngrams": self.ngrams.to_dict() | {"weight": float(self.ngram_weight)}}),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """``classifier.json`` (and the n-gram part's ``ngrams.safetensors``, written first) into ``directory``."""
        if self.ngrams is not None:
            self.ngrams.save(directory)
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
                all_neurons=LinearProbe.from_dict(values["all_neurons"], "all_neurons"),
                n_neurons=LinearProbe.from_dict(values["n_neurons"], "n_neurons"),
                top_units=[int(u) for u in values["top_units"]],
                top_unit_signs=[int(s) for s in values["top_unit_signs"]],
                model=ModelIdentity(**values["model"]),
                classes=None if values.get("classes") is None else [int(c) for c in values["classes"]],
                temperature=float(values.get("temperature", 1.0)),
            )
            if not (math.isfinite(classifier.temperature) and classifier.temperature > 0):
                raise ValueError(f"temperature must be a positive number, not {values.get('temperature')!r}")
            if values.get("ngrams") is not None:
                if classifier.classes is not None:
                    raise ValueError("an n-gram part is for binary classifiers only")
                classifier.ngram_weight = float(values["ngrams"].get("weight", -1))
                if not 0 <= classifier.ngram_weight <= 1:
                    raise ValueError(f"the n-gram part's weight must be in [0, 1], not {values['ngrams'].get('weight')!r}")
                classifier.ngrams = NgramProbe.load(path.parent, values["ngrams"], path)
            # concat pooling gives 3 x rnn_size features (features.pooled_width, written out
            # here: this module must load without torch's import for the features module).
            rnn_size = classifier.model.rnn_size
            width = 3 * rnn_size if classifier.model.pooling == "concat" else rnn_size
            for name in PROBE_NAMES:
                classifier.probe(name).check_shape(width, name)
                if classifier.probe(name).n_classes != len(classifier.class_labels):
                    raise ValueError(f"{name} has {classifier.probe(name).n_classes} classes, the file lists "
                                     f"{len(classifier.class_labels)}")
            if len(set(classifier.class_labels)) != len(classifier.class_labels):
                raise ValueError("classes are not distinct")
            if len(classifier.top_unit_signs) != len(classifier.top_units) or not classifier.top_units:
                raise ValueError("top_units and top_unit_signs differ in length")
            if not all(0 <= unit < width for unit in classifier.top_units):
                raise ValueError(f"top_units lie outside 0..{width - 1}")
            # The file's own keys, checked here: attach_model would blame flags (-layer, -pooling) never passed.
            if classifier.model.pooling not in POOLINGS:
                raise ValueError(f"model.pooling is {classifier.model.pooling!r}, not one of {', '.join(POOLINGS)}")
            if not isinstance(classifier.model.layer, int) or classifier.model.layer < 0:
                raise ValueError(f"model.layer is {classifier.model.layer!r}, not a layer index (0 or more)")
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

    def check_layers(self, language_model, directory: str | os.PathLike) -> None:
        """The layer this classifier reads (its ``model.layer``) exists in ``language_model``, or an error
        naming the file and the key (not the -layer flag, which no one passed)."""
        if self.model.layer >= language_model.config.layers:
            raise UserError(f"{self.source or 'this classifier'} reads layer {self.model.layer} (its model.layer), "
                            f"but {directory} has {language_model.config.layers} layer(s); pass the model it was "
                            "fitted on")

    def attach_model(self, directory: str | os.PathLike) -> None:
        language_model = load_model(directory, device=self.device)
        self.check_layers(language_model, directory)
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

    def ngram_texts(self, texts: Sequence[str | bytes]) -> list[str]:
        """The texts as the n-gram part reads them: as the language model reads them (prepared, padded)."""
        options = TextOptions.from_dict(self.model.text_options)
        prepared = []
        for text in texts:
            if isinstance(text, bytes):
                data = text
            else:
                data = preprocess_text(text, options) if self.model.preprocess else text.encode("utf-8", "surrogateescape")
            prepared.append(data.decode("utf-8", errors="ignore"))
        return prepared

    def scores(self, texts_or_features, use: str = "all_neurons", texts: Sequence[str] | None = None) -> np.ndarray:
        """The classifier's scores before calibration: logits [N] (binary) or [N, K], from texts or features.

        A classifier with an n-gram part reads the texts too: pass them as ``texts`` with features.
        """
        features = self._as_features(texts_or_features)
        scores = self.probe(use).decision_function(features)
        if use == "all_neurons" and self.ngrams is not None:
            if texts is None:
                if hasattr(texts_or_features, "shape"):
                    raise UserError(f"{self.source or 'this classifier'} reads the texts too (an n-gram part): "
                                    "pass the texts with the features")
                texts = texts_or_features
            if len(texts) != len(scores):
                raise UserError(f"{len(texts)} texts for {len(scores)} rows of features")
            ngram_scores = self.ngrams.decision_function(self.ngram_texts(texts))
            scores = (1.0 - self.ngram_weight) * scores + self.ngram_weight * ngram_scores
        return scores

    def probabilities(self, scores: np.ndarray, use: str = "all_neurons") -> np.ndarray:
        """[N, 2] (or [N, K]) probabilities from :meth:`scores`, the temperature applied to the full classifier's."""
        if use == "all_neurons":
            scores = scores / self.temperature
        probabilities = self.probe(use).probabilities(scores)
        if probabilities.ndim == 2:
            return probabilities
        return np.stack([1.0 - probabilities, probabilities], axis=1)

    def predict_proba(self, texts_or_features, use: str = "all_neurons", texts: Sequence[str] | None = None) -> np.ndarray:
        """[N, 2] probabilities of labels 0 and 1 (scikit-learn's layout), from texts or features.

        With K > 2 classes: [N, K], one column per class in the order of ``class_labels``.
        Calibrated (the classifier's temperature) and with the n-gram part where it has them.
        """
        return self.probabilities(self.scores(texts_or_features, use, texts), use)

    def predict(self, texts_or_features, use: str = "all_neurons", texts: Sequence[str] | None = None) -> np.ndarray:
        """The predicted label of each text: 0/1, or with -multiclass the class label itself (such as 1-5 stars)."""
        indices = self.probe(use).predictions(self.scores(texts_or_features, use, texts))
        if self.classes is None:
            return indices
        return np.asarray(self.class_labels, dtype=np.int64)[indices]

    def probability_trace(self, text: str) -> np.ndarray:
        """P(positive) of the text so far, after each byte of the prepared text: float64 [bytes].

        With K > 2 classes: the probability of each class so far, float64 [bytes, K].

        The prefix ending at byte t is pooled as the classifier's features are (the state at
        t, or the mean or maximum of the states up to t), so the last value is
        ``predict_proba([text])[0, 1]``. The bytes are those the model reads (padding included);
        ``bytes`` are taken as already prepared, as ``featurize`` takes them.
        """


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
                    state = encoded.state.float()
                    cells.append(encoded.cell_sequences[self.model.layer][0].float())
        finally:
            model.train(was_training)
        pooled = prefix_pooled(torch.cat(cells), self.model.pooling).cpu().numpy()
        # The n-gram part reads each prefix as text (a cut UTF-8 character left out), as predict_proba reads the whole.
        prefixes = None if self.ngrams is None else [data[: end + 1] for end in range(len(data))]
        probabilities = self.predict_proba(pooled, texts=prefixes)
        return probabilities[:, 1] if self.classes is None else probabilities

    def predicted_class_trace(self, text: str) -> tuple[np.ndarray, int]:
        """The probability of the class predicted for the whole text, of the text so far [bytes], and that class.

        The sentiment trace of a classifier with classes other than 0/1 (-multiclass), as
        ``visualize`` and ``serve`` draw it: one probability per byte, like P(positive).
        """
        trace = self.probability_trace(text)
        if trace.ndim == 1:
            trace = np.stack([1.0 - trace, trace], axis=1)
        index = int(np.argmax(trace[-1]))
        return trace[:, index], self.class_labels[index]


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
    classes: Sequence[int] | None = None,
) -> TransferFit:
    """The paper's procedure: L1 sweep on all units, rank units, sweep again on the top ``num_neurons``.

    ``classes``: with -multiclass, the label each class index 0..K-1 of the labels stands for.
    """
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
        classes=None if is_default_classes(classes) else [int(c) for c in classes],
    )
    return TransferFit(classifier, full, top)
