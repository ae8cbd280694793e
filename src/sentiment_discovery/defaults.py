"""The default model shipped inside the package: where it lives, reading it, installing it.

The package data directory ``sentiment_discovery/default_model/`` holds

- ``model/``: a model directory (``config.json`` + ``model.safetensors``);
- ``classifier/``: the ``classifier.json`` (and results) that ``transfer`` wrote, whose
  model path is ``../model``, relative to itself, and whose weights sha256 is that of
  ``model/model.safetensors``;
- ``sentiment_unit.json``: the sentiment unit (the classifier's top unit), its sign and layer;
- ``MODEL_CARD.md``: what the model is, how it was made, how well it does;
- ``frozen/``: the same layout for the language model as pre-trained (before fine-tuning)
  and its frozen-feature L1 classifier, kept available beside the default.

``$SENTIMENT_DISCOVERY_DEFAULT_MODEL`` names another directory of the same layout to use
instead. :func:`export_default_model` (``sentiment-discovery export-default``) fills one in.
Where the parts live is ``locations`` (re-exported here), which the loaders read too.
:func:`resolve_sentiment_unit` is the one rule for the unit that ``visualize`` and ``serve``
draw: a unit named, a classifier's top unit, this directory's ``sentiment_unit.json``, or the
one a model's metadata records.
"""

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from . import transfer
from .checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_model,
    resolve_model_directory,
    save_model,
    update_model_metadata,
)
from .foundation import log, storage
from .foundation.errors import UserError
from .foundation.locations import (
    CLASSIFIER_FILE,
    CLASSIFIER_PART,
    CLASSIFIER_SUBDIR,
    ENV_VAR,
    FROZEN_SUBDIR,
    GET_A_MODEL,
    INSTALL,
    MODEL_PART,
    MODEL_SUBDIR,
    PACKAGE_DIRECTORY,
    classifier_directory,
    default_directory,
    frozen_classifier_directory,
    model_directory,
    require,
)

# The names of ``locations`` are part of this module's API (``defaults.ENV_VAR``, ``defaults.model_directory()``).
__all__ = [
    "CHECK_TEXTS", "CLASSIFIER_FILE", "CLASSIFIER_PART", "CLASSIFIER_SUBDIR", "ENV_VAR", "FROZEN_SUBDIR",
    "GET_A_MODEL", "INSTALL", "MODEL_CARD_FILE", "MODEL_PART", "MODEL_SUBDIR", "PACKAGE_DIRECTORY",
    "PACKAGE_SIZE_LIMIT_BYTES", "RELATIVE_MODEL_PATH", "RESULTS_PATTERNS", "SENTIMENT_UNIT_FILE",
    "SENTIMENT_UNIT_FORMAT", "SENTIMENT_UNIT_FORMAT_VERSION", "SIZE_LIMIT_BYTES", "ExportReport", "SentimentUnit",
    "classifier_directory", "default_directory", "directory_bytes", "export_default_model",
    "frozen_classifier_directory", "model_directory", "read_sentiment_unit", "require", "resolve_sentiment_unit",
    "sentiment_unit",
    "shipped_files",
]

SENTIMENT_UNIT_FILE = "sentiment_unit.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
SENTIMENT_UNIT_FORMAT = "sentiment-discovery-sentiment-unit"
SENTIMENT_UNIT_FORMAT_VERSION = 1
# The classifier's reference to the model, relative to the classifier's directory.
RELATIVE_MODEL_PATH = f"../{MODEL_SUBDIR}"
# The package test's limit on the shipped model's size on disk.
SIZE_LIMIT_BYTES = 25_000_000
# ... and on every default-model file the package carries together.
PACKAGE_SIZE_LIMIT_BYTES = 30_000_000
# The results files of a transfer run copied beside classifier.json (figures and results.json).
RESULTS_PATTERNS = ("results.json", "calibration.json", "*.png")
# A few short reviews to compare the exported classifier's probabilities with the original's.
CHECK_TEXTS = (
    "This is one of the best films I have seen in years.",
    "A dull, lifeless script and wooden acting.",
    "It was fine, I guess.",
    "I loved every minute of it and can't wait to watch it again!",
    "The worst purchase I have ever made. It broke after two days.",
    "Great value for the money, works exactly as described.",
    "Not bad at all.",
    "I wanted to like this, but it was a boring mess.",
)


