"""The regularisation sweep: one L1 logistic regression per C, C chosen on validation accuracy.

The grid, 2^-8 ... 2^0, is the paper's code's; the fits run in threads (liblinear releases
the GIL). scikit-learn is imported inside the function that uses it (lazy), so that
loading a saved classifier does not wait for them.
"""

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from ..foundation.choices import DEFAULT_C_GRID
from ..foundation.errors import UserError
from .labels import check_labels
from .probe import LinearProbe, PreparedInputs


@dataclasses.dataclass
class Sweep:
    """The probe at the chosen C and the validation accuracy of every C tried, in grid order."""
    probe: LinearProbe
    valid_accuracy: dict[float, float]
    unconverged: int = 0

    @property
    def C(self) -> float:
        return self.probe.C


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
    with quiet_convergence():
        return run_sweep(
            train_features, train_labels, valid_features, valid_labels,
            c_grid=c_grid, units=units, standardize=standardize, seed=seed, jobs=jobs, patience=patience,
            progress=progress,
        )


@contextlib.contextmanager
def quiet_convergence():
    """Non-convergence is recorded per fit (``LinearProbe.converged``) and reported once, not warned per fit.

    Warning filters are process-wide, so this wraps whole sweeps from the calling thread,
    never fits inside worker threads.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def run_sweep(train_features, train_labels, valid_features, valid_labels, *, c_grid, units, standardize, seed, jobs,
              patience, progress) -> Sweep:
    """:func:`sweep_regularization` inside a :func:`quiet_convergence` its caller holds (the curve's worker threads)."""
    if not c_grid or any(not np.isfinite(c) or c <= 0 for c in c_grid):
        raise UserError(f"regularization coefficients must be positive numbers, not {list(c_grid)}")
    c_grid = sorted(float(c) for c in c_grid)
    train_labels = check_labels(train_labels, "the training set", multiclass=True)
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


def default_jobs(limit: int = 4) -> int:
    """Parallel fits by default: the usable cores, at most ``limit`` (each dense liblinear fit copies the features)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit))

