"""``sentiment-discovery transfer``: the sentiment neuron, found with an L1 logistic regression.

Featurizes the labelled train/valid/test files (features cached on disk), sweeps the
regularisation on validation, ranks the units, fits the top unit(s) alone, prints the
results in the 2017 format and writes everything under
``<experiment_dir>/<experiment_name>/<dataset>/<model>/``: ``results.json``,
``classifier.json`` (read by ``classify``), and the figures.

The labelled files are read by ``recipes/splits.py``, shared with ``finetune``.
"""

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from .. import checkpoint, cross_validation, runtime, transfer
from ..checkpoint import resolve_model_directory
from ..configs.transfer import TransferConfig
from ..foundation import log, storage
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..model import ByteLM
from .common import feature_cache, resolve_load_model
from .splits import LabelledFiles, Split, encode_classes, hold_out_validation, read_splits

RESULTS_FILE = "results.json"


def dataset_name(train_path: str) -> str:
    """The train file's directory name (``data/sst2/train.csv`` -> ``sst2``); its stem at a filesystem root."""
    path = Path(train_path).resolve()
    return path.parent.name or path.name.split(".")[0]


@dataclasses.dataclass
class Labelled:
    """The splits of one fit: train, validation (a file, or held out of train) and the test file if any."""
    train: Split
    valid: Split
    test: Split | None
    validation: str  # how the validation texts were chosen, as results.json says

    @property
    def evaluated(self) -> Split:
        """What the curve and the per-class report are measured on: the labelled test set, else validation."""
        return self.test if self.test is not None and self.test.labels is not None else self.valid


def featurize_splits(model, identity, splits: dict[str, Split], config: TransferConfig) -> dict:
    """Fill in every split's features (from the cache when possible); returns the timings."""
    cache = feature_cache(config, config.experiment_path)
    timing = {}
    for split in splits.values():
        result = transfer.featurize_cached(model, split.texts, identity, cache, batch_size=config.batch_size)
        split.features = result.features
        timing[split.name] = {
            "texts": len(split.texts),
            "seconds": round(result.seconds, 3),
            "cached": result.cached,
            "texts_per_s": None if result.texts_per_s is None else round(result.texts_per_s, 1),
        }
    return timing


def check_flags(config: TransferConfig) -> None:
    """The declared bounds of every flag, then what no single flag's bounds can say."""
    check_options(config)
    if config.data_efficiency_seeds < 1 and not config.no_data_efficiency:
        raise UserError("-data_efficiency_seeds must be at least 1 (or pass -no_data_efficiency)")
    if config.write_results and not config.write_results.lower().endswith(".csv"):
        raise UserError(f"-write_results writes CSV; name the file .csv, not {config.write_results}")
    if config.cv:
        given = [flag for flag, value in (("-valid", config.valid), ("-test", config.test),
                                          ("-write_results", config.write_results)) if value]
        if given:
            raise UserError(f"-cv cross-validates the -train file alone and fits one classifier per fold: "
                            f"drop {', '.join(given)} (join the files into one to cross-validate them all)")


def print_notices(fit: "transfer.TransferFit") -> None:
    probe = fit.classifier.all_neurons
    advice = "" if probe.standardized else " (try -standardize)"
    if probe.features_used == 0:
        log.notice(f"the classifier chosen on validation uses no unit at all (C={probe.C:g}), so the top "
                   f"neurons are arbitrary: the features carry no sentiment signal at these C{advice}")
    unconverged = fit.all_neurons.unconverged + fit.n_neurons.unconverged
    if unconverged:
        log.notice(f"{unconverged} regression fit(s) stopped at liblinear's {transfer.MAX_ITER} iterations "
                   f"before converging{advice}")


def results_directory(config: TransferConfig, model_path: Path) -> Path:
    """``<experiment>/<dataset>/<model>``, refused up front when it holds the results of another training file."""
    model_name = resolve_model_directory(model_path).name.removesuffix(".previous")
    directory = config.experiment_path / dataset_name(config.train) / model_name
    results_path = directory / RESULTS_FILE
    if results_path.is_file():
        earlier = storage.read_json(results_path).get("files_resolved", {}).get("train")
        if earlier is not None and earlier != str(Path(config.train).resolve()):
            raise UserError(
                f"{directory} holds the results of transfer on {earlier}, not {config.train}; "
                "pass another -experiment_name (or remove that directory) to keep both"
            )
    return directory


def run(config: TransferConfig) -> None:
    with contextlib.ExitStack() as locks:
        _run(config, locks)


