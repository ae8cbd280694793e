"""The labels a probe is fitted on, checked once before anything is fitted.

Two classes are labels 0/1, as the paper's. More classes (``-multiclass``) are any integer
labels: the classes are the distinct training labels in increasing order, and every probe
is fitted on class indices 0..K-1 (:func:`class_indices`); the classifier records the
classes so that predictions are given back as the labels themselves.
"""

import numpy as np

from ..foundation.errors import UserError


def check_labels(labels: np.ndarray, what: str, *, multiclass: bool = False) -> np.ndarray:
    """Labels 0/1 with both present; with ``multiclass`` also class indices 0..K-1 (at least two present)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise UserError(f"{what} is empty")
    if multiclass and not np.isin(labels, (0, 1)).all():
        if labels.dtype.kind not in "iu" or labels.min() < 0:
            raise UserError(f"{what} has labels that are not class indices 0..K-1")
        if np.unique(labels).size < 2:
            raise UserError(f"{what} has only class index {int(labels[0])}; a classifier needs two classes or more")
        return labels.astype(np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{what} has labels other than 0/1; pass -binarize_sent to split ratings at their middle")
    if np.unique(labels).size < 2:
        raise UserError(f"{what} has only label {int(labels[0])}; a classifier needs examples of both labels")
    return labels.astype(np.int64)


def training_classes(labels: np.ndarray, what: str) -> np.ndarray:
    """The classes of ``-multiclass``: the distinct labels of the training set, in increasing order (int64)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise UserError(f"{what} is empty")
    classes = np.unique(labels)
    if classes.size < 2:
        raise UserError(f"{what} has only label {int(classes[0])}; a classifier needs two classes or more")
    return classes


def class_indices(labels: np.ndarray, classes: np.ndarray, what: str) -> np.ndarray:
    """Each label's index in ``classes``; a label that is not a training class is an error naming it."""
    labels = np.asarray(labels, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    index = np.clip(np.searchsorted(classes, labels), 0, classes.size - 1)
    unseen = labels != classes[index]
    if unseen.any():
        shown = ", ".join(str(int(c)) for c in classes)
        raise UserError(f"{what} has label {int(labels[unseen][0])}, which is not a class of the training set ({shown})")
    return index.astype(np.int64)


def is_default_classes(classes) -> bool:
    """True for the classes 0/1 of a binary classifier, which files leave unwritten (as before -multiclass)."""
    return classes is None or [int(c) for c in classes] == [0, 1]
