"""The labels a probe is fitted on, checked once before anything is fitted."""

import numpy as np

from ..errors import UserError


def check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size == 0:
        raise UserError(f"{what} is empty")
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{what} has labels other than 0/1; pass -binarize_sent to split ratings at their middle")
    if np.unique(labels).size < 2:
        raise UserError(f"{what} has only label {int(labels[0])}; a classifier needs examples of both labels")
    return labels.astype(np.int64)
