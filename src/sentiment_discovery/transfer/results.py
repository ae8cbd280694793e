"""What ``transfer`` and ``finetune`` write to ``results.json``, one dataclass per file.

A field per key, declared in the file's order, so the file's layout is read here and not out of
a dict literal; ``to_dict`` is the file's content and ``from_dict`` reads it back. The values are
what JSON holds (the model's :class:`ModelIdentity` aside), worked out by the recipe that runs;
keys that only some runs have (``classes``, ``per_class``, ...) default to None and are then left
out of the file. ``cross_validation.CrossValidationResults`` is the ``transfer -cv`` one.
"""

import dataclasses
from typing import Any, Self

from .cache import ModelIdentity

_OMITTED_WHEN_NONE = "omitted when None"


def absent_when_none() -> Any:
    """A field that is left out of the file when it is None (a key that only some runs write)."""
    return dataclasses.field(default=None, metadata={_OMITTED_WHEN_NONE: True})


@dataclasses.dataclass(kw_only=True)
class RunResults:
    """The common part of every ``results.json`` dataclass: the conversion to and from the file's dict."""

    def to_dict(self) -> dict:
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.metadata.get(_OMITTED_WHEN_NONE):
                continue
            values[field.name] = value.to_dict() if isinstance(value, ModelIdentity) else value
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Self:
        return cls(**{**values, "model": ModelIdentity(**values["model"])})


@dataclasses.dataclass(kw_only=True)
class TransferResults(RunResults):
    """``results.json`` of a ``transfer`` run (train, validation, test), beside its ``classifier.json``."""

    dataset: str  # the train file's directory name
    model: ModelIdentity
    files: dict[str, str | None]  # train, valid, test as given
    files_resolved: dict[str, str | None]  # and as absolute paths
    texts: dict[str, int | None]
    validation: str  # how the validation texts were chosen
    test_labelled: bool
    standardize: bool
    c_grid: list[float]  # ascending
    all_neurons: dict  # report.probe_report
    top_units: list[int]
    n_neurons: dict  # report.probe_report and its "units"
    single_unit_threshold_0: list[dict]  # report.UnitScores.to_dict, two classes only
    data_efficiency: dict | None  # None with -no_data_efficiency
    seed_output: list[str]
    figures: list[str]  # file names in the results directory
    timing: dict
    command_config: dict
    classes: list[int] | None = absent_when_none()  # -multiclass: the label of each class index
    per_class: dict | None = absent_when_none()  # -multiclass: report.class_report


@dataclasses.dataclass(kw_only=True)
class FinetuneResults(RunResults):
    """``results.json`` of a ``finetune`` run, beside the fine-tuned ``model/`` and its ``classifier.json``."""

    kind: str = "finetuned"
    start_model: str
    model: ModelIdentity
    files: dict[str, str | None]
    texts: dict[str, int]
    finetuned_accuracy: dict[str, float | None]  # the head, on train, valid, test
    top_unit_accuracy: dict[str, float | None]  # a probe on the head's top unit
    top_units: list[int]
    best_step: int
    best_valid_accuracy_during_training: float
    steps: int
    total_steps: int
    epochs_run: float
    head_init: dict | None  # what probe.json recorded of the head's start
    precision: str
    seed_output: list[str]
    timing: dict
    history: list[dict]
    command_config: dict
    valid_accuracy_by_domain: dict[str, float] | None = absent_when_none()  # -domain_key
    valid_mean_domain_accuracy: float | None = absent_when_none()
    classes: list[int] | None = absent_when_none()
    per_class: dict | None = absent_when_none()
