"""What a transfer run reports: the 2017 release's result lines, a probe's results entry, the predictions CSV.

:func:`seed_output` writes the 2017 lines for ``transfer``, ``transfer -cv`` (each number the
mean over folds) and ``finetune`` alike, from :class:`ClassifierScores` and :class:`UnitScores`;
:func:`evaluate` scores a fitted classifier on its splits for them.
"""

import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..foundation import storage
from ..foundation.errors import UserError
from .classifier import SentimentClassifier
from .probe import LinearProbe, threshold_accuracy
from .sweep import Sweep

SPLITS = ("train", "valid", "test")


def accuracy_text(accuracy: float | None) -> str:
    return "--.--" if accuracy is None else f"{100 * accuracy:05.2f}"


@dataclasses.dataclass(frozen=True)
class ClassifierScores:
    """A classifier as its 2017 lines show it: accuracy on train, valid and test (None: no labelled
    split), its C and the features it uses (for ``-cv``: means over the folds)."""

    accuracies: Sequence[float | None]
    C: float
    features_used: int

    @classmethod
    def of(cls, probe: LinearProbe, accuracies: Sequence[float | None]) -> "ClassifierScores":
        return cls(list(accuracies), probe.C, probe.features_used)


@dataclasses.dataclass(frozen=True)
class UnitScores:
    """One unit's threshold-0 rule (the unit, the sign it fires with, its accuracy on train, valid and test)."""

    unit: int
    sign: int
    accuracies: Sequence[float | None]

    def to_dict(self) -> dict:
        """Its entry in ``results.json``'s ``single_unit_threshold_0``."""
        return {"unit": self.unit, "sign": self.sign, **dict(zip(SPLITS, self.accuracies))}


def seed_output(
    all_neurons: ClassifierScores,
    n_neurons: ClassifierScores,
    top_units: Sequence[int],
    units: Sequence[UnitScores] = (),
) -> list[str]:
    """The 2017 release's result lines, as its ``sentiment_transfer.py`` printed them: the three lines of
    the all-unit classifier, the top units, the three of the top-unit one, then one line per unit rule."""
    return [
        *seed_result_lines("all_neurons", all_neurons.accuracies, all_neurons),
        top_units_line(top_units),
        *seed_result_lines("n_neurons", n_neurons.accuracies, n_neurons),
        *(threshold_line(unit.unit, unit.sign, unit.accuracies) for unit in units),
    ]


class _Regularized(Protocol):
    """What one classifier's lines show besides its accuracies (a :class:`LinearProbe` or :class:`ClassifierScores`)."""

    @property
    def C(self) -> float: ...

    @property
    def features_used(self) -> int: ...


def seed_result_lines(name: str, accuracies: Sequence[float | None], probe: _Regularized) -> list[str]:
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


class _Scored(Protocol):
    """A split as :func:`evaluate` reads it: its features and labels (None: unlabelled)."""

    features: np.ndarray
    labels: np.ndarray | None


@dataclasses.dataclass
class Evaluation:
    """A fitted classifier's accuracies on (train, valid, test); None where a split is missing or unlabelled."""

    all_neurons: list[float | None]
    n_neurons: list[float | None]
    single_units: list[UnitScores]  # each top unit's threshold-0 rule (none for more than two classes)
    lines: list[str]  # the 2017 output, then one threshold-0 line per top unit


def evaluate(classifier: SentimentClassifier, splits: Sequence[_Scored | None]) -> Evaluation:
    """The 2017 result lines; the single-unit threshold-0 lines only for two classes (the rule is binary)."""

    def on_each(score) -> list[float | None]:
        return [None if s is None or s.labels is None else score(s) for s in splits]

    all_neurons = on_each(lambda s: classifier.all_neurons.accuracy(s.features, s.labels))
    n_neurons = on_each(lambda s: classifier.n_neurons.accuracy(s.features, s.labels))
    single_units = [] if classifier.multiclass else [
        UnitScores(unit, sign, on_each(lambda s: threshold_accuracy(s.features[:, unit], s.labels, sign)))
        for unit, sign in zip(classifier.top_units, classifier.top_unit_signs)
    ]
    lines = seed_output(
        ClassifierScores.of(classifier.all_neurons, all_neurons), ClassifierScores.of(classifier.n_neurons, n_neurons),
        classifier.top_units, single_units,
    )
    return Evaluation(all_neurons, n_neurons, single_units, lines)


