"""``sentiment-discovery visualize``: a heatmap of one unit over a text, optionally continued.

Reads the text (and, with ``-generate``, samples a continuation, optionally with the unit
held at ``-overwrite``), then writes ``<experiment_dir>/<experiment_name>/heatmaps/<name>.png``
and a self-contained ``.html`` beside it, the name being the text's first 100 characters.
Without ``-load_model`` it draws the default model shipped with the package, and without
``-neuron`` its sentiment unit (``sentiment_unit.json``: unit, layer, and sign, a negative
one negating the colours).

Where the model has a classifier (the default model's, or a ``finetune`` run: ``-load_model``
its directory or its ``model/``), a strip under each character shows the classifier's
P(positive) of the text so far, its sentiment trace.
"""

import dataclasses
import sys
import unicodedata

from pathlib import Path

from .. import defaults, transfer, visualize
from ..checkpoint import load_model
from ..errors import UserError
from ..options import option
from ..runtime import seed_everything, select_device
from .common import ExperimentConfig, SeedVisualizeFlags, resolve_load_model


@dataclasses.dataclass(kw_only=True)
class VisualizeConfig(SeedVisualizeFlags, ExperimentConfig):
    load_model: str | None = option(
        None,
        help="model directory, or a checkpoint name such as e0.pt in <experiment_dir>/<experiment_name>/<model_dir>/ "
        "(default: the model shipped with the package)",
        aliases=["model"],
    )
    text: str = option("The meaning of life is ", help="text to visualise; with -generate, the start of the text")
    neuron: int | None = option(
        None,
        help="unit whose cell state is drawn (default: the sentiment unit saved with the model; "
        "a negative one is drawn negated)",
    )
    layer: int = option(-1, help="layer the unit belongs to (-1: the top one)")
    generate: bool = option(False, help="continue the text up to a total of seq_length bytes")
    seq_length: int = option(256, help="with -generate: total length in bytes of the prompt and its continuation")
    temperature: float = option(0.4, help="with -generate: sampling temperature (0: always the likeliest byte)")
    overwrite: float | None = option(
        None, help="with -generate: hold the unit's cell state at this value (e.g. +1 or -1) while generating"
    )
    negate: bool = option(
        False,
        help="the unit is a negative-sentiment unit: flip its colours and the overwrite value "
        "(automatic for a saved sentiment unit of sign -1)",
    )


COMMAND_CONFIG = VisualizeConfig


def sentiment_unit(model, config: VisualizeConfig) -> int:
    """``-neuron``, or the unit that transfer saved in the model's metadata."""
    if config.neuron is not None:
        return config.neuron
    unit = model.metadata.get("sentiment_unit")
    if unit is None:
        raise UserError(
            f"no -neuron given and model {config.load_model} has no sentiment_unit in its metadata; "
            "pass -neuron N (the transfer results list the top sentiment neurons)"
        )
    if isinstance(unit, bool) or not isinstance(unit, int):
        raise UserError(
            f"model {config.load_model} has sentiment_unit {unit!r} in its metadata, not a unit index; pass -neuron N"
        )
    return unit


@dataclasses.dataclass(frozen=True)
class Drawn:
    """What is drawn: which unit of which layer, negated or not, and how the model is named."""

    unit: int
    layer: int
    negate: bool
    model_name: str


def default_model_directory(config: VisualizeConfig):
    """The shipped model and, without -neuron, its sentiment unit; one error naming what is missing."""
    parts = [defaults.MODEL_PART] + ([defaults.SENTIMENT_UNIT_FILE] if config.neuron is None else [])
    hint = f"pass -load_model DIR ({defaults.GET_A_MODEL}), {defaults.INSTALL}"
    if config.neuron is None and (defaults.default_directory() / defaults.MODEL_PART).is_file():
        hint = f"pass -neuron N, {defaults.INSTALL} again"
    root = defaults.require(parts, hint)
    unit = None if config.neuron is not None else defaults.read_sentiment_unit(root / defaults.SENTIMENT_UNIT_FILE)
    return root / defaults.MODEL_SUBDIR, unit


def choose_unit(model, config: VisualizeConfig, shipped: "defaults.SentimentUnit | None") -> Drawn:
    if config.load_model is None:
        name = "the default model"
        if shipped is not None:
            layer = config.layer if config.layer != -1 else shipped.layer
            return Drawn(shipped.unit, layer, config.negate or shipped.negate, name)
        return Drawn(config.neuron, config.layer, config.negate, name)
    unit = sentiment_unit(model, config)
    recorded_negative = config.neuron is None and model.metadata.get("sentiment_unit_sign") == -1
    return Drawn(unit, config.layer, config.negate or recorded_negative, f"model {config.load_model}")


def find_classifier(config: VisualizeConfig) -> "transfer.SentimentClassifier | None":
    """The classifier whose sentiment trace is drawn, if the model has one.

    The default classifier goes with the default model; a ``finetune`` run directory holds
    its classifier beside its ``model/``.
    """
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
    shown = "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" and c not in "\n\t" else c
        for c in text
    )
    encoding = sys.stdout.encoding or "utf-8"
    # A terminal that cannot show a character gets "?" rather than a crash.
    print(shown.encode(encoding, errors="replace").decode(encoding))


def run(config: VisualizeConfig) -> None:
    if config.overwrite is not None and not config.generate:
        raise UserError("-overwrite steers generated text only; add -generate")
    seed_everything(config.seed)
    shipped = None
    classifier = find_classifier(config)
    if config.load_model is None:
        model_path, shipped = default_model_directory(config)
    elif classifier is not None:
        model_path = Path(classifier.model.path)  # a finetune run directory: its model/
    else:
        model_path = resolve_load_model(config.load_model, config)
    model = load_model(model_path, device=select_device(config.cuda))
    drawn = choose_unit(model, config, shipped)
    unit, negate = drawn.unit, drawn.negate
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
        )
        # The front padding is what the model read first, not part of the text the user sees.
        print_safely(trace.text.lstrip())
    else:
        trace = visualize.unit_values(model, config.text, unit, layer=drawn.layer)
    if classifier is not None:
        classifier.attach_model(model_path)
        trace = dataclasses.replace(trace, probabilities=classifier.probability_trace(trace.data))

    layer = visualize.layer_index(model, drawn.layer)
    caption = f"unit {unit} of layer {layer}, {drawn.model_name}"
    if negate:
        caption += ", colours negated"
    if classifier is not None:
        caption += (f"; the bar under each character is the classifier's P(positive) of the text so far "
                    f"(red 0, yellow 0.5, green 1; {trace.probabilities[-1]:.3f} for the whole text)")
    if config.generate:
        sampling = "greedy" if config.temperature == 0 else f"temperature {config.temperature}, seed {config.seed}"
        caption += f"; generated text underlined ({sampling})"
        if config.overwrite is not None:
            caption += f", unit held at {overwrite:+g}"
    stem = visualize.heatmap_file_stem(trace.text)
    directory = config.experiment_path / "heatmaps"
    png = visualize.render_png(trace, directory / f"{stem}.png", negate=negate)
    page = visualize.render_html(trace, directory / f"{stem}.html", negate=negate, caption=caption)
    print(f"wrote {png}", file=sys.stderr)
    print(f"wrote {page}", file=sys.stderr)
