"""A linear probe: the logistic regression over some units' features that every classifier here is.

:class:`LinearProbe` holds the weights and computes its own probabilities (never through
scikit-learn, so a probe read back from JSON gives bit-identical ones);
:class:`PreparedInputs` converts the training features once and fits a probe per C with
liblinear's L1 logistic regression, as the paper's code did; the units a probe leans on
are ranked by weight, and the paper's single-unit rule (positive when the unit's value,
signed, is above 0) is scored. scikit-learn and scipy are imported inside the functions
that use them, so that a saved probe loads without them.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..foundation.errors import UserError

# Rows scored at a time by decision_function (bounds its temporary to a few MB at 4,096 units).
ROWS_PER_BLOCK = 256
# liblinear's default; the paper's code used it too. Fits that hit it are counted and reported.
MAX_ITER = 100


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

    Two classes (labels 0/1): ``coef`` is [k] and ``intercept`` a float, as the paper's. More
    than two (labels 0..K-1, one-vs-rest): ``coef`` is [K, k] and ``intercept`` [K], one
    binary regression per class; a text's probabilities are the K sigmoids normalised to sum
    to 1 (scikit-learn's one-vs-rest rule) and its prediction the class of the largest score.
    ``softmax``: the K scores are one multinomial model's logits (a fine-tuned head), their
    softmax the probabilities.
    """

    coef: np.ndarray  # float64 [k], or [K, k] for K > 2 classes
    intercept: float | np.ndarray
    C: float
    units: np.ndarray | None = None  # int64 [k]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    converged: bool = True
    softmax: bool = False

    @property
    def multiclass(self) -> bool:
        return self.coef.ndim == 2

    @property
    def n_classes(self) -> int:
        return self.coef.shape[0] if self.multiclass else 2

    @property
    def unit_weights(self) -> np.ndarray:
        """One weight per input [k]: the coefficient, or for K > 2 classes the largest absolute one over the classes."""
        return np.abs(self.coef).max(axis=0) if self.multiclass else self.coef

    @property
    def features_used(self) -> int:
        """Inputs with a non-zero weight (for any class)."""
        return int(np.count_nonzero(self.unit_weights))

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
        # Products summed by NumPy row by row, not by a BLAS matrix-vector product: BLAS splits rows
        # among its threads and sums a row in an order that depends on the split, so the last bits
        # of a score would depend on how many threads the process has (torchrun's ranks have one).
        inputs = self.inputs(features)
        scores = np.empty((len(inputs), self.coef.shape[0]) if self.multiclass else len(inputs))
        for start in range(0, len(inputs), ROWS_PER_BLOCK):
            block = inputs[start : start + ROWS_PER_BLOCK]
            if self.multiclass:
                scores[start : start + len(block)] = (block[:, None, :] * self.coef[None]).sum(axis=2)
            else:
                scores[start : start + len(block)] = (block * self.coef).sum(axis=1)
        return scores + self.intercept

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of label 1 for each row, float64 [N]; for K > 2 classes, of each class [N, K]."""
        return self.probabilities(self.decision_function(features))

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` from scores that :meth:`decision_function` gave (or scaled, or blended)."""
        from scipy.special import expit, softmax  # lazy: as scikit-learn (see the module's docstring)

        if self.multiclass and self.softmax:
            return softmax(scores, axis=1)
        probabilities = expit(scores)
        if self.multiclass:
            probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Label 0/1 of each row; for K > 2 classes, the class index 0..K-1 of the largest score."""
        return self.predictions(self.decision_function(features))

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        """:meth:`predict` from scores that :meth:`decision_function` gave (or blended)."""
        if self.multiclass:
            return np.argmax(scores, axis=1).astype(np.int64)
        return (scores > 0).astype(np.int64)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))

    def to_dict(self) -> dict:
        return {
            "C": self.C,
            "units": None if self.units is None else [int(u) for u in self.units],
            "coef": [_floats(row) for row in self.coef] if self.multiclass else _floats(self.coef),
            "intercept": _floats(self.intercept) if self.multiclass else self.intercept,
            "standardize": None if self.mean is None else {"mean": _floats(self.mean), "scale": _floats(self.scale)},
            "converged": self.converged,
            **({"softmax": True} if self.softmax else {}),
        }

    def check_shape(self, feature_width: int, name: str) -> None:
        """A clear error unless the weights fit ``feature_width`` features (a hand-edited or damaged file)."""
        width = feature_width if self.units is None else len(self.units)
        if self.multiclass:
            classes = self.coef.shape[0]
            if classes < 3 or self.coef.shape[1] != width or np.shape(self.intercept) != (classes,):
                raise ValueError(f"{name} has weights of shape {self.coef.shape} and {np.size(self.intercept)} "
                                 f"intercepts for {width} features of {feature_width}")
        elif self.coef.shape != (width,) or np.ndim(self.intercept) != 0:
            raise ValueError(f"{name} has {self.coef.size} weights for {width} features of {feature_width}")
        if self.units is not None and len(self.units) and not (0 <= self.units.min() and self.units.max() < feature_width):
            raise ValueError(f"{name} uses features outside 0..{feature_width - 1}")
        for part in ("mean", "scale"):
            values = getattr(self, part)
            if values is not None and values.shape != (width,):
                raise ValueError(f"{name} has {values.size} standardization {part}s for {width} features")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.intercept).all()):
            raise ValueError(f"{name} has non-finite weights")

    @classmethod
    def from_dict(cls, values: dict, name: str = "the probe") -> "LinearProbe":
        if not isinstance(values, dict):  # "all_neurons": null in a hand-edited classifier.json
            shown = "null" if values is None else type(values).__name__
            raise TypeError(f"{name} is {shown}, not a JSON object")
        standardize = values.get("standardize") or {}
        units = values.get("units")
        coef = np.asarray(values["coef"], dtype=np.float64)
        intercept = values["intercept"]
        return cls(
            coef=coef,
            intercept=np.asarray(intercept, dtype=np.float64) if isinstance(intercept, list) else float(intercept),
            C=float(values["C"]),
            units=None if units is None else np.asarray(units, dtype=np.int64),
            mean=_array_or_none(standardize.get("mean")),
            scale=_array_or_none(standardize.get("scale")),
            converged=bool(values.get("converged", True)),
            softmax=bool(values.get("softmax", False)),
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
        """Labels 0/1: one regression, as the paper's. Labels 0..K-1, K > 2: one per class against the rest."""
        classes = int(labels.max()) + 1
        if classes <= 2:
            model = _l1_logistic_regression(C, seed).fit(self.train, labels)
            coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
            iterations = np.max(model.n_iter_)
        else:
            from sklearn.multiclass import OneVsRestClassifier  # lazy: scikit-learn is slow to import

            # One binary L1 regression per class against the rest (liblinear fits only binary ones).
            missing = np.setdiff1d(np.arange(classes), labels)
            if missing.size:
                raise UserError(f"class {int(missing[0])} has no training example in this fit; every class needs one")
            models = OneVsRestClassifier(_l1_logistic_regression(C, seed)).fit(self.train, labels).estimators_
            coef = np.stack([model.coef_[0] for model in models]).astype(np.float64)
            intercept = np.array([model.intercept_[0] for model in models], dtype=np.float64)
            iterations = max(np.max(model.n_iter_) for model in models)
        return LinearProbe(
            coef=coef,
            intercept=intercept,
            C=float(C),
            units=self.units,
            mean=self.mean,
            scale=self.scale,
            converged=bool(iterations < MAX_ITER),
        )


def rank_units(probe: LinearProbe, count: int) -> np.ndarray:
    """The ``count`` units with the largest absolute weight (for any class), largest first (ties: lower index)."""
    importance = np.abs(probe.unit_weights)
    order = np.argsort(-importance, kind="stable")[:count]
    return order if probe.units is None else probe.units[order]


def unit_sign(probe: LinearProbe, unit: int) -> int:
    """+1 if the unit fires high on positive texts in ``probe`` (its weight is not negative), else -1.

    For K > 2 classes: the sign of its weight for the last class (the highest label, as 5 stars).
    """
    index = unit if probe.units is None else int(np.flatnonzero(probe.units == unit)[0])
    weight = probe.coef[-1, index] if probe.multiclass else probe.coef[index]
    return -1 if weight < 0 else 1


def threshold_accuracy(values: np.ndarray, labels: np.ndarray, sign: int) -> float:
    """Accuracy of the paper's rule for a single unit: positive when ``sign * value > 0``."""
    return float(np.mean((sign * np.asarray(values) > 0).astype(np.int64) == labels))