@dataclasses.dataclass(frozen=True)
class SentimentUnit:
    """The unit that carries sentiment: positive texts drive it up (sign +1) or down (sign -1).

    ``layer`` is an index, or -1 (the top layer) where the source names none (a ``-neuron``, a
    model's metadata; see :func:`resolve_sentiment_unit`).
    """

    unit: int
    sign: int
    layer: int

    @property
    def negate(self) -> bool:
        return self.sign < 0

    def to_dict(self) -> dict:
        return {
            "format": SENTIMENT_UNIT_FORMAT,
            "format_version": SENTIMENT_UNIT_FORMAT_VERSION,
            "unit": self.unit,
            "sign": self.sign,
            "layer": self.layer,
            "negate": self.negate,
        }


def read_sentiment_unit(path: str | os.PathLike) -> SentimentUnit:
    path = Path(path)
    values = storage.read_json(path, SENTIMENT_UNIT_FORMAT)
    unit, sign, layer = values.get("unit"), values.get("sign"), values.get("layer")
    valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (unit, sign, layer))
    if not valid or unit < 0 or layer < 0 or sign not in (1, -1):
        raise UserError(f"{path} needs a unit index, a sign of 1 or -1 and a layer index; it has {values!r}")
    return SentimentUnit(unit, sign, layer)


def sentiment_unit(hint: str | None = None) -> SentimentUnit:
    """The default model's sentiment unit, as its ``sentiment_unit.json`` says."""
    hint = hint or f"pass -load_model DIR and -neuron N, {INSTALL}"
    root = require([MODEL_PART, SENTIMENT_UNIT_FILE], hint)
    return read_sentiment_unit(root / SENTIMENT_UNIT_FILE)


def resolve_sentiment_unit(
    model,
    classifier=None,
    neuron: int | None = None,
    layer: int | None = None,
    *,
    shipped: bool = False,
    model_name: str = "the model",
    unit_flag: str = "-neuron",
) -> SentimentUnit | None:
    """The sentiment unit to draw (``visualize``) or show (``serve``): the first source that names one.

    1. ``neuron``, a unit the user named (``visualize -neuron``, ``serve --unit``): that unit, sign +1
       (``visualize -negate`` negates it), the top layer.
    2. ``classifier``, a classifier the user named (``-classifier``; not one merely found beside a
       model, which only draws its sentiment trace): its top unit, that unit's sign and the layer it
       was fitted on. A classifier that uses no unit at all names none: an error.
    3. ``shipped`` (``model`` is the default model): its ``sentiment_unit.json`` (unit, sign, layer).
    4. ``model``'s metadata (``export-default``, an importer, ``finetune`` wrote it): ``sentiment_unit``,
       which must be a unit index, and ``sentiment_unit_sign`` (-1, else +1); the top layer.

    ``layer``, when given, replaces the source's layer. A layer of -1 is the top one; the caller
    checks the unit and layer against the model. None when no source names a unit: the caller's
    error says which of its flags would. ``model_name`` and ``unit_flag`` are how the errors
    name the model and the flag that names a unit.
    """
    if neuron is not None:
        found = SentimentUnit(neuron, 1, -1)
    elif classifier is not None:
        if classifier.all_neurons.features_used == 0:
            raise UserError(f"{classifier.source} uses no unit at all, so it names no sentiment unit; pass {unit_flag} N")
        found = SentimentUnit(int(classifier.top_units[0]), int(classifier.top_unit_signs[0]), classifier.model.layer)
    elif shipped:
        found = sentiment_unit()
    else:
        recorded = model.metadata.get("sentiment_unit")
        if recorded is None:
            return None
        if isinstance(recorded, bool) or not isinstance(recorded, int):
            raise UserError(f"{model_name} has sentiment_unit {recorded!r} in its metadata, not a unit index; "
                            f"pass {unit_flag} N")
        found = SentimentUnit(recorded, -1 if model.metadata.get("sentiment_unit_sign") == -1 else 1, -1)
    return found if layer is None else dataclasses.replace(found, layer=layer)


def shipped_files(root: str | os.PathLike | None = None) -> list[Path]:
    """Every file of the default model directory that a package must carry."""
    root = Path(root) if root is not None else PACKAGE_DIRECTORY
    return sorted(path for path in root.rglob("*") if path.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts
    ))


# --------------------------------------------------------------------------- exporting