def _run(config: TransferConfig, locks: contextlib.ExitStack) -> None:
    """Read and featurize the files, fit and print, then write the run's outputs whole: each step a function below."""
    started = time.perf_counter()
    check_flags(config)
    runtime.configure_threads()
    runtime.seed_everything(config.seed)
    model_path = resolve_load_model(config.load_model, config)
    results_dir = lock_outputs(config, model_path, locks)
    files = LabelledFiles.from_config(config)
    splits = read_splits(files, cross_validating=bool(config.cv))
    classes = encode_classes(splits, files)
    if config.cv:  # bad fold counts are found before any featurizing
        folds = cross_validation.assign_folds(splits["train"].texts, splits["train"].labels, config.cv, config.seed)
    model, identity = load_featurizer(config, model_path)
    timing: dict = {"featurize": featurize_splits(model, identity, splits, config)}
    if config.cv:
        return run_cross_validation(config, splits["train"], folds, identity, timing, started, classes)
    data = labelled_splits(files, splits)
    fit, evaluation = fit_and_evaluate(config, data, identity, classes, timing)
    staging = staging_directory(results_dir, locks)
    figures, curve = write_outputs(config, staging, model, fit, evaluation, data, classes, timing)
    timing["total_seconds"] = round(time.perf_counter() - started, 3)
    results = transfer_results(config, identity, data, fit, evaluation, curve, figures, timing, classes)
    publish(results, staging, results_dir, fit.classifier)


def lock_outputs(config: TransferConfig, model_path: Path, locks: contextlib.ExitStack) -> Path:
    """The results directory, and the -write_results file checked; both locked until the run ends."""
    if config.write_results:
        storage.check_output(config.write_results, [config.train, config.valid, config.test], flag="-write_results")
    results_dir = results_directory(config, model_path)
    locks.enter_context(storage.output_lock(results_dir, what="-experiment_name"))
    if config.write_results:
        locks.enter_context(storage.output_lock(config.write_results, what="-write_results file"))
    return results_dir


def load_featurizer(config: TransferConfig, model_path: Path) -> "tuple[ByteLM, transfer.ModelIdentity]":
    """The model, and what its features depend on (refused when -num_neurons exceeds its units)."""
    model = checkpoint.load_model(model_path, device=runtime.select_device(config.cuda))
    identity = transfer.ModelIdentity.of(
        model, model_path, layer=config.layer, preprocess=not config.no_preprocess, precision=config.precision,
        pooling=config.pooling,
    )
    if not 1 <= config.num_neurons <= identity.rnn_size:
        raise UserError(f"-num_neurons must be between 1 and the model's {identity.rnn_size} units, not {config.num_neurons}")
    return model, identity


def labelled_splits(files: LabelledFiles, splits: dict[str, Split]) -> Labelled:
    """Train, validation (the -valid file, or held out of -train with -split) and test."""
    if "valid" in splits:
        return Labelled(splits["train"], splits["valid"], splits.get("test"), f"validation file {files.valid}")
    train, valid = hold_out_validation(splits["train"], files)
    validation = f"{len(valid.texts)} texts held out of -train (-split {files.split:g}, seed {files.seed})"
    return Labelled(train, valid, splits.get("test"), validation)


def fit_and_evaluate(
    config: TransferConfig, data: Labelled, identity: "transfer.ModelIdentity", classes: "list[int] | None",
    timing: dict,
) -> "tuple[transfer.TransferFit, transfer.Evaluation]":
    """The paper's procedure on train (C chosen on validation), its 2017 lines printed and what they call for."""
    fit_start = time.perf_counter()
    fit = transfer.fit_sentiment_classifier(
        data.train.features, data.train.labels, data.valid.features, data.valid.labels, identity,
        num_neurons=config.num_neurons, c_grid=config.c_grid, standardize=config.standardize,
        seed=config.seed, jobs=config.jobs or transfer.default_jobs(), classes=classes,
    )
    timing["fit_seconds"] = round(time.perf_counter() - fit_start, 3)
    evaluation = transfer.evaluate(fit.classifier, [data.train, data.valid, data.test])
    print("\n".join(evaluation.lines), flush=True)
    print_notices(fit)
    if fit.classifier.multiclass:
        log.notice(f"{len(fit.classifier.class_labels)} classes, fitted one-vs-rest; the single-unit threshold-0 "
                   "lines of two classes are left out")
    return fit, evaluation


