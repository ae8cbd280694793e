"""The default model shipped in the package: export, loading without arguments, the commands' defaults."""

import csv
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch
from safetensors import safe_open

import sentiment_discovery as sd
from sentiment_discovery import UserError, cli, defaults, load_model, save_model, transfer
from sentiment_discovery.transfer import SentimentClassifier
from sentiment_discovery.visualize import heatmap_file_stem, unit_values

from conftest import NEGATIVE, POSITIVE, labelled, make_model, write_csv

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "or install a default model with `sentiment-discovery export-default`"
GET_A_MODEL = (
    "train one with `sentiment-discovery train` or convert published weights with `sentiment-discovery import-openai`"
)




@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny random model and the classifier `transfer` fits on it: (model dir, results dir)."""
    root = tmp_path_factory.mktemp("fitted")
    model_dir = root / "exp" / "mlstm" / "model" / "e0"
    save_model(make_model(weight_norm=True), model_dir)
    toy = root / "toy"
    toy.mkdir()
    write_csv(toy / "train.csv", labelled(40))
    write_csv(toy / "dev.csv", labelled(12, offset=100))
    write_csv(toy / "test.csv", labelled(10, offset=200))
    args = [
        "transfer", "-experiment_dir", str(root / "exp"), "-load_model", "e0.pt",
        "-train", str(toy / "train.csv"), "-valid", str(toy / "dev.csv"), "-test", str(toy / "test.csv"),
        "-text_key", "sentence", "-label_key", "label", "-c_grid", "0.5", "8", "-standardize", "-no_data_efficiency",
    ]
    assert cli.main(args) == 0
    results_dir = root / "exp" / "mlstm" / "toy" / "e0"
    assert SentimentClassifier.load(results_dir).all_neurons.features_used > 0
    return model_dir, results_dir


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("default") / "default_model"
    defaults.export_default_model(*fitted, out)
    return out


@pytest.fixture
def use_default(monkeypatch, exported) -> Path:
    monkeypatch.setenv(defaults.ENV_VAR, str(exported))
    return exported


def features_of(model, texts=tuple(POSITIVE + NEGATIVE)) -> np.ndarray:
    return model.featurize(list(texts))


# --------------------------------------------------------------------------- the export


def test_export_writes_the_layout_and_points_the_classifier_at_the_copy(fitted, exported):
    model_dir, results_dir = fitted
    assert sorted(p.name for p in exported.iterdir()) == ["classifier", "model", "sentiment_unit.json"]
    assert sorted(p.name for p in (exported / "model").iterdir()) == ["config.json", "model.safetensors"]
    classifier_files = sorted(p.name for p in (exported / "classifier").iterdir())
    assert classifier_files == sorted(p.name for p in results_dir.iterdir())
    # Same weights, byte for byte; the classifier refers to them relatively, by hash.
    weights = exported / "model" / "model.safetensors"
    assert weights.read_bytes() == (model_dir / "model.safetensors").read_bytes()
    values = json.loads((exported / "classifier" / "classifier.json").read_text())
    assert values["model"]["path"] == "../model" and values["model"]["name"] == "model"
    assert values["model"]["weights_sha256"] == transfer.file_sha256(weights)
    assert values["export"]["weights_storage"] == "as fitted"
    assert values["export"]["check"]["max_probability_change"] == 0.0
    original = SentimentClassifier.load(results_dir)
    assert values["export"]["fitted_on"]["weights_sha256"] == original.model.weights_sha256
    unit = json.loads((exported / "sentiment_unit.json").read_text())
    assert (unit["unit"], unit["sign"], unit["layer"]) == (original.top_units[0], original.top_unit_signs[0], 0)
    assert unit["negate"] == (unit["sign"] < 0) and unit["dataset"] == "toy"
    results = json.loads((results_dir / "results.json").read_text())
    assert unit["threshold_0_accuracy"] == {k: results["single_unit_threshold_0"][0][k] for k in ("train", "valid", "test")}
    metadata = load_model(exported / "model").metadata
    assert (metadata["sentiment_unit"], metadata["sentiment_unit_sign"]) == (unit["unit"], unit["sign"])


def test_exported_directory_works_wherever_it_is_moved(fitted, exported, tmp_path):
    moved = tmp_path / "elsewhere" / "dm"
    shutil.copytree(exported, moved)
    classifier = SentimentClassifier.load(moved / "classifier")
    assert classifier.model.path == str((moved / "model").resolve())
    original = SentimentClassifier.load(fitted[1])
    texts = POSITIVE + NEGATIVE
    assert classifier.predict_proba(texts).tolist() == original.predict_proba(texts).tolist()


def test_load_model_without_argument_is_the_default_model(fitted, use_default):
    default = sd.load_model()
    np.testing.assert_array_equal(features_of(default), features_of(load_model(use_default / "model")))
    np.testing.assert_array_equal(features_of(default), features_of(load_model(fitted[0])))
    classifier = SentimentClassifier.load()
    assert classifier.model.path == str((use_default / "model").resolve())
    assert classifier.predict(features_of(default)).tolist() == SentimentClassifier.load(fitted[1]).predict(
        features_of(default)
    ).tolist()


def test_export_command_replaces_what_was_there_and_keeps_the_card(fitted, tmp_path, capsys):
    out = tmp_path / "dm"
    out.mkdir()
    (out / "MODEL_CARD.md").write_text("card\n")
    args = ["export-default", "--model", str(fitted[0]), "--classifier", str(fitted[1]), "--out", str(out)]
    assert cli.main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0] == f"installed the default model in {out}/"
    assert re.fullmatch(r"model/: \d+\.\d MB, weights stored as fitted, sha256 [0-9a-f]{12}\.\.\.", first[1])
    assert first[2] == ("classifier/: checked on 8 texts against the original: probabilities move by at most "
                        "0.00e+00, 8/8 labels agree")
    assert first[3].startswith("sentiment unit: ")
    assert cli.main(args + ["--bf16"]) == 0
    assert "weights stored bfloat16" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "classifier", "model", "sentiment_unit.json"]
    assert (out / "MODEL_CARD.md").read_text() == "card\n"
    SentimentClassifier.load(out / "classifier").attach_model(out / "model")


def test_export_refuses_a_classifier_of_another_model(fitted, tmp_path, capsys):
    other = save_model(make_model(seed=5, weight_norm=True), tmp_path / "other")
    out = tmp_path / "dm"
    args = ["export-default", "--model", str(other), "--classifier", str(fitted[1]), "--out", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has different weights" in err[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_bf16_export_round_trip(fitted, tmp_path):
    model_dir, results_dir = fitted
    out = tmp_path / "dm"
    report = defaults.export_default_model(model_dir, results_dir, out, bf16=True)
    weights = out / "model" / "model.safetensors"
    with safe_open(weights, "pt") as handle:
        assert {handle.get_tensor(name).dtype for name in handle.keys()} == {torch.bfloat16}
    assert weights.stat().st_size < 0.6 * (model_dir / "model.safetensors").stat().st_size
    source, loaded = load_model(model_dir), load_model(out / "model")
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor.to(torch.bfloat16).float()), name
    # Loading again, and exporting the bf16 model in bf16 again, changes nothing.
    np.testing.assert_array_equal(features_of(loaded), features_of(load_model(out / "model")))
    again = defaults.export_default_model(out / "model", out / "classifier", tmp_path / "dm2", bf16=True)
    assert again.max_probability_change == 0.0
    assert torch.equal(torch.cat([t.flatten() for t in load_model(tmp_path / "dm2" / "model").state_dict().values()]),
                       torch.cat([t.flatten() for t in loaded.state_dict().values()]))
    # The classifier checks against the bf16 weights and records what it was fitted on.
    values = json.loads((out / "classifier" / "classifier.json").read_text())
    assert values["model"]["weights_sha256"] == report.weights_sha256 == transfer.file_sha256(weights)
    assert values["export"]["weights_storage"] == "bfloat16"
    assert values["export"]["fitted_on"]["weights_sha256"] == transfer.file_sha256(model_dir / "model.safetensors")
    check = values["export"]["check"]
    assert check["texts"] == 8 and 0 <= check["max_probability_change"] < 0.05
    classifier = SentimentClassifier.load(out / "classifier")
    expected = classifier.all_neurons.predict_proba(features_of(loaded))
    assert classifier.predict_proba(POSITIVE + NEGATIVE)[:, 1].tolist() == expected.tolist()


def test_export_notices_a_model_over_the_size_limit(fitted, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(defaults, "SIZE_LIMIT_BYTES", 1000)
    model_dir, results_dir = fitted
    assert cli.main(["export-default", "--model", str(model_dir), "--classifier", str(results_dir),
                     "--out", str(tmp_path / "dm")]) == 0
    size = defaults.directory_bytes(tmp_path / "dm" / "model")
    assert capsys.readouterr().err.splitlines() == [
        f"notice: the model takes {size / 1e6:.1f} MB, over the 0 MB a shipped default may take "
        "(tests/test_default_model.py); export with --bf16"
    ]


# --------------------------------------------------------------------------- the commands' defaults


def test_classify_text_prints_probability_label_and_text(fitted, use_default, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    texts = ["a wonderful, moving film", "boring\tand\nlong"]
    assert cli.main(["classify", "--text", texts[0], "--text", texts[1]]) == 0
    captured = capsys.readouterr()
    original = SentimentClassifier.load(fitted[1])
    features = load_model(fitted[0]).featurize(texts)
    probabilities = original.all_neurons.predict_proba(features)
    labels = ["positive" if label else "negative" for label in original.all_neurons.predict(features)]
    assert captured.out.splitlines() == [
        f"{probabilities[0]:.4f}\t{labels[0]}\ta wonderful, moving film",
        f"{probabilities[1]:.4f}\t{labels[1]}\tboring\\tand\\nlong",
    ]
    assert all(re.fullmatch(r"[01]\.\d{4}\t(positive|negative)\t.+", line) for line in captured.out.splitlines())
    assert captured.err == ""
    assert not (tmp_path / "experiments").exists()  # no feature cache for command-line texts


def test_classify_input_file_with_the_default_classifier(fitted, use_default, tmp_path, capsys):
    new = write_csv(tmp_path / "new.csv", [("never seen before",), ("what a lovely day",)], header=("review",))
    output = tmp_path / "labels.csv"
    args = ["classify", "--input", str(new), "--text_key", "review", "--output", str(output),
            "-experiment_dir", str(tmp_path / "exp")]
    assert cli.main(args) == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = SentimentClassifier.load(fitted[1]).predict_proba(["never seen before", "what a lovely day"])[:, 1]
    assert [row["review"] for row in rows] == ["never seen before", "what a lovely day"]
    assert [float(row["probability_all_neurons"]) for row in rows] == expected.tolist()
    assert "2 texts:" in capsys.readouterr().err
    assert cli.main(["classify"]) == 2
    assert capsys.readouterr().err.strip() == 'error: classify needs texts: pass --text "..." (repeatable) or --input FILE'


def visualize_page(root: Path, text: str) -> str:
    heatmaps = root / "mlstm" / "heatmaps"
    stem = heatmap_file_stem(unit_values(load_model(), text, 0).text)
    assert sorted(p.name for p in heatmaps.iterdir()) == [f"{stem}.html", f"{stem}.png"]
    return (heatmaps / f"{stem}.html").read_text(encoding="utf-8")


def test_visualize_text_draws_the_recorded_unit(use_default, tmp_path, capsys):
    text = "I loved it, a wonderful film"
    unit = json.loads((use_default / "sentiment_unit.json").read_text())
    assert cli.main(["visualize", "-experiment_dir", str(tmp_path / "a"), "--text", text]) == 0
    page = visualize_page(tmp_path / "a", text)
    expected = unit_values(load_model(use_default / "model"), text, unit["unit"])
    # With the default classifier, each character also shows its sentiment trace.
    trace = SentimentClassifier.load().probability_trace(text)
    assert re.findall(r'title="([^"]+)"', page) == [
        f"{v:+.4f}, P(positive) so far {p:.3f}" for v, p in zip(expected.values, trace)
    ]
    caption = f"unit {unit['unit']} of layer 0, the default model" + (", colours negated" if unit["negate"] else "")
    assert f"<p>{caption}; the bar under each character is the classifier" in page
    assert "wrote " in capsys.readouterr().err


def test_visualize_negates_a_negative_sentiment_unit(exported, tmp_path, monkeypatch):
    copy = tmp_path / "dm"
    shutil.copytree(exported, copy)
    values = json.loads((copy / "sentiment_unit.json").read_text())
    values.update(unit=2, sign=-1, negate=True)
    (copy / "sentiment_unit.json").write_text(json.dumps(values))
    monkeypatch.setenv(defaults.ENV_VAR, str(copy))
    text = "boring and long"
    assert cli.main(["visualize", "-experiment_dir", str(tmp_path / "a"), "--text", text]) == 0
    page = visualize_page(tmp_path / "a", text)
    assert "<p>unit 2 of layer 0, the default model, colours negated; " in page
    expected = unit_values(load_model(copy / "model"), text, 2)
    assert [t.split(",")[0] for t in re.findall(r'title="([^"]+)"', page)] == [f"{v:+.4f}" for v in expected.values]
    # -neuron picks another unit, not negated unless asked.
    assert cli.main(["visualize", "-experiment_dir", str(tmp_path / "b"), "--text", text, "-neuron", "4"]) == 0
    assert "<p>unit 4 of layer 0, the default model; " in visualize_page(tmp_path / "b", text)


def test_visualize_negates_a_negative_unit_saved_in_a_models_metadata(tmp_path):
    model = make_model()
    model.metadata = {"sentiment_unit": 3, "sentiment_unit_sign": -1}
    save_model(model, tmp_path / "mlstm" / "model" / "e0")
    text = "boring and long"
    assert cli.main(["visualize", "-experiment_dir", str(tmp_path), "-load_model", "e0.pt", "--text", text]) == 0
    stem = heatmap_file_stem(unit_values(model, text, 3).text)
    page = (tmp_path / "mlstm" / "heatmaps" / f"{stem}.html").read_text(encoding="utf-8")
    assert "<p>unit 3 of layer 0, model e0.pt, colours negated</p>" in page


# --------------------------------------------------------------------------- which unit is drawn


def test_resolve_sentiment_unit_takes_the_first_source_that_names_one(fitted, exported, tmp_path, monkeypatch):
    model_dir, results_dir = fitted
    classifier = SentimentClassifier.load(results_dir)
    top = defaults.SentimentUnit(classifier.top_units[0], classifier.top_unit_signs[0], classifier.model.layer)
    copy = tmp_path / "dm"
    shutil.copytree(exported, copy)
    values = json.loads((copy / "sentiment_unit.json").read_text())
    shipped_unit = next(u for u in range(16) if u not in (top.unit, 3))  # not the classifier's, not the metadata's
    values.update(unit=shipped_unit, sign=-1, negate=True)
    (copy / "sentiment_unit.json").write_text(json.dumps(values))
    monkeypatch.setenv(defaults.ENV_VAR, str(copy))
    model = make_model()
    model.metadata = {"sentiment_unit": 3, "sentiment_unit_sign": -1}
    resolve = defaults.resolve_sentiment_unit
    # An explicit unit first: sign +1, the top layer (or the one asked for).
    assert resolve(model, classifier, 5, shipped=True) == defaults.SentimentUnit(5, 1, -1)
    assert resolve(model, classifier, 5, 0, shipped=True) == defaults.SentimentUnit(5, 1, 0)
    # Then a classifier named: its top unit, that unit's sign, its layer (or the one asked for).
    assert resolve(model, classifier, shipped=True) == top
    assert resolve(model, classifier, layer=-1) == defaults.SentimentUnit(top.unit, top.sign, -1)
    # Then the default model's sentiment_unit.json.
    assert resolve(model, shipped=True) == defaults.SentimentUnit(shipped_unit, -1, 0)
    # Then the model's metadata: its unit and sign, the top layer; a sign other than -1 is +1.
    assert resolve(model) == defaults.SentimentUnit(3, -1, -1)
    model.metadata = {"sentiment_unit": 3}
    assert resolve(model, layer=0) == defaults.SentimentUnit(3, 1, 0)
    # Nothing names a unit: None, and the caller's error names its own flags.
    model.metadata = {}
    assert resolve(model) is None


def test_resolve_sentiment_unit_errors(fitted, tmp_path, monkeypatch):
    _, results_dir = fitted
    classifier = SentimentClassifier.load(results_dir)
    model = make_model()
    for recorded in ("3", True, 2.0):
        model.metadata = {"sentiment_unit": recorded}
        with pytest.raises(UserError) as raised:
            defaults.resolve_sentiment_unit(model, model_name="model m", unit_flag="--unit")
        assert str(raised.value) == f"model m has sentiment_unit {recorded!r} in its metadata, not a unit index; pass --unit N"
    assert defaults.resolve_sentiment_unit(model, neuron=1) == defaults.SentimentUnit(1, 1, -1)  # not read
    # A classifier that uses no unit at all names none.
    probe = classifier.all_neurons
    empty = dataclasses.replace(classifier, all_neurons=dataclasses.replace(probe, coef=np.zeros_like(probe.coef)))
    with pytest.raises(UserError) as raised:
        defaults.resolve_sentiment_unit(model, empty)
    assert str(raised.value) == f"{classifier.source} uses no unit at all, so it names no sentiment unit; pass -neuron N"
    # The default model without its sentiment_unit.json.
    monkeypatch.setenv(defaults.ENV_VAR, str(tmp_path / "none"))
    with pytest.raises(UserError, match=r"^no default model installed: .* lacks model/config.json and sentiment_unit"):
        defaults.resolve_sentiment_unit(model, shipped=True)


def test_visualize_draws_a_named_unit_on_the_classifiers_model(fitted, use_default, tmp_path):
    model_dir, results_dir = fitted
    text = "a moving film"
    args = ["visualize", "-classifier", str(results_dir), "-neuron", "4", "-text", text, "-experiment_dir", str(tmp_path)]
    assert cli.main(args) == 0
    html = (tmp_path / "mlstm" / "heatmaps" / f"{heatmap_file_stem(unit_values(load_model(model_dir), text, 4).text)}.html")
    page = html.read_text(encoding="utf-8")
    assert f"<p>unit 4 of layer 0, model {SentimentClassifier.load(results_dir).model.path}; " in page
    expected = unit_values(load_model(model_dir), text, 4).values
    assert [title.split(",")[0] for title in re.findall(r'title="([^"]+)"', page)] == [f"{v:+.4f}" for v in expected]


# --------------------------------------------------------------------------- no default model installed


def test_missing_default_model_is_one_line_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "none"
    monkeypatch.setenv(defaults.ENV_VAR, str(empty))
    where = f"{empty} (${defaults.ENV_VAR})"
    with pytest.raises(UserError) as raised:
        sd.load_model()
    assert str(raised.value) == (
        f"no default model installed: {where} lacks model/config.json; pass a model directory ({GET_A_MODEL}), "
        f"{INSTALL_HINT}"
    )
    expected = {
        ("classify", "--text", "fine"): (
            f"error: no default model installed: {where} lacks model/config.json and classifier/classifier.json; "
            f"pass a classifier (the results directory `sentiment-discovery transfer` writes), {INSTALL_HINT}"
        ),
        ("visualize", "--text", "fine"): (
            f"error: no default model installed: {where} lacks model/config.json and sentiment_unit.json; "
            f"pass -load_model DIR ({GET_A_MODEL}), {INSTALL_HINT}"
        ),
        ("visualize", "--text", "fine", "-neuron", "1"): (
            f"error: no default model installed: {where} lacks model/config.json; "
            f"pass -load_model DIR ({GET_A_MODEL}), {INSTALL_HINT}"
        ),
    }
    for args, message in expected.items():
        assert cli.main(list(args)) == 2
        assert capsys.readouterr().err.splitlines() == [message]
    with pytest.raises(UserError, match="^no default model installed: .* lacks model/config.json and classifier/"):
        SentimentClassifier.load()
    # The installed entry point too: exit status 2 and the one line, no traceback.
    env = {**__import__("os").environ, defaults.ENV_VAR: str(empty), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "sentiment_discovery", "classify", "--text", "fine"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and result.stderr.splitlines() == [expected[("classify", "--text", "fine")]]


def test_default_model_without_its_sentiment_unit(exported, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "dm"
    shutil.copytree(exported, copy)
    (copy / "sentiment_unit.json").unlink()
    monkeypatch.setenv(defaults.ENV_VAR, str(copy))
    assert cli.main(["visualize", "--text", "fine", "-experiment_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: no default model installed: {copy} (${defaults.ENV_VAR}) lacks sentiment_unit.json; "
        f"pass -neuron N, {INSTALL_HINT} again"
    ]


# --------------------------------------------------------------------------- packaging and the shipped files


def package_data_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["sentiment_discovery"]


def packaged(relative: str) -> bool:
    path = PurePosixPath("default_model") / relative
    return any(path.match(pattern) and len(path.parts) == len(PurePosixPath(pattern).parts)
               for pattern in package_data_patterns())


def test_package_data_carries_every_default_model_file(exported):
    files = [p.relative_to(exported).as_posix() for p in defaults.shipped_files(exported)] + ["MODEL_CARD.md"]
    assert "model/model.safetensors" in files and "classifier/classifier.json" in files
    assert [f for f in files if not packaged(f)] == []
    assert (defaults.PACKAGE_DIRECTORY / "MODEL_CARD.md").is_file()


SHIPPED = defaults.PACKAGE_DIRECTORY


@pytest.fixture
def shipped(monkeypatch) -> Path:
    if not (SHIPPED / "model" / "config.json").is_file():
        pytest.skip(f"no default model shipped yet: {SHIPPED} has no model/config.json "
                    "(install one with `sentiment-discovery export-default`, docs/default_model.md)")
    monkeypatch.delenv(defaults.ENV_VAR, raising=False)
    return SHIPPED


def test_shipped_default_model_loads_and_its_classifier_verifies(shipped):
    model = sd.load_model()
    assert model.config.rnn_size == json.loads((shipped / "model" / "config.json").read_text())["model"]["rnn_size"]
    values = json.loads((shipped / "classifier" / "classifier.json").read_text())
    assert values["model"]["path"] == "../model", "the shipped classifier must find the shipped model relatively"
    classifier = SentimentClassifier.load()
    classifier.attach_model(shipped / "model")  # weights sha256, width, layer, text options
    probabilities = classifier.predict_proba(["A gorgeous, moving film.", "Dull and far too long."])
    assert probabilities.shape == (2, 2) and np.isfinite(probabilities).all()
    unit = defaults.sentiment_unit()
    assert (unit.unit, unit.sign, unit.layer) == (classifier.top_units[0], classifier.top_unit_signs[0],
                                                  classifier.model.layer)
    size = defaults.directory_bytes(shipped / "model")
    assert size <= defaults.SIZE_LIMIT_BYTES, f"the shipped model takes {size / 1e6:.1f} MB (at most 25 MB)"
    assert [p for p in defaults.shipped_files(shipped) if not packaged(p.relative_to(shipped).as_posix())] == []


def test_shipped_model_card_is_filled_in(shipped):
    card = (shipped / "MODEL_CARD.md").read_text()
    left = card.count("TODO-RESULTS")
    assert left == 0, f"{shipped / 'MODEL_CARD.md'} still has {left} TODO-RESULTS placeholders"


def test_transfer_leaves_the_model_byte_identical_and_visualize_reads_the_unit_from_the_classifier(fitted, tmp_path, capsys):
    model_dir, results_dir = fitted
    assert "sentiment_unit" not in load_model(model_dir).metadata
    classifier = SentimentClassifier.load(results_dir)
    unit, sign = classifier.top_units[0], classifier.top_unit_signs[0]
    text = "a moving film"
    capsys.readouterr()
    args = ["visualize", "-classifier", str(results_dir), "-text", text, "-experiment_dir", str(tmp_path)]
    assert cli.main(args) == 0
    page = (tmp_path / "mlstm" / "heatmaps" / f"{heatmap_file_stem(unit_values(load_model(model_dir), text, unit).text)}.html")
    html = page.read_text(encoding="utf-8")
    assert f"unit {unit} of layer 0, model {model_dir.resolve()}" in html
    assert ("colours negated" in html) == (sign < 0)
    expected = unit_values(load_model(model_dir), text, unit).values
    titles = re.findall(r'title="([^"]+)"', html)
    assert [title.split(",")[0] for title in titles] == [f"{v:+.4f}" for v in expected]
    # The classifier's sentiment trace is drawn too: P(positive) of the text so far.
    assert all(", P(positive) so far " in title for title in titles)
    # -load_model must be the model the classifier was fitted on.
    other = tmp_path / "other"
    save_model(make_model(seed=7), other)
    capsys.readouterr()
    assert cli.main(args + ["-load_model", str(other)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {results_dir / 'classifier.json'} was fitted on model ")


def test_shipped_frozen_feature_classifier_stays_available_and_the_package_stays_small(shipped):
    frozen = SentimentClassifier.load(defaults.frozen_classifier_directory())
    assert Path(frozen.model.path) == (shipped / "frozen" / "model").resolve()
    frozen.attach_model(frozen.model.path)  # its own weights, checked by sha256
    assert frozen.model.weights_sha256 != SentimentClassifier.load().model.weights_sha256
    files = defaults.shipped_files(shipped)
    assert [p for p in files if not packaged(p.relative_to(shipped).as_posix())] == []
    total = sum(path.stat().st_size for path in files)
    assert total <= defaults.PACKAGE_SIZE_LIMIT_BYTES, f"the default models take {total / 1e6:.1f} MB (at most 30 MB)"
