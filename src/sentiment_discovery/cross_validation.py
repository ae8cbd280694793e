"""K-fold cross-validation of sentiment transfer: the protocol of the paper's Table 1 for MR, CR, SUBJ and MPQA.

Those datasets have no standard train/test split; the paper (and SentEval after it) report
10-fold cross-validation with the regularisation chosen inside each fold. Here:
- :func:`assign_folds` deals the rows into K folds, stratified by label and seeded; rows with
  the same text always land in the same fold, so no sentence is ever both trained on and
  tested (MPQA repeats many short phrases: 3,247 of its 10,603 rows share their text);
- :func:`fold_parts`: for test fold k, fold k+1 (mod K) is the validation part on which C is
  chosen and the other K-2 folds are fitted, so C never sees the test fold;
- :func:`cross_validate` runs the transfer procedure (:func:`transfer.fit_sentiment_classifier`)
  on every fold, and :func:`summarize` reports mean and standard deviation over folds, the C
  chosen per fold, and how stable the top units are from fold to fold;
- :func:`result_lines` prints that as the 2017 lines, and :class:`CrossValidationResults` is the
  run's ``results.json``.

Features are computed once for all rows; each fold only indexes them.
"""

import dataclasses
import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from . import transfer
from .foundation.errors import UserError
from .transfer.results import RunResults, absent_when_none

SPLITS = ("train", "valid", "test")
MIN_FOLDS = 3  # a test fold, a validation fold and at least one fold to fit on


