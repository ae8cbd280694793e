"""The figures of a transfer run: a unit's histogram by label, the probe's weights, the data-efficiency curve.

matplotlib is imported on the first figure (:mod:`sentiment_discovery.foundation.figures`), so that only a run that draws pays for it.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..foundation.figures import new_figure
from .probe import LinearProbe


def _figure(width: float = 6.4, height: float = 4.0):
    return new_figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_unit_histogram(values: np.ndarray, labels: np.ndarray, unit: int, sign: int, path: Path, split: str) -> Path:
    """Distribution of one unit's values by label, with the threshold-0 boundary."""
    figure = _figure()
    axes = figure.add_subplot()
    bins = np.histogram_bin_edges(values, bins=40)
    for label, color, name in ((0, "tab:red", "negative"), (1, "tab:green", "positive")):
        axes.hist(values[labels == label], bins=bins, alpha=0.55, color=color, label=f"{name} ({np.sum(labels == label)})")
    axes.axvline(0.0, color="black", linewidth=1, linestyle="--", label="threshold 0")
    axes.set_xlabel(f"cell state of unit {unit}")
    axes.set_ylabel("texts")
    direction = "high" if sign > 0 else "low"
    axes.set_title(f"unit {unit} on the {split} set (fires {direction} on positive texts)")
    axes.legend()
    figure.savefig(path)
    return path


def plot_unit_weights(probe: LinearProbe, top_units: Sequence[int], path: Path) -> Path:
    """The L1 classifier's weight of every unit (K > 2 classes: its largest absolute one); the top units are labelled."""
    weights = probe.unit_weights
    figure = _figure(8.0, 3.6)
    axes = figure.add_subplot()
    units = np.arange(len(weights)) if probe.units is None else probe.units
    axes.vlines(units, 0, weights, linewidth=0.8, color="tab:blue")
    for unit in top_units:
        index = int(np.flatnonzero(units == unit)[0])
        axes.annotate(str(unit), (unit, weights[index]), fontsize=8, ha="center",
                      va="bottom" if weights[index] >= 0 else "top")
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xlabel("unit")
    axes.set_ylabel(("largest |weight| over the classes" if probe.multiclass else "weight") + (" (standardized features)" if probe.standardized else ""))
    axes.set_title(f"L1 logistic regression weights: {probe.features_used} of {len(weights)} non-zero, C={probe.C:g}")
    figure.savefig(path)
    return path


def plot_data_efficiency(summary: Sequence[dict], path: Path, evaluated_on: str) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    sizes = [entry["size"] for entry in summary]
    for key, name, color in (("all_neurons", "all units (L1)", "tab:blue"), ("unit", "top unit alone", "tab:orange")):
        mean = np.array([entry[f"{key}_accuracy_mean"] for entry in summary]) * 100
        std = np.array([entry[f"{key}_accuracy_std"] for entry in summary]) * 100
        axes.plot(sizes, mean, marker="o", color=color, label=name)
        axes.fill_between(sizes, mean - std, mean + std, color=color, alpha=0.2)
    axes.set_xscale("log")
    axes.set_xlabel("labelled training examples")
    axes.set_ylabel(f"{evaluated_on} accuracy (%)")
    axes.set_title("data efficiency (mean and std over seeds)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.savefig(path)
    return path
