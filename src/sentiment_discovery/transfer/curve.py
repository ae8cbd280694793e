"""The data-efficiency curve: accuracy of classifiers fitted on small labelled subsets of train.

tqdm is imported inside :func:`data_efficiency_curve`, as everywhere in this package, so
that loading a saved classifier does not wait for it.
"""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from ..data.readers import apportion
from ..foundation.errors import UserError
from .labels import check_labels
from .probe import rank_units
from .sweep import DEFAULT_C_GRID, quiet_convergence, run_sweep


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
    if labels.max() > 1:  # class indices 0..K-1 of -multiclass
        return _stratified_sample_classes(labels, size, rng)
    by_label = [np.flatnonzero(labels == value) for value in (0, 1)]
    positives = int(round(size * len(by_label[1]) / len(labels)))
    positives = min(max(positives, 1), size - 1, len(by_label[1]))
    negatives = min(size - positives, len(by_label[0]))
    chosen = [rng.choice(by_label[0], negatives, replace=False), rng.choice(by_label[1], positives, replace=False)]
    return np.sort(np.concatenate(chosen))


def _stratified_sample_classes(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    by_label = [np.flatnonzero(labels == value) for value in range(int(labels.max()) + 1)]
    if size < len(by_label):
        raise UserError(f"a data-efficiency subset of {size} texts cannot hold all {len(by_label)} classes")
    counts = np.minimum(apportion(size, [len(rows) for rows in by_label]), [len(rows) for rows in by_label])
    counts = np.maximum(counts, 1)
    chosen = [rng.choice(rows, int(count), replace=False) for rows, count in zip(by_label, counts)]
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

    train_labels = check_labels(train_labels, "the training set", multiclass=True)
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
        full = run_sweep(x, y, valid_features, valid_labels, units=None, **options)
        unit = int(rank_units(full.probe, 1)[0])
        single = run_sweep(x, y, valid_features, valid_labels, units=[unit], **options)
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
    with quiet_convergence(), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
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