def probe_report(sweep: Sweep, accuracies: Sequence[float | None]) -> dict:
    """A probe's entry in ``results.json``: its accuracy on train, valid and test, its C and every C tried."""
    return {
        **dict(zip(("train_accuracy", "valid_accuracy", "test_accuracy"), accuracies)),
        "C": sweep.C,
        "features_used": sweep.probe.features_used,
        "valid_accuracy_by_C": [{"C": c, "valid_accuracy": a} for c, a in sweep.valid_accuracy.items()],
        "unconverged_fits": sweep.unconverged,
    }


def class_report(classes: Sequence[int], predicted: np.ndarray, labels: np.ndarray, train_labels: np.ndarray,
                 evaluated_on: str) -> dict:
    """-multiclass: per class, a split's texts, predictions and recall, and the confusion matrix.

    ``predicted``, ``labels`` and ``train_labels`` are class indices into ``classes``. Also the
    accuracy of always answering the most frequent training class, the baseline to beat.
    """
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    majority = int(np.argmax(np.bincount(train_labels, minlength=len(classes))))
    return {
        "evaluated_on": evaluated_on,
        "majority_class": classes[majority],
        "majority_class_accuracy": float(np.mean(labels == majority)),
        "classes": [
            {"class": label, "texts": int(confusion[i].sum()), "predicted": int(confusion[:, i].sum()),
             "recall": None if not confusion[i].sum() else float(confusion[i, i] / confusion[i].sum())}
            for i, label in enumerate(classes)
        ],
        "confusion": {"rows": "true class", "columns": "predicted class", "matrix": confusion.tolist()},
    }


def domain_accuracies(correct, domains: list[str]) -> dict[str, float]:
    """Accuracy within each domain, in the order the domains first appear."""
    correct = np.asarray(correct, dtype=bool)
    names = list(dict.fromkeys(domains))
    where = np.asarray(domains)
    return {name: float(correct[where == name].mean()) for name in names}


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
    scores: np.ndarray | None = None,
) -> Path:
    """One CSV row per text, in input order: [line], text, [label], prediction, both probabilities, top unit values.

    ``lines``: where each text was read (its line in the input file; None for none), written first.
    ``scores``: the full classifier's scores of these texts, where the caller has them already
    (``SentimentClassifier.scores``); the probabilities are the calibrated ones, n-gram part included.
    A classifier with classes other than 0/1 (-multiclass) writes the predicted class and the full
    classifier's probability of each class (``probability_<class>``) instead of the two probabilities.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise UserError(f"results are written as CSV; name the file .csv, not {path.name}")
    classes = classifier.classes
    if scores is None:
        scores = classifier.scores(features, texts=texts)
    full = classifier.probabilities(scores)
    predicted = classifier.all_neurons.predictions(scores)
    if classes is not None:
        predicted = np.asarray(classifier.class_labels, dtype=np.int64)[predicted]
    else:
        full = full[:, 1]
        top = classifier.n_neurons.predict_proba(features)
    units = classifier.top_units
    header = (["line"] if lines is not None else []) + [text_key] + ([label_key] if labels is not None else [])
    if classes is not None:
        header += ["prediction"] + [f"probability_{c}" for c in classes] + [f"neuron_{u}" for u in units]
    else:
        header += ["prediction", "probability_all_neurons", "probability_n_neurons"] + [f"neuron_{u}" for u in units]
    # surrogateescape: a text given as bytes that are not UTF-8 (a shell's $'\xff') is written back as those bytes.
    with storage.atomic_file(path, "w", newline="", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, text in enumerate(texts):
            values = ([] if lines is None else ["" if lines[row] is None else lines[row]]) + [text]
            values += [int(labels[row])] if labels is not None else []
            if classes is not None:
                values += [int(predicted[row])] + [repr(float(p)) for p in full[row]]
            else:
                values += [int(predicted[row]), repr(float(full[row])), repr(float(top[row]))]
            # str() of a float32 is its shortest round-trip form.
            values += [str(features[row, u]) for u in units]
            writer.writerow(values)
    return path
