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
from typing import TYPE_CHECKING

from .. import log, storage
from ..configs.transfer import TransferConfig
from ..errors import UserError
from ..options import check_options
from .common import feature_cache, resolve_load_model
from .splits import Split, encode_classes, hold_out_validation, read_splits

# Lazy imports: numpy, torch and scikit-learn are imported where they are used, not here: the CLI imports
# this module (and classify imports it) for the flags, and `--help` should not wait for them.
if TYPE_CHECKING:
    import numpy as np

    from .. import transfer


RESULTS_FILE = "results.json"


def dataset_name(train_path: str) -> str:
    """The train file's directory name (``data/sst2/train.csv`` -> ``sst2``); its stem at a filesystem root."""
    path = Path(train_path).resolve()
    return path.parent.name or path.name.split(".")[0]


@dataclasses.dataclass
class Evaluation:
    """Accuracies on (train, valid, test); None where a split is missing or unlabelled."""

    all_neurons: list[float | None]
    n_neurons: list[float | None]
    single_units: list[dict]
    lines: list[str]  # the 2017 output, then one threshold-0 line per top unit


def evaluate(classifier: "transfer.SentimentClassifier", splits: list[Split | None]) -> Evaluation:
    """The 2017 result lines; the single-unit threshold-0 lines only for two classes (the rule is binary)."""
    from .. import transfer

    def on_each(score) -> list[float | None]:
        return [None if s is None or s.labels is None else score(s) for s in splits]

    all_neurons = on_each(lambda s: classifier.all_neurons.accuracy(s.features, s.labels))
    n_neurons = on_each(lambda s: classifier.n_neurons.accuracy(s.features, s.labels))
    lines = transfer.seed_result_lines("all_neurons", all_neurons, classifier.all_neurons)
    lines.append(transfer.top_units_line(classifier.top_units))
    lines += transfer.seed_result_lines("n_neurons", n_neurons, classifier.n_neurons)
    single_units = []
    for unit, sign in zip(classifier.top_units, classifier.top_unit_signs):
        if classifier.multiclass:
            break
        accuracies = on_each(lambda s: transfer.threshold_accuracy(s.features[:, unit], s.labels, sign))
        lines.append(transfer.threshold_line(unit, sign, accuracies))
        single_units.append({"unit": unit, "sign": sign, **dict(zip(("train", "valid", "test"), accuracies))})
    return Evaluation(all_neurons, n_neurons, single_units, lines)


