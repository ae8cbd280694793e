"""``sentiment-discovery classify``: label new, unlabelled texts with a classifier that ``transfer`` saved.

Texts come from ``-text`` (repeatable) and/or an ``-input`` file. With ``-output`` it writes
one CSV row per text, in input order: (with ``-input``) the line of the file the text was read
from, which lines rows up with the input where empty rows were skipped; the text, the
predicted label, the probabilities of the full and top-unit classifiers, and the top units'
values; without it, it prints one line
per text: the probability positive (4 decimals), the label, the text, tab-separated. Without
``-classifier`` it uses the default model and classifier shipped with the package.

A classifier fitted with ``-multiclass`` (classes other than 0/1) prints the probability of the
predicted class and the class itself (such as ``0.6120<TAB>5<TAB>text``), and its CSV has the
predicted class and one ``probability_<class>`` column per class.
"""

import contextlib

import numpy as np

from .. import transfer
from ..checkpoint import load_model
from ..configs.classify import ClassifyConfig
from ..data.readers import ReadStats, iter_numbered_texts
from ..foundation import log, storage
from ..foundation.choices import LABELS
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..foundation.text import escape_control, print_result
from ..runtime import configure_threads, select_device
from .common import feature_cache, resolve_load_model
from .sharded import classify_features, sharding


def one_line(text: str) -> str:
    """The text on one line: control characters (newlines, tabs, ...) escaped."""
    return escape_control(text)


def prediction_line(probability: float, label: int, text: str) -> str:
    """``0.9731<TAB>positive<TAB>the text``: probability of label 1 (positive), the predicted label, the text."""
    return f"{probability:.4f}\t{LABELS[label]}\t{one_line(text)}"


def run(config: ClassifyConfig) -> None:
    check_options(config)
    if config.output is not None and not config.output.lower().endswith(".csv"):
        raise UserError(f"-output writes CSV; name the file .csv, not {config.output}")
    if not config.text and config.input is None:
        raise UserError('classify needs texts: pass --text "..." (repeatable) or --input FILE')
    for number, text in enumerate(config.text or [], 1):
        if not text.strip():
            raise UserError(f"-text number {number} is empty; there is nothing to label")
    with contextlib.ExitStack() as locks:
        if config.output is not None:
            storage.check_output(config.output, [config.input, config.classifier])
            if log.process_rank() == 0:  # under torchrun rank 0 writes the output (docs/performance.md)
                locks.enter_context(storage.output_lock(config.output))
        _classify(config)


def _classify(config: ClassifyConfig) -> None:
    # Lazy imports, not at the top: the CLI imports this module for its flags, and
    # `--help` should not wait for torch and numpy (docs/performance.md).


    configure_threads()
    distributed = sharding.join(config.cuda).distributed  # under torchrun: the process group, each rank's GPU
    classifier = transfer.SentimentClassifier.load(config.classifier)
    model_path = resolve_load_model(config.model, config) if config.model else classifier.model.path
    texts = list(config.text or [])
    # Where each text came from: a -text has none; a file's text its line, since empty rows are skipped.
    lines: list[int | None] = [None] * len(texts)
    if config.input is not None:
        stats = ReadStats()
        numbered = list(iter_numbered_texts(
            config.input, config.text_key, fmt=config.input_format, delim=config.delim, stats=stats
        ))
        stats.warn_if_lossy(config.input)
        if not numbered:
            raise UserError(f"{config.input} holds no texts under {config.text_key!r}")
        lines += [line for line, _ in numbered]
        texts += [text for _, text in numbered]
    model = load_model(model_path, device=select_device(config.cuda))
    classifier.check_layers(model, model_path)
    identity = transfer.ModelIdentity.of(
        model, model_path, layer=classifier.model.layer, preprocess=classifier.model.preprocess,
        precision=config.precision, pooling=classifier.model.pooling,
    )
    classifier.check_model(identity)
    # A few texts from the command line are quick to featurize: no cache files for them.
    cache = feature_cache(config, config.experiment_path) if config.input is not None else None
    if distributed:  # each process featurizes its share; rank 0 goes on with all of them
        features = classify_features(config, model, texts, identity, cache)
        if features is None:
            return
    else:
        features = transfer.featurize_cached(
            model, texts, identity, cache, batch_size=config.batch_size, progress=config.input is not None
        ).features
    # Scores once: the probabilities (calibrated) and labels both come from them, n-gram part included.
    scores = classifier.scores(features, texts=texts)
    if config.output is None and classifier.classes is not None:
        probabilities = classifier.probabilities(scores)
        labels = np.asarray(classifier.class_labels)[classifier.all_neurons.predictions(scores)]
        for row, label, text in zip(probabilities, labels, texts):
            print_result(f"{float(row.max()):.4f}\t{int(label)}\t{one_line(text)}")
        return
    if config.output is None:
        probabilities = classifier.probabilities(scores)[:, 1]
        labels = classifier.all_neurons.predictions(scores)
        for probability, label, text in zip(probabilities, labels, texts):
            print_result(prediction_line(float(probability), int(label), text))
        return
    written = transfer.write_predictions(
        config.output, texts, features, classifier, text_key=config.text_key,
        lines=lines if config.input is not None else None, scores=scores,
    )
    predicted = classifier.all_neurons.predictions(scores)
    if classifier.classes is not None:
        predicted = np.asarray(classifier.class_labels)[predicted].tolist()
        counts = ", ".join(f"{predicted.count(c)} class {c}" for c in classifier.class_labels)
        log.info(f"{len(texts)} texts: {counts}; wrote {written}")
        return
    positive = int(predicted.sum())
    log.info(f"{len(texts)} texts: {positive} positive, {len(texts) - positive} negative; wrote {written}")