@dataclasses.dataclass
class ExportReport:
    directory: Path
    model_bytes: int
    weights_sha256: str
    storage: str  # "bfloat16" or "as fitted"
    unit: SentimentUnit
    check_texts: int
    max_probability_change: float
    labels_agree: int
    results: dict | None  # the transfer run's results.json, when it was beside the classifier


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in Path(directory).iterdir() if path.is_file())


def _read_results(classifier_source: Path) -> dict | None:
    path = classifier_source.parent / "results.json"
    if not path.is_file():
        return None
    try:
        return storage.read_json(path)
    except UserError:
        return None


def _threshold_accuracy(results: dict | None, unit: int) -> dict | None:
    for row in (results or {}).get("single_unit_threshold_0") or []:
        if isinstance(row, dict) and row.get("unit") == unit:
            return {split: row.get(split) for split in ("train", "valid", "test")}
    return None


def export_default_model(
    model: str | os.PathLike,
    classifier: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    bf16: bool = False,
) -> ExportReport:
    """Install ``model`` and the ``classifier`` fitted on it as a default model directory.

    Copies ``config.json`` and ``model.safetensors`` (with ``bf16``, the weights are stored
    in bfloat16: half the size, each weight rounded to 8 significant bits), the classifier
    with its model reference rewritten to ``../model`` and the copied weights' sha256, the
    transfer results and figures, and writes ``sentiment_unit.json``. Everything is staged
    in ``<out>/.export.partial/`` and verified (the staged classifier must find and accept
    the staged model) before it replaces what ``out`` held; ``MODEL_CARD.md`` is left alone.
    """


    source_dir = resolve_model_directory(model)
    fitted = transfer.SentimentClassifier.load(classifier)
    if fitted.classes is not None:
        shown = ", ".join(map(str, fitted.classes))
        raise UserError(f"{classifier} classifies into classes {shown} (-multiclass); the default classifier is a "
                        "negative/positive one (labels 0/1): export a classifier fitted on binary labels")
    fitted.attach_model(source_dir)  # the classifier must have been fitted on this very model
    if fitted.all_neurons.features_used == 0:
        raise UserError(
            f"{fitted.source} uses no unit at all, so its top unit is arbitrary, not a sentiment unit; "
            "fit a classifier that uses the features (e.g. transfer -standardize) before shipping it"
        )
    unit = resolve_sentiment_unit(fitted.language_model, fitted)
    results = _read_results(fitted.source)

    out = Path(out) if out is not None else default_directory()
    check_export_directory(out, [source_dir, fitted.source.parent])
    out.mkdir(parents=True, exist_ok=True)
    # Two exports into one directory: the second is refused (the lock is held to the end).
    lock = contextlib.ExitStack()
    lock.enter_context(storage.output_lock(out, what="--out"))
    staging = out / ".export.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        # The model: verbatim (same weights, same hash), or re-saved with bfloat16 storage.
        staged_model = staging / MODEL_SUBDIR
        if bf16:
            language_model = load_model(source_dir)
            save_model(language_model, staged_model, metadata=dict(language_model.metadata), dtype=torch.bfloat16)
        else:
            staged_model.mkdir()
            for name in (CONFIG_FILE, WEIGHTS_FILE):
                shutil.copyfile(source_dir / name, staged_model / name)
        weights_storage = "bfloat16" if bf16 else "as fitted"
        # Writing the unit into the model is this command's explicit purpose (visualize reads it).
        update_model_metadata(
            staged_model,
            sentiment_unit=unit.unit,
            sentiment_unit_sign=unit.sign,
            sentiment_unit_source=f"default model {CLASSIFIER_SUBDIR}/",
            default_model={"weights_storage": weights_storage, "fitted_on_weights_sha256": fitted.model.weights_sha256},
        )
        weights_sha256 = storage.file_sha256(staged_model / WEIGHTS_FILE)

        # The classifier, pointing at the staged model by relative location and hash.
        staged_identity = dataclasses.replace(
            fitted.model, name=MODEL_SUBDIR, path=str(staged_model.resolve()), weights_sha256=weights_sha256
        )
        probe = dataclasses.replace(fitted, model=staged_identity, source=None)
        before = fitted.predict_proba(list(CHECK_TEXTS))[:, 1]
        after = probe.predict_proba(list(CHECK_TEXTS))[:, 1]
        change = float(abs(after - before).max())
        agree = int(((before > 0.5) == (after > 0.5)).sum())
        values = fitted.to_dict()
        values["model"] = dataclasses.replace(staged_identity, path=RELATIVE_MODEL_PATH).to_dict()
        values["export"] = {
            "fitted_on": {"path": fitted.model.path, "weights_sha256": fitted.model.weights_sha256},
            "weights_storage": weights_storage,
            "check": {"texts": len(CHECK_TEXTS), "max_probability_change": change, "labels_agree": agree},
        }
        staged_classifier = staging / CLASSIFIER_SUBDIR
        if fitted.ngrams is not None:  # the n-gram part's arrays, beside the classifier.json that names them
            fitted.ngrams.save(staged_classifier)
        storage.write_json(staged_classifier / CLASSIFIER_FILE, values)
        for pattern in RESULTS_PATTERNS:
            for path in sorted(fitted.source.parent.glob(pattern)):
                shutil.copyfile(path, staged_classifier / path.name)

        unit_values = unit.to_dict()
        unit_values["classifier"] = CLASSIFIER_PART
        threshold = _threshold_accuracy(results, unit.unit)
        if threshold is not None:
            unit_values["threshold_0_accuracy"] = threshold
        if results and results.get("dataset"):
            unit_values["dataset"] = results["dataset"]
        storage.write_json(staging / SENTIMENT_UNIT_FILE, unit_values)

        for path in staging.rglob("*"):  # readable by everyone who can import the package
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

        # Verify the staged directory exactly as the default loaders will read it.
        check = transfer.SentimentClassifier.load(staged_classifier)
        check.attach_model(check.model.path)
        if read_sentiment_unit(staging / SENTIMENT_UNIT_FILE) != unit:
            raise UserError(f"{staging / SENTIMENT_UNIT_FILE} did not read back as written")

        _swap_in(staging, out, [MODEL_SUBDIR, CLASSIFIER_SUBDIR, SENTIMENT_UNIT_FILE])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.close()

    model_bytes = directory_bytes(out / MODEL_SUBDIR)
    if model_bytes > SIZE_LIMIT_BYTES:
        log.notice(f"the model takes {model_bytes / 1e6:.1f} MB, over the {SIZE_LIMIT_BYTES / 1e6:.0f} MB "
                   "a shipped default may take (tests/test_default_model.py); export with --bf16")
    return ExportReport(out, model_bytes, weights_sha256, weights_storage, unit, len(CHECK_TEXTS), change, agree, results)


