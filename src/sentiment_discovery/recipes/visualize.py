"""``sentiment-discovery visualize``: a heatmap of one unit over a text, optionally continued.

Reads the text (and, with ``-generate``, samples a continuation, optionally with the unit
held at ``-overwrite``), then writes ``<experiment_dir>/<experiment_name>/heatmaps/<name>.png``
and a self-contained ``.html`` beside it, the name being the text's first 100 characters
(with a short hash of the text when another text's heatmap has that name).
The unit is ``-neuron``, or the top unit of a ``-classifier`` that ``transfer`` wrote
(its sign and layer too), or one recorded with the model by an explicit act
(``export-default``, an importer). Without ``-load_model`` and ``-classifier`` it draws the
default model shipped with the package and its sentiment unit (``sentiment_unit.json``:
unit, layer, and sign, a negative one negating the colours).

Where the model has a classifier (``-classifier``, the default model's, or a ``finetune``
run: ``-load_model`` its directory or its ``model/``), a strip under each character shows the
classifier's P(positive) of the text so far, its sentiment trace.
"""

import dataclasses
from pathlib import Path

from .. import defaults, transfer, visualize
from ..checkpoint import WEIGHTS_FILE, load_model, resolve_model_directory
from ..configs.visualize import VisualizeConfig
from ..foundation import log
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..foundation.storage import file_sha256
from ..foundation.text import escape_control, print_result
from ..runtime import configure_threads, seed_everything, select_device
from .common import resolve_load_model


def default_model_directory(config: VisualizeConfig) -> Path:
    """The shipped model (and, without -neuron, its sentiment unit); one error naming what is missing."""
    parts = [defaults.MODEL_PART] + ([defaults.SENTIMENT_UNIT_FILE] if config.neuron is None else [])
    hint = f"pass -load_model DIR ({defaults.GET_A_MODEL}), {defaults.INSTALL}"
    if config.neuron is None and (defaults.default_directory() / defaults.MODEL_PART).is_file():
        hint = f"pass -neuron N, {defaults.INSTALL} again"
    return defaults.require(parts, hint) / defaults.MODEL_SUBDIR


def classifier_model(config: VisualizeConfig, fitted: "transfer.SentimentClassifier") -> Path:
    """The model ``-classifier`` was fitted on: its own, or ``-load_model`` checked to be that model."""
    if config.load_model is None:
        return Path(fitted.model.path)
    model_path = resolve_load_model(config.load_model, config)
    if file_sha256(resolve_model_directory(model_path) / WEIGHTS_FILE) != fitted.model.weights_sha256:
        raise UserError(
            f"{fitted.source} was fitted on model {fitted.model.path}, not on -load_model {config.load_model} "
            "(other weights); pass the model it was fitted on, or -neuron N"
        )
    return model_path


def model_to_draw(config: VisualizeConfig, classifier: "transfer.SentimentClassifier | None") -> tuple[Path, str]:
    """The model directory drawn, and how the caption names it."""
    if config.classifier is not None:
        return classifier_model(config, classifier), f"model {config.load_model or classifier.model.path}"
    if config.load_model is None:
        return default_model_directory(config), "the default model"
    if classifier is not None:  # a finetune run directory: its model/
        return Path(classifier.model.path), f"model {config.load_model}"
    return resolve_load_model(config.load_model, config), f"model {config.load_model}"


def unit_to_draw(model, config: VisualizeConfig, classifier, model_name: str) -> "defaults.SentimentUnit":
    """The unit drawn, by :func:`defaults.resolve_sentiment_unit` (``-layer -1`` keeps the unit's own layer)."""
    unit = defaults.resolve_sentiment_unit(
        model,
        classifier if config.classifier is not None else None,  # a finetune run's classifier draws its trace only
        config.neuron,
        None if config.layer == -1 else config.layer,
        shipped=config.load_model is None and config.classifier is None,
        model_name=model_name,
    )
    if unit is None:
        raise UserError(
            f"no -neuron given and model {config.load_model} has no sentiment_unit in its metadata; "
            "pass -neuron N or -classifier DIR (the results directory transfer wrote)"
        )
    return unit


