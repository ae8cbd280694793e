"""What a transfer run reports: the 2017 release's result lines, a probe's results entry, the predictions CSV."""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import storage
from ..errors import UserError
from .classifier import SentimentClassifier
from .probe import LinearProbe
from .sweep import Sweep


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
    import csv

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