# What a default-model directory holds besides the parts an export replaces (kept as they are).
KEPT_ENTRIES = (MODEL_CARD_FILE, FROZEN_SUBDIR, "__init__.py", "__pycache__")
REPLACED_ENTRIES = (MODEL_SUBDIR, CLASSIFIER_SUBDIR, SENTIMENT_UNIT_FILE)


def check_export_directory(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an ``--out`` that holds what no export wrote (an experiment, a model directory) or that is an input.

    An export replaces ``model/``, ``classifier/`` and ``sentiment_unit.json``: those may exist
    only as an earlier export left them (``sentiment_unit.json`` says so). Hidden entries
    (the lock, staging folders) are the export's own.
    """
    target = out.resolve()
    for source in inputs:
        source = source.resolve()
        inside = [source, *source.parents]
        replaced = any(target / name in inside for name in REPLACED_ENTRIES)
        if replaced or source == target or source in target.parents:
            raise UserError(f"--out {out} is or holds the input {source}; install into another directory")
    if not out.is_dir():
        if out.exists():
            raise UserError(f"--out {out} is a file, not a directory")
        return
    entries = sorted(entry.name for entry in out.iterdir() if not entry.name.startswith("."))
    foreign = [name for name in entries if name not in KEPT_ENTRIES + REPLACED_ENTRIES]
    if not foreign and any(name in entries for name in (MODEL_SUBDIR, CLASSIFIER_SUBDIR)):
        try:
            read_sentiment_unit(out / SENTIMENT_UNIT_FILE)
        except UserError:
            foreign = [name for name in entries if name in (MODEL_SUBDIR, CLASSIFIER_SUBDIR)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UserError(
            f"--out {out} holds {shown}, which no export wrote (it is not a default-model directory: "
            f"{', '.join(REPLACED_ENTRIES)}, {MODEL_CARD_FILE}); an export would replace what is there: "
            "choose a new or empty directory"
        )


def _swap_in(staging: Path, out: Path, names: Sequence[str]) -> None:
    """Move each staged part into ``out``; other files there (the model card) stay."""
    for name in names:
        if (staging / name).is_dir():
            storage.swap_in(staging / name, out / name)
        else:
            os.replace(staging / name, out / name)