def find_classifier(config: VisualizeConfig) -> "transfer.SentimentClassifier | None":
    """The classifier whose sentiment trace is drawn, if the model has one.

    ``-classifier`` when given; else the default classifier goes with the default model, and a
    ``finetune`` run directory holds its classifier beside its ``model/``.
    """

    if config.classifier is not None:
        return transfer.SentimentClassifier.load(config.classifier)
    if config.load_model is None:
        if (defaults.default_directory() / defaults.CLASSIFIER_PART).is_file():
            return transfer.SentimentClassifier.load()
        return None
    given = Path(config.load_model)
    for candidate in (given / transfer.CLASSIFIER_FILE, given.parent / transfer.CLASSIFIER_FILE):
        if candidate.is_file():
            classifier = transfer.SentimentClassifier.load(candidate)
            if Path(classifier.model.path).resolve() in (given.resolve(), (given / "model").resolve()):
                return classifier
    return None


def print_safely(text: str) -> None:
    """Print generated text; control bytes are escaped so they cannot drive the terminal."""
    print_result(escape_control(text, keep="\n\t"))


def run(config: VisualizeConfig) -> None:
    # Lazy imports, not at the top: the CLI imports this module for its flags, and
    # `--help` should not wait for torch and matplotlib (docs/performance.md).

    check_options(config)
    if config.overwrite is not None and not config.generate:
        raise UserError("-overwrite steers generated text only; add -generate")
    configure_threads()
    seed_everything(config.seed)
    classifier = find_classifier(config)
    model_path, model_name = model_to_draw(config, classifier)
    model = load_model(model_path, device=select_device(config.cuda))
    drawn = unit_to_draw(model, config, classifier, model_name)
    unit, negate = drawn.unit, config.negate or drawn.negate
    if config.generate:
        prompt = visualize.prompt_bytes(model, config.text, generate=True)
        if config.seq_length <= len(prompt):
            raise UserError(
                f"-seq_length {config.seq_length} leaves nothing to generate "
                f"after the {len(prompt)}-byte prompt; raise it"
            )
        overwrite = config.overwrite
        if overwrite is not None and negate:
            overwrite = -overwrite
        trace = visualize.generate(
            model,
            prompt,
            unit,
            config.seq_length - len(prompt),
            layer=drawn.layer,
            temperature=config.temperature,
            overwrite=overwrite,
            seed=config.seed,
            progress=True,
            precision=config.precision,
        )
        # The front padding is what the model read first, not part of the text the user sees.
        print_safely(trace.text.lstrip())
    else:
        trace = visualize.unit_values(model, config.text, unit, layer=drawn.layer, precision=config.precision)
    if classifier is not None:
        classifier.attach_model(model_path)
        if classifier.classes is None:
            trace = dataclasses.replace(trace, probabilities=classifier.probability_trace(trace.data))
        else:  # -multiclass: the probability of the class predicted for the whole text
            probabilities, predicted = classifier.predicted_class_trace(trace.data)
            trace = dataclasses.replace(trace, probabilities=probabilities, probability_name=f"P(class {predicted})")

    layer = visualize.layer_index(model, drawn.layer)
    caption = f"unit {unit} of layer {layer}, {model_name}"
    if negate:
        caption += ", colours negated"
    if classifier is not None and classifier.classes is not None:
        caption += (f"; the bar under each character is the classifier's {trace.probability_name} of the text so far, "
                    f"the class it predicts for the whole text (red 0, yellow 0.5, green 1; "
                    f"{trace.probabilities[-1]:.3f} for the whole text)")
    elif classifier is not None:
        caption += (f"; the bar under each character is the classifier's P(positive) of the text so far "
                    f"(red 0, yellow 0.5, green 1; {trace.probabilities[-1]:.3f} for the whole text)")
    if config.generate:
        sampling = "greedy" if config.temperature == 0 else f"temperature {config.temperature}, seed {config.seed}"
        caption += f"; generated text underlined ({sampling})"
        if config.overwrite is not None:
            caption += f", unit held at {overwrite:+g}"
    directory = config.experiment_path / "heatmaps"
    stem = visualize.heatmap_file_stem_in(directory, trace.text)  # another text's heatmap of that name stays
    png = visualize.render_png(trace, directory / f"{stem}.png", negate=negate)
    page = visualize.render_html(trace, directory / f"{stem}.html", negate=negate, caption=caption)
    log.info(f"wrote {png}")
    log.info(f"wrote {page}")