def featurize_splits(model, identity, splits: dict[str, Split], config: TransferConfig) -> dict:
    """Fill in every split's features (from the cache when possible); returns the timings."""
    from .. import transfer

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
    from .. import transfer

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
    from ..checkpoint import resolve_model_directory

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
    import numpy as np

    from .. import transfer
    from ..checkpoint import load_model
    from ..runtime import configure_threads, seed_everything, select_device

    started = time.perf_counter()
    check_flags(config)
    configure_threads()
    seed_everything(config.seed)
    model_path = resolve_load_model(config.load_model, config)
    inputs = [config.train, config.valid, config.test]
    if config.write_results:
        storage.check_output(config.write_results, inputs, flag="-write_results")
    results_dir = results_directory(config, model_path)
    locks.enter_context(storage.output_lock(results_dir, what="-experiment_name"))
    if config.write_results:
        locks.enter_context(storage.output_lock(config.write_results, what="-write_results file"))
    splits = read_splits(config, cross_validating=bool(config.cv))
    classes = encode_classes(splits, config)
    if config.cv:  # bad fold counts are found before any featurizing
        from ..cross_validation import assign_folds

        folds = assign_folds(splits["train"].texts, splits["train"].labels, config.cv, config.seed)
    model = load_model(model_path, device=select_device(config.cuda))
    identity = transfer.ModelIdentity.of(
        model, model_path, layer=config.layer, preprocess=not config.no_preprocess, precision=config.precision,
        pooling=config.pooling,
    )
    if not 1 <= config.num_neurons <= identity.rnn_size:
        raise UserError(f"-num_neurons must be between 1 and the model's {identity.rnn_size} units, not {config.num_neurons}")
    timing: dict = {"featurize": featurize_splits(model, identity, splits, config)}
    if config.cv:
        return run_cross_validation(config, splits["train"], folds, identity, timing, started, classes)
    if "valid" in splits:
        train, valid = splits["train"], splits["valid"]
        validation = f"validation file {config.valid}"
    else:
        train, valid = hold_out_validation(splits["train"], config)
        validation = f"{len(valid.texts)} texts held out of -train (-split {config.split:g}, seed {config.seed})"
    test = splits.get("test")
    jobs = config.jobs or transfer.default_jobs()

    fit_start = time.perf_counter()
    fit = transfer.fit_sentiment_classifier(
        train.features, train.labels, valid.features, valid.labels, identity,
        num_neurons=config.num_neurons, c_grid=config.c_grid, standardize=config.standardize,
        seed=config.seed, jobs=jobs, classes=classes,
    )
    timing["fit_seconds"] = round(time.perf_counter() - fit_start, 3)
    classifier = fit.classifier
    evaluation = evaluate(classifier, [train, valid, test])
    print("\n".join(evaluation.lines), flush=True)
    print_notices(fit)
    if classifier.multiclass:
        log.notice(f"{len(classifier.class_labels)} classes, fitted one-vs-rest; the single-unit threshold-0 "
                   "lines of two classes are left out")

    # Everything of this run is built beside the results directory and swapped in whole, so no
    # figure of an earlier run is left beside this run's classifier.
    staging = storage.partial_directory(results_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    locks.callback(shutil.rmtree, staging, ignore_errors=True)  # gone already when it was swapped in
    classifier.save(staging)
    figures = write_figures(staging, classifier, train, test, recorded_unit(model))
    curve = None
    if not config.no_data_efficiency:
        curve_start = time.perf_counter()
        curve = data_efficiency(config, classifier, evaluation, train, valid, test, jobs)
        timing["data_efficiency_seconds"] = round(time.perf_counter() - curve_start, 3)
        path = staging / "data_efficiency.png"
        figures.append(transfer.plot_data_efficiency(curve["summary"], path, curve["evaluated_on"]))
    if config.write_results:
        target = test if test is not None else train
        labels = target.labels
        if labels is not None and classes is not None:
            labels = np.asarray(classes)[labels]
        written = transfer.write_predictions(
            config.write_results, target.texts, target.features, classifier,
            text_key=config.text_key, labels=labels, label_key=config.label_key,
        )
        log.info(f"wrote {written} ({len(target.texts)} {target.name} texts)")
    timing["total_seconds"] = round(time.perf_counter() - started, 3)
    n_neurons = transfer.probe_report(fit.n_neurons, evaluation.n_neurons)
    results = {
        "dataset": dataset_name(config.train),
        "model": identity.to_dict(),
        "files": {"train": config.train, "valid": config.valid, "test": config.test},
        "files_resolved": {name: None if path is None else str(Path(path).resolve()) for name, path in zip(
            ("train", "valid", "test"), inputs)},
        "texts": {"train": len(train.texts), "valid": len(valid.texts), "test": None if test is None else len(test.texts)},
        "validation": validation,
        "test_labelled": test is not None and test.labels is not None,
        "standardize": config.standardize,
        "c_grid": sorted(config.c_grid),
        "all_neurons": transfer.probe_report(fit.all_neurons, evaluation.all_neurons),
        "top_units": classifier.top_units,
        "n_neurons": {**n_neurons, "units": classifier.top_units[: config.num_neurons]},
        "single_unit_threshold_0": evaluation.single_units,
        "data_efficiency": curve,
        "seed_output": evaluation.lines,
        "figures": [path.name for path in figures],
        "timing": timing,
        "command_config": dataclasses.asdict(config),
    }
    if classes is not None:
        evaluated = test if test is not None and test.labels is not None else valid
        results["classes"] = classes
        results["per_class"] = transfer.class_report(
            classifier.class_labels, classifier.all_neurons.predict(evaluated.features), evaluated.labels, train.labels,
            evaluated.name,
        )
    storage.write_json(staging / RESULTS_FILE, results)
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
    from .. import transfer

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


def data_efficiency(config, classifier, evaluation: Evaluation, train, valid, test, jobs) -> dict:
    """The curve over subsets of train, on the labelled test set (else validation).

    Its full-size point is the main classifiers' (one run; the single-unit one only when
    -num_neurons is 1, since otherwise the main top classifier is not a single unit).
    """
    from .. import transfer

    evaluated = test if test is not None and test.labels is not None else valid
    rows = transfer.data_efficiency_curve(
        train.features, train.labels, valid.features, valid.labels, evaluated.features, evaluated.labels,
        seeds=config.data_efficiency_seeds, c_grid=config.c_grid, standardize=config.standardize,
        seed=config.seed, jobs=jobs,
    )
    if config.num_neurons == 1:
        index = 2 if evaluated is test else 1
        rows.append({
            "size": len(train.texts), "seed": 0,
            "all_neurons_accuracy": evaluation.all_neurons[index], "all_neurons_C": classifier.all_neurons.C,
            "features_used": classifier.all_neurons.features_used, "unit": classifier.top_units[0],
            "unit_accuracy": evaluation.n_neurons[index], "unit_C": classifier.n_neurons.C,
        })
    return {
        "evaluated_on": "test" if evaluated is test else "validation",
        "rows": rows,
        "summary": transfer.summarize_curve(rows),
    }


def run_cross_validation(config: TransferConfig, data: Split, assignment: "np.ndarray", identity, timing: dict,
                         started: float, classes: "list[int] | None" = None) -> None:
    """``-cv K``: the transfer procedure on each of K folds of -train; results.json holds every fold and the summary.

    No classifier.json is written (there are K of them, none fitted on all the data), the
    model's config.json is left alone, and the data-efficiency curve is not drawn.
    """
    from .. import cross_validation, transfer

    jobs = config.jobs or transfer.default_jobs()
    fit_start = time.perf_counter()
    results = cross_validation.cross_validate(
        data.features, data.labels, assignment, identity, num_neurons=config.num_neurons, c_grid=config.c_grid,
        standardize=config.standardize, seed=config.seed, jobs=jobs,
    )
    timing["fit_seconds"] = round(time.perf_counter() - fit_start, 3)
    summary = cross_validation.summarize(results)
    lines = cross_validation.result_lines(results, summary)
    print("\n".join(lines), flush=True)
    unconverged = sum(r.fit.all_neurons.unconverged + r.fit.n_neurons.unconverged for r in results)
    if unconverged:
        log.notice(f"{unconverged} regression fit(s) stopped at liblinear's {transfer.MAX_ITER} iterations "
                   f"before converging")
    results_dir = config.experiment_path / dataset_name(config.train) / identity.name
    timing["total_seconds"] = round(time.perf_counter() - started, 3)
    report = {
        "dataset": dataset_name(config.train),
        "model": identity.to_dict(),
        "files": {"train": config.train, "valid": None, "test": None},
        "protocol": {
            "cross_validation_folds": config.cv,
            "seed": config.seed,
            "folds": "stratified by label, seeded; rows with the same text always in the same fold",
            "validation": "for test fold k, C is chosen on fold k+1 (mod K) and the other K-2 folds are fitted",
        },
        "texts": len(data.texts),
        "fold_of_text": assignment.tolist(),
        "standardize": config.standardize,
        "c_grid": sorted(config.c_grid),
        "summary": summary,
        "folds": [result.to_dict() for result in results],
        "seed_output": lines,
        "timing": timing,
        "command_config": dataclasses.asdict(config),
    }
    if classes is not None:
        report["classes"] = classes  # the labels of the class indices 0..K-1 the folds were fitted on
    storage.write_json(results_dir / "results.json", report)
    log.info(f"results saved to {results_dir}/")