def staging_directory(results_dir: Path, locks: contextlib.ExitStack) -> Path:
    """An empty directory beside the results one, removed when the run ends (if not swapped in by then).

    Everything of this run is built there and swapped in whole, so no figure of an earlier run is
    left beside this run's classifier.
    """
    staging = storage.partial_directory(results_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    locks.callback(shutil.rmtree, staging, ignore_errors=True)  # gone already when it was swapped in
    return staging


def write_outputs(
    config: TransferConfig, staging: Path, model, fit: "transfer.TransferFit", evaluation: "transfer.Evaluation",
    data: Labelled, classes: "list[int] | None", timing: dict,
) -> tuple[list[Path], dict | None]:
    """classifier.json and the figures in ``staging``, the data-efficiency curve, the -write_results CSV.

    Returns the figures and the curve (None with -no_data_efficiency).
    """


    classifier = fit.classifier
    classifier.save(staging)
    figures = write_figures(staging, classifier, data.train, data.test, recorded_unit(model))
    curve = None
    if not config.no_data_efficiency:
        curve_start = time.perf_counter()
        curve = data_efficiency(config, classifier, evaluation, data)
        timing["data_efficiency_seconds"] = round(time.perf_counter() - curve_start, 3)
        path = staging / "data_efficiency.png"
        figures.append(transfer.plot_data_efficiency(curve["summary"], path, curve["evaluated_on"]))
    if config.write_results:
        target = data.test if data.test is not None else data.train
        labels = target.labels
        if labels is not None and classes is not None:
            labels = np.asarray(classes)[labels]
        written = transfer.write_predictions(
            config.write_results, target.texts, target.features, classifier,
            text_key=config.text_key, labels=labels, label_key=config.label_key,
        )
        log.info(f"wrote {written} ({len(target.texts)} {target.name} texts)")
    return figures, curve


def transfer_results(
    config: TransferConfig, identity: "transfer.ModelIdentity", data: Labelled, fit: "transfer.TransferFit",
    evaluation: "transfer.Evaluation", curve: dict | None, figures: list[Path], timing: dict,
    classes: "list[int] | None",
) -> "transfer.TransferResults":
    """What results.json holds of this run."""
    classifier = fit.classifier
    files = {"train": config.train, "valid": config.valid, "test": config.test}
    n_neurons = transfer.probe_report(fit.n_neurons, evaluation.n_neurons)
    per_class = None
    if classes is not None:
        evaluated = data.evaluated
        per_class = transfer.class_report(
            classifier.class_labels, classifier.all_neurons.predict(evaluated.features), evaluated.labels,
            data.train.labels, evaluated.name,
        )
    return transfer.TransferResults(
        dataset=dataset_name(config.train),
        model=identity,
        files=files,
        files_resolved={name: None if path is None else str(Path(path).resolve()) for name, path in files.items()},
        texts={"train": len(data.train.texts), "valid": len(data.valid.texts),
               "test": None if data.test is None else len(data.test.texts)},
        validation=data.validation,
        test_labelled=data.test is not None and data.test.labels is not None,
        standardize=config.standardize,
        c_grid=sorted(config.c_grid),
        all_neurons=transfer.probe_report(fit.all_neurons, evaluation.all_neurons),
        top_units=classifier.top_units,
        n_neurons={**n_neurons, "units": classifier.top_units[: config.num_neurons]},
        single_unit_threshold_0=[unit.to_dict() for unit in evaluation.single_units],
        data_efficiency=curve,
        seed_output=evaluation.lines,
        figures=[path.name for path in figures],
        timing=timing,
        command_config=dataclasses.asdict(config),
        classes=classes,
        per_class=per_class,
    )


def publish(results: "transfer.TransferResults", staging: Path, results_dir: Path,
            classifier: "transfer.SentimentClassifier") -> None:
    """results.json written, the staged directory swapped in for the results directory, and where to look next."""
    storage.write_json(staging / RESULTS_FILE, results.to_dict())
    storage.swap_in(staging, results_dir)
    log.info(f"results saved to {results_dir}/")
    if classifier.all_neurons.features_used and not classifier.multiclass:  # an empty classifier ranks nothing
        unit, sign = classifier.top_units[0], classifier.top_unit_signs[0]
        log.info(f"sentiment unit {unit} ({'positive' if sign > 0 else 'negative'}): draw it with "
                 f"`sentiment-discovery visualize -classifier {results_dir}`")


def recorded_unit(model) -> tuple[int, int] | None:
    """The sentiment unit (and its sign) the model's metadata records, as an imported release does."""
    unit = model.metadata.get("sentiment_unit")
    if not isinstance(unit, int) or isinstance(unit, bool) or not 0 <= unit < model.config.rnn_size:
        return None
    return unit, -1 if model.metadata.get("sentiment_unit_sign") == -1 else 1


def write_figures(
    directory: Path, classifier, train: Split, test: Split | None, recorded: tuple[int, int] | None = None
) -> list[Path]:
    """A histogram per top unit (test set, or train when the test set is missing or unlabelled) and the weights;
    and of the model's ``recorded`` sentiment unit (unit, sign) when it is not among them (the paper's figure 3)."""

    shown = test if test is not None and test.labels is not None else train
    paths = [transfer.plot_unit_weights(classifier.all_neurons, classifier.top_units, directory / "weights.png")]
    if classifier.multiclass:  # the histograms show negative against positive texts
        return paths
    drawn = list(zip(classifier.top_units, classifier.top_unit_signs))
    if recorded is not None and recorded[0] not in classifier.top_units:
        drawn.append(recorded)
    for unit, sign in drawn:
        path = directory / f"neuron_{unit}_histogram.png"
        paths.append(transfer.plot_unit_histogram(shown.features[:, unit], shown.labels, unit, sign, path, shown.name))
    return paths


def data_efficiency(config: TransferConfig, classifier: "transfer.SentimentClassifier",
                    evaluation: "transfer.Evaluation", data: Labelled) -> dict:
    """The curve over subsets of train, on the labelled test set (else validation).

    Its full-size point is the main classifiers' (one run; the single-unit one only when
    -num_neurons is 1, since otherwise the main top classifier is not a single unit).
    """

    train, valid, evaluated = data.train, data.valid, data.evaluated
    rows = transfer.data_efficiency_curve(
        train.features, train.labels, valid.features, valid.labels, evaluated.features, evaluated.labels,
        seeds=config.data_efficiency_seeds, c_grid=config.c_grid, standardize=config.standardize,
        seed=config.seed, jobs=config.jobs or transfer.default_jobs(),
    )
    if config.num_neurons == 1:
        index = 2 if evaluated is data.test else 1
        rows.append({
            "size": len(train.texts), "seed": 0,
            "all_neurons_accuracy": evaluation.all_neurons[index], "all_neurons_C": classifier.all_neurons.C,
            "features_used": classifier.all_neurons.features_used, "unit": classifier.top_units[0],
            "unit_accuracy": evaluation.n_neurons[index], "unit_C": classifier.n_neurons.C,
        })
    return {
        "evaluated_on": "test" if evaluated is data.test else "validation",
        "rows": rows,
        "summary": transfer.summarize_curve(rows),
    }


def run_cross_validation(config: TransferConfig, data: Split, assignment: "np.ndarray", identity, timing: dict,
                         started: float, classes: "list[int] | None" = None) -> None:
    """``-cv K``: the transfer procedure on each of K folds of -train; results.json holds every fold and the summary.

    No classifier.json is written (there are K of them, none fitted on all the data), the
    model's config.json is left alone, and the data-efficiency curve is not drawn.
    """

    jobs = config.jobs or transfer.default_jobs()
    fit_start = time.perf_counter()
    folds = cross_validation.cross_validate(
        data.features, data.labels, assignment, identity, num_neurons=config.num_neurons, c_grid=config.c_grid,
        standardize=config.standardize, seed=config.seed, jobs=jobs,
    )
    timing["fit_seconds"] = round(time.perf_counter() - fit_start, 3)
    summary = cross_validation.summarize(folds)
    lines = cross_validation.result_lines(folds, summary)
    print("\n".join(lines), flush=True)
    unconverged = sum(r.fit.all_neurons.unconverged + r.fit.n_neurons.unconverged for r in folds)
    if unconverged:
        log.notice(f"{unconverged} regression fit(s) stopped at liblinear's {transfer.MAX_ITER} iterations "
                   f"before converging")
    results_dir = config.experiment_path / dataset_name(config.train) / identity.name
    timing["total_seconds"] = round(time.perf_counter() - started, 3)
    results = cross_validation.CrossValidationResults(
        dataset=dataset_name(config.train),
        model=identity,
        files={"train": config.train, "valid": None, "test": None},
        protocol=cross_validation.protocol(config.cv, config.seed),
        texts=len(data.texts),
        fold_of_text=assignment.tolist(),
        standardize=config.standardize,
        c_grid=sorted(config.c_grid),
        summary=summary,
        folds=[fold.to_dict() for fold in folds],
        seed_output=lines,
        timing=timing,
        command_config=dataclasses.asdict(config),
        classes=classes,
    )
    storage.write_json(results_dir / RESULTS_FILE, results.to_dict())
    log.info(f"results saved to {results_dir}/")