def assign_folds(texts: Sequence[str], labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every row: stratified by label, reproducible from ``seed``, equal texts together."""
    labels = transfer.check_labels(labels, "the cross-validated set", multiclass=True)
    if folds < MIN_FOLDS:
        raise UserError(f"-cv needs at least {MIN_FOLDS} folds (one to test, one to choose C on, one to fit), not {folds}")
    _, groups = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    for label in np.unique(labels):
        distinct = np.unique(groups[labels == label]).size
        if folds > distinct:
            raise UserError(
                f"-cv {folds} needs at least {folds} distinct texts of each label, but label {label} has {distinct}; "
                f"pass a smaller -cv"
            )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    assignment = np.full(len(labels), -1, dtype=np.int64)
    for fold, (_, test_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        assignment[test_rows] = fold
    return assignment


def fold_parts(assignment: np.ndarray, fold: int) -> dict[str, np.ndarray]:
    """Row indices of train, valid and test for one fold: test is ``fold``, valid the next fold, train the rest."""
    folds = int(assignment.max()) + 1
    valid_fold = (fold + 1) % folds
    return {
        "train": np.flatnonzero((assignment != fold) & (assignment != valid_fold)),
        "valid": np.flatnonzero(assignment == valid_fold),
        "test": np.flatnonzero(assignment == fold),
    }


@dataclasses.dataclass
class FoldFit:
    fold: int
    rows: dict[str, np.ndarray]
    fit: "transfer.TransferFit"
    all_neurons: list[float]  # accuracy on train, valid, test
    n_neurons: list[float]
    # unit -> (sign in this fold's all-unit probe, threshold-0 accuracy on train, valid, test)
    thresholds: dict[int, tuple[int, list[float]]]

    def to_dict(self) -> dict:
        classifier = self.fit.classifier
        n_neurons = transfer.probe_report(self.fit.n_neurons, self.n_neurons)
        return {
            "fold": self.fold,
            "texts": {split: int(len(rows)) for split, rows in self.rows.items()},
            "all_neurons": transfer.probe_report(self.fit.all_neurons, self.all_neurons),
            "n_neurons": {**n_neurons, "units": classifier.n_neurons.units.tolist()},
            "top_units": classifier.top_units,
            "top_unit_signs": classifier.top_unit_signs,
        }


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    assignment: np.ndarray,
    identity: "transfer.ModelIdentity",
    *,
    num_neurons: int = 1,
    c_grid: Sequence[float] = transfer.DEFAULT_C_GRID,
    standardize: bool = False,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
) -> list[FoldFit]:
    """The transfer procedure on every fold (C on the validation fold only), evaluated on the test fold."""
    labels = transfer.check_labels(labels, "the cross-validated set", multiclass=True)
    folds = int(assignment.max()) + 1
    results = []
    for fold in tqdm(range(folds), desc="folds", unit="fold", disable=not progress):
        rows = fold_parts(assignment, fold)
        parts = {split: (features[index], labels[index]) for split, index in rows.items()}
        fit = transfer.fit_sentiment_classifier(
            *parts["train"], *parts["valid"], identity, num_neurons=num_neurons, c_grid=c_grid,
            standardize=standardize, seed=seed, jobs=jobs, progress=False,
        )
        classifier = fit.classifier
        all_neurons = [classifier.all_neurons.accuracy(x, y) for x, y in parts.values()]
        n_neurons = [classifier.n_neurons.accuracy(x, y) for x, y in parts.values()]
        results.append(FoldFit(fold, rows, fit, all_neurons, n_neurons, {}))
    # The threshold-0 rule of a single unit is binary: none for K > 2 classes.
    reported = units_across_folds(results) if labels.max() <= 1 else []
    for result in results:
        # The units reported across folds are judged in every fold, with that fold's sign for them.
        probe = result.fit.classifier.all_neurons
        for unit in reported:
            sign = transfer.unit_sign(probe, unit)
            accuracies = [
                transfer.threshold_accuracy(features[index, unit], labels[index], sign) for index in result.rows.values()
            ]
            result.thresholds[unit] = (sign, accuracies)
    return results


def units_across_folds(results: Sequence[FoldFit], count: int = transfer.TOP_UNITS_SHOWN) -> list[int]:
    """The units most often among a fold's top units; ties: the better mean position (absent counts as last)."""
    shown = transfer.TOP_UNITS_SHOWN
    appearances = Counter(unit for result in results for unit in result.fit.classifier.top_units[:shown])

    def mean_position(unit: int) -> float:
        positions = [
            result.fit.classifier.top_units[:shown].index(unit) if unit in result.fit.classifier.top_units[:shown] else shown
            for result in results
        ]
        return float(np.mean(positions))

    return sorted(appearances, key=lambda unit: (-appearances[unit], mean_position(unit), unit))[:count]


def _mean_std(values: Sequence[float]) -> dict:
    values = np.asarray(values, dtype=np.float64)
    # The sample standard deviation (ddof=1): the folds are a sample of the possible splits.
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def unit_stability(results: Sequence[FoldFit]) -> dict:
    """How much the folds agree on their top units: per unit, the folds where it is first and in the top five."""
    shown = transfer.TOP_UNITS_SHOWN
    tops = [result.fit.classifier.top_units[:shown] for result in results]
    signs = [dict(zip(result.fit.classifier.top_units, result.fit.classifier.top_unit_signs)) for result in results]
    units = []
    for unit in units_across_folds(results, count=len({u for top in tops for u in top})):
        unit_signs = {signs[i][unit] for i, top in enumerate(tops) if unit in top}
        units.append({
            "unit": unit,
            "top_1_folds": sum(top[0] == unit for top in tops),
            f"top_{shown}_folds": sum(unit in top for top in tops),
            "signs": sorted(unit_signs),
        })
    overlaps = [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in itertools.combinations(tops, 2)]
    return {
        "top_unit_per_fold": [top[0] for top in tops],
        "units": units,
        f"mean_pairwise_jaccard_top_{shown}": float(np.mean(overlaps)) if overlaps else 1.0,
    }


def summarize(results: Sequence[FoldFit]) -> dict:
    """Mean and standard deviation over folds of every accuracy, the C per fold, and unit stability."""
    summary = {"folds": len(results)}
    for name in transfer.PROBE_NAMES:
        accuracies = np.array([getattr(result, name) for result in results])
        sweeps = [getattr(result.fit, name) for result in results]
        summary[name] = {
            **{f"{split}_accuracy": _mean_std(accuracies[:, i]) for i, split in enumerate(SPLITS)},
            "C_per_fold": [sweep.C for sweep in sweeps],
            "features_used": _mean_std([sweep.probe.features_used for sweep in sweeps]),
        }
    units = units_across_folds(results)
    summary["single_unit_threshold_0"] = [
        {
            "unit": unit,
            "signs_per_fold": [result.thresholds[unit][0] for result in results],
            **{
                f"{split}_accuracy": _mean_std([result.thresholds[unit][1][i] for result in results])
                for i, split in enumerate(SPLITS)
            },
        }
        for unit in units
        if unit in results[0].thresholds
    ]
    summary["unit_stability"] = unit_stability(results)
    return summary


def result_lines(results: Sequence[FoldFit], summary: dict) -> list[str]:
    """The 2017 release's output lines, each number the mean over folds, then the spread and the C per fold."""
    folds = len(results)

    def means(entry: dict) -> list[float]:
        return [entry[f"{split}_accuracy"]["mean"] for split in SPLITS]

    def classifier(name: str) -> transfer.ClassifierScores:
        entry = summary[name]
        return transfer.ClassifierScores(
            means(entry), float(np.mean(entry["C_per_fold"])), round(entry["features_used"]["mean"])
        )

    units = [
        transfer.UnitScores(entry["unit"], 1 if sum(entry["signs_per_fold"]) >= 0 else -1, means(entry))
        for entry in summary["single_unit_threshold_0"]
    ]
    lines = transfer.seed_output(classifier("all_neurons"), classifier("n_neurons"), units_across_folds(results), units)
    for name in transfer.PROBE_NAMES:
        test = summary[name]["test_accuracy"]
        c_values = " ".join(f"{c:g}" for c in summary[name]["C_per_fold"])
        lines.append(
            f"{folds}-fold cross-validation, {name}: test accuracy {100 * test['mean']:.2f} ± {100 * test['std']:.2f} "
            f"(std over folds); C per fold: {c_values}"
        )
    stability = summary["unit_stability"]
    first = stability["units"][0]
    shown = transfer.TOP_UNITS_SHOWN
    lines.append(
        f"top unit per fold: {' '.join(map(str, stability['top_unit_per_fold']))}; unit {first['unit']} is first in "
        f"{first['top_1_folds']}/{folds} folds and among the top {shown} in {first[f'top_{shown}_folds']}/{folds}; "
        f"mean overlap of the folds' top {shown}: {stability[f'mean_pairwise_jaccard_top_{shown}']:.2f} (Jaccard)"
    )
    return lines


def protocol(folds: int, seed: int) -> dict:
    """How the folds were dealt and C chosen, as ``results.json`` records it."""
    return {
        "cross_validation_folds": folds,
        "seed": seed,
        "folds": "stratified by label, seeded; rows with the same text always in the same fold",
        "validation": "for test fold k, C is chosen on fold k+1 (mod K) and the other K-2 folds are fitted",
    }


@dataclasses.dataclass(kw_only=True)
class CrossValidationResults(RunResults):
    """``results.json`` of ``transfer -cv K``: every fold and the summary (no classifier is written)."""
    dataset: str
    model: transfer.ModelIdentity
    files: dict[str, str | None]  # train as given; valid and test None
    protocol: dict  # :func:`protocol`
    texts: int
    fold_of_text: list[int]
    standardize: bool
    c_grid: list[float]  # ascending
    summary: dict  # :func:`summarize`
    folds: list[dict]  # FoldFit.to_dict of each fold
    seed_output: list[str]
    timing: dict
    command_config: dict
    classes: list[int] | None = absent_when_none()  # the labels of the class indices 0..K-1 the folds were fitted on
