"""Calibrated probabilities: a temperature fitted on held-out texts, the expected calibration error, reliability.

Temperature scaling (Guo et al., 2017): the classifier's logits are divided by one number
``T`` chosen to minimise the cross-entropy of held-out labels. Accuracy is unchanged (the
sign of a logit does not move); only how sure the probabilities are. ``T`` is stored in
``classifier.json`` and applied by every prediction (``SentimentClassifier.probabilities``).
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..foundation import storage
from ..foundation.errors import UserError
from ..foundation.figures import new_figure

ECE_BINS = 15  # equal-width confidence bins, the usual choice for the expected calibration error
TEMPERATURE_BOUNDS = (0.05, 50.0)


def _binary_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    # log(1 + e^-z) for label 1, log(1 + e^z) for label 0, without overflow.
    signed = np.where(labels == 1, logits, -logits)
    return float(np.mean(np.logaddexp(0.0, -signed)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` minimising the mean cross-entropy of ``sigmoid(logits / T)`` against 0/1 ``labels``."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if logits.ndim != 1 or logits.shape != labels.shape or not logits.size:
        raise UserError("calibration needs one logit per labelled text, and some texts")
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise UserError("temperature scaling here is for binary classifiers: labels must be 0 or 1")
    low, high = np.log(TEMPERATURE_BOUNDS)
    # Searched over log T: the loss is smooth and unimodal there, and T stays positive.
    found = minimize_scalar(lambda log_t: _binary_cross_entropy(logits / np.exp(log_t), labels),
                            bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


@dataclasses.dataclass
class Reliability:
    """Per confidence bin: texts, mean confidence and accuracy of the predicted label; and the ECE."""
    edges: np.ndarray  # [bins + 1]
    counts: np.ndarray  # int [bins]
    confidence: np.ndarray  # [bins], NaN where empty
    accuracy: np.ndarray
    ece: float

    def to_dict(self) -> dict:
        def listed(values):
            return [None if not np.isfinite(v) else round(float(v), 6) for v in values]

        return {"ece": round(self.ece, 6), "bins": len(self.counts), "counts": [int(c) for c in self.counts],
                "confidence": listed(self.confidence), "accuracy": listed(self.accuracy)}


def reliability(positive: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """The reliability of P(positive) against 0/1 labels: confidence is that of the predicted label (>= 0.5).

    ECE = sum over bins of (texts in bin / texts) * |accuracy - mean confidence|.
    """
    positive, labels = np.asarray(positive, dtype=np.float64), np.asarray(labels)
    predicted = (positive > 0.5).astype(np.int64)
    confidence = np.where(predicted == 1, positive, 1.0 - positive)
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.5, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; a confidence of exactly 0.5 goes into the first.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] / len(labels) * np.abs(accuracy[filled] - mean_confidence[filled])))
    return Reliability(edges, counts, mean_confidence, accuracy, ece)


def expected_calibration_error(positive: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    return reliability(positive, labels, bins).ece


def plot_reliability(curves: Sequence[tuple[str, Reliability]], path, title: str = "reliability"):
    """Accuracy against confidence per bin for each (name, reliability), the diagonal for reference; PNG."""
    figure = new_figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle="--", label="perfectly calibrated")
    for name, curve in curves:
        filled = curve.counts > 0
        axes.plot(curve.confidence[filled], curve.accuracy[filled], "o-", label=f"{name} (ECE {curve.ece:.3f})")
    axes.set_xlabel("confidence of the predicted label")
    axes.set_ylabel("accuracy")
    axes.set_xlim(0.5, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title(title)
    with storage.atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path
