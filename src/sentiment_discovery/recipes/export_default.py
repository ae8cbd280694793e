"""``sentiment-discovery export-default``: install a model and its classifier as the default model.

Copies the model directory (optionally re-stored in bfloat16), the classifier that
``transfer`` fitted on it (its model reference rewritten to the copy, by relative location
and sha256) with its results and figures, and the sentiment unit, into the package's
``default_model/`` (or ``-out``); then prints the numbers that ``MODEL_CARD.md`` asks for.
"""

from .. import defaults
from ..configs.export_default import ExportDefaultConfig


def percent(value) -> str:
    return "--.--" if value is None else f"{100 * value:.2f}"


def card_lines(report: "defaults.ExportReport") -> list[str]:
    """The MODEL_CARD.md numbers that this export knows."""
    unit = report.unit
    lines = [
        f"sentiment unit: {unit.unit} of layer {unit.layer}, sign {unit.sign:+d}"
        + (" (fires low on positive text: visualize negates it)" if unit.negate else ""),
    ]
    results = report.results
    if results and results.get("kind") == "finetuned":
        for key, name in (("finetuned_accuracy", "fine-tuned classifier"), ("top_unit_accuracy", "top unit alone")):
            entry = results.get(key) or {}
            accuracies = "/".join(percent(entry.get(s)) for s in ("train", "valid", "test"))
            lines.append(f"{name}: {accuracies} train/val/test accuracy (as fitted, before any bf16 storage)")
    elif results:
        for key, name in (("all_neurons", "all units (L1)"), ("n_neurons", "top unit(s) alone")):
            entry = results.get(key) or {}
            accuracies = "/".join(percent(entry.get(f"{s}_accuracy")) for s in ("train", "valid", "test"))
            lines.append(f"{results.get('dataset', '?')} {name}: {accuracies} train/val/test accuracy, "
                         f"C={entry.get('C')}, features used {entry.get('features_used')}")
        for row in results.get("single_unit_threshold_0") or []:
            if row.get("unit") == unit.unit:
                shown = "/".join(percent(row.get(s)) for s in ("train", "valid", "test"))
                lines.append(f"unit {unit.unit} {'>' if unit.sign > 0 else '<'} 0 rule: {shown} train/val/test accuracy")
    return lines


def run(config: ExportDefaultConfig) -> None:
    report = defaults.export_default_model(config.model, config.classifier, config.out, bf16=config.bf16)
    print(f"installed the default model in {report.directory}/")
    print(f"model/: {report.model_bytes / 1e6:.1f} MB, weights stored {report.storage}, "
          f"sha256 {report.weights_sha256[:12]}...")
    print(f"classifier/: checked on {report.check_texts} texts against the original: probabilities move by at most "
          f"{report.max_probability_change:.2e}, {report.labels_agree}/{report.check_texts} labels agree")
    for line in card_lines(report):
        print(line)
