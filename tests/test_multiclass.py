"""More than two classes (-multiclass): transfer, finetune, classify, serve and visualize, end to end.

A tiny random model and a synthetic 3-class set whose class (1, 3 or 5 "stars") is named by a
keyword repeated in the text, so the mean-pooled features separate the classes.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sentiment_discovery import cli, transfer
from sentiment_discovery.checkpoint import save_model
from sentiment_discovery.data.readers import read_labeled
from sentiment_discovery.foundation.errors import UserError

from conftest import labelled, make_model, write_csv

WORDS = {1: "terrible", 3: "okay", 5: "excellent"}


def three_classes(count: int, offset: int = 0) -> list[tuple]:
    rows = []
    for index in range(count):
        label = (1, 3, 5)[(index + offset) % 3]
        rows.append((label, f"it was {WORDS[label]}, {WORDS[label]} #{index + offset}"))
    return rows


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multiclass")
    save_model(make_model(), root / "model")
    data = root / "stars"
    data.mkdir()
    write_csv(data / "train.csv", three_classes(45))
    write_csv(data / "dev.csv", three_classes(12, offset=100))
    write_csv(data / "test.csv", three_classes(12, offset=200))
    return root


def transfer_args(root: Path, name: str, *extra: str) -> list[str]:
    data = root / "stars"
    return [
        "transfer", "-experiment_dir", str(root / "exp"), "-experiment_name", name, "-load_model", str(root / "model"),
        "-train", str(data / "train.csv"), "-valid", str(data / "dev.csv"), "-test", str(data / "test.csv"),
        "-pooling", "mean", "-c_grid", "0.5", "8", "-multiclass", "-precision", "fp32", *extra,
    ]


@pytest.fixture(scope="module")
def fitted(workspace) -> Path:
    """A -multiclass transfer run with -write_results; its results directory."""
    assert cli.main(transfer_args(workspace, "fit", "-write_results", str(workspace / "predictions.csv"),
                                  "-data_efficiency_seeds", "1")) == 0
    return workspace / "exp" / "fit" / "stars" / "model"


def test_transfer_fits_one_vs_rest_and_records_the_classes(fitted, workspace):
    saved = json.loads((fitted / "classifier.json").read_text())
    assert saved["classes"] == [1, 3, 5]
    assert np.shape(saved["all_neurons"]["coef"]) == (3, 16) and len(saved["all_neurons"]["intercept"]) == 3
    results = json.loads((fitted / "results.json").read_text())
    assert results["classes"] == [1, 3, 5]
    # The 2017 lines without the single-unit threshold lines, which only mean something for two classes.
    assert len(results["seed_output"]) == 7 and results["single_unit_threshold_0"] == []
    per_class = results["per_class"]
    assert per_class["evaluated_on"] == "test" and per_class["majority_class_accuracy"] == pytest.approx(1 / 3)
    assert [entry["class"] for entry in per_class["classes"]] == [1, 3, 5]
    confusion = np.array(per_class["confusion"]["matrix"])
    assert confusion.sum() == 12 and confusion.sum(axis=1).tolist() == [4, 4, 4]
    assert results["all_neurons"]["test_accuracy"] == pytest.approx(np.trace(confusion) / 12)
    assert results["all_neurons"]["test_accuracy"] > 0.9  # the keywords separate the classes
    assert sorted(path.name for path in fitted.iterdir()) == [
        "classifier.json", "data_efficiency.png", "results.json", "weights.png"]  # no negative/positive histograms

    with open(workspace / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:6] == ["sentence", "label", "prediction", "probability_1", "probability_3", "probability_5"]
    probabilities = np.array([[float(row[f"probability_{c}"]) for c in (1, 3, 5)] for row in rows])
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    predicted = [int(row["prediction"]) for row in rows]
    assert predicted == [(1, 3, 5)[i] for i in probabilities.argmax(axis=1)]
    assert np.mean([p == int(row["label"]) for p, row in zip(predicted, rows)]) > 0.9

    # Loaded back, the classifier gives the same probabilities, and labels the texts with the classes.
    classifier = transfer.SentimentClassifier.load(fitted)
    assert classifier.classes == [1, 3, 5] and classifier.multiclass
    texts = [row["sentence"] for row in rows]
    assert np.array_equal(classifier.predict_proba(texts), probabilities)
    assert classifier.predict(texts).tolist() == predicted
    trace, predicted_class = classifier.predicted_class_trace(texts[0])
    assert predicted_class == predicted[0] and trace[-1] == pytest.approx(probabilities[0].max())


def test_classify_prints_the_class_and_writes_a_column_per_class(fitted, workspace, capsys):
    assert cli.main(["classify", "-classifier", str(fitted), "-text", "it was excellent, excellent",
                     "-text", "it was terrible, terrible"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[1:] for line in lines] == [["5", "it was excellent, excellent"], ["1", "it was terrible, terrible"]]
    assert all(1 / 3 < float(line[0]) <= 1 for line in lines)
    out = workspace / "classified.csv"
    assert cli.main(["classify", "-classifier", str(fitted), "-input", str(workspace / "stars" / "test.csv"),
                     "-output", str(out)]) == 0
    assert "12 texts: 4 class 1, 4 class 3, 4 class 5" in capsys.readouterr().err
    header = out.read_text().splitlines()[0].split(",")
    assert header[:6] == ["line", "sentence", "prediction", "probability_1", "probability_3", "probability_5"]


def test_serve_and_visualize_show_the_predicted_class(fitted, workspace, capsys):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from sentiment_discovery.serve.app import create_app
    from sentiment_discovery.serve.service import InferenceService

    service = InferenceService.load(str(workspace / "model"), str(fitted), featurize_precision="fp32")
    with TestClient(create_app(service)) as client:
        assert client.get("/info").json()["classifier"]["classes"] == [1, 3, 5]
        answer = client.post("/classify", json={"texts": ["it was okay, okay", "excellent"], "trace": True}).json()
    assert answer["classes"] == ["1", "3", "5"] and answer["labels"][0] == "3"
    assert np.allclose(np.sum(answer["class_probabilities"], axis=1), 1.0)
    assert answer["probabilities"] == [max(row) for row in answer["class_probabilities"]]
    assert answer["traces"][0]["probabilities"][-1] == pytest.approx(answer["probabilities"][0])

    assert cli.main(["visualize", "-classifier", str(fitted), "-text", "it was okay, okay",
                     "-experiment_dir", str(workspace / "exp")]) == 0
    page = next((workspace / "exp" / "mlstm" / "heatmaps").glob("*.html")).read_text()
    assert "P(class 3) of the text so far, the class it predicts for the whole text" in page
    assert "P(class 3) so far" in page and "P(positive)" not in page
    capsys.readouterr()


def test_finetune_trains_a_head_per_class(workspace, capsys):
    data = workspace / "stars"
    assert cli.main([
        "finetune", "-load_model", str(workspace / "model"), "-train", str(data / "train.csv"), "-valid",
        str(data / "dev.csv"), "-test", str(data / "test.csv"), "-multiclass", "-experiment_dir",
        str(workspace / "exp"), "-experiment_name", "ft", "-batch_size", "8", "-epochs", "1", "-eval_every", "1",
        "-precision", "fp32",
    ]) == 0
    run = workspace / "exp" / "ft" / "finetune"
    saved = json.loads((run / "classifier.json").read_text())
    assert saved["classes"] == [1, 3, 5] and saved["all_neurons"]["softmax"] is True
    assert np.shape(saved["all_neurons"]["coef"]) == (3, 16)
    results = json.loads((run / "results.json").read_text())
    assert results["classes"] == [1, 3, 5] and results["per_class"]["evaluated_on"] == "test"
    assert results["finetuned_accuracy"]["test"] > 0.9
    metadata = json.loads((run / "model" / "config.json").read_text())["metadata"]
    assert metadata["finetuned"]["classes"] == 3
    classifier = transfer.SentimentClassifier.load(run)
    probabilities = classifier.predict_proba(["it was excellent, excellent", "it was terrible, terrible"])
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert classifier.predict(["it was excellent, excellent", "it was terrible, terrible"]).tolist() == [5, 1]
    capsys.readouterr()


def test_cross_validation_with_three_classes(workspace, capsys):
    args = [a for a in transfer_args(workspace, "cv", "-cv", "3")
            if a not in ("-valid", "-test", str(workspace / "stars" / "dev.csv"), str(workspace / "stars" / "test.csv"))]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any(" w/ neuron " in line for line in lines)
    assert any(line.startswith("3-fold cross-validation, all_neurons: test accuracy") for line in lines)
    results = json.loads((workspace / "exp" / "cv" / "stars" / "model" / "results.json").read_text())
    assert results["classes"] == [1, 3, 5] and results["summary"]["single_unit_threshold_0"] == []
    # Without -valid, -split holds validation out of -train as for two classes.
    args = [a for a in transfer_args(workspace, "split") if a not in ("-valid", str(workspace / "stars" / "dev.csv"))]
    assert cli.main(args + ["-no_data_efficiency"]) == 0
    results = json.loads((workspace / "exp" / "split" / "stars" / "model" / "results.json").read_text())
    assert results["texts"] == {"train": 41, "valid": 4, "test": 12} and results["classes"] == [1, 3, 5]
    capsys.readouterr()


def error_of(args: list[str], capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_label_errors(workspace, capsys):
    data = workspace / "stars"
    one_class = write_csv(workspace / "one.csv", [(4, "good"), (4, "great")])
    message = error_of(transfer_args(workspace, "e1") + ["-train", str(one_class)], capsys)
    assert message == f"error: the training set {one_class} has only label 4; a classifier needs two classes or more"
    unseen = write_csv(workspace / "unseen.csv", three_classes(5) + [(2, "it was so-so")])
    message = error_of(transfer_args(workspace, "e2") + ["-test", str(unseen)], capsys)
    assert message == f"error: {unseen} (test) has label 2, which is not a class of the training set (1, 3, 5)"
    fractional = write_csv(workspace / "half.csv", [(1, "a"), (2.5, "b")])
    message = error_of(transfer_args(workspace, "e3") + ["-train", str(fractional)], capsys)
    assert message == (f"error: {fractional}:3: label 2.5 in 'label' is not a whole number; "
                       "-multiclass labels are integers such as star ratings")
    message = error_of(transfer_args(workspace, "e4") + ["-binarize_sent"], capsys)
    assert "-binarize_sent" in message and "-multiclass" in message
    without = [a for a in transfer_args(workspace, "e5") if a != "-multiclass"]
    message = error_of(without, capsys)
    assert message.endswith("are not binary (found 1, 3, 5); pass -binarize_sent to split them at the middle of "
                            "their range, or -multiclass to keep each label as a class")
    # The reader alone: any whole numbers with any_labels, kept as they are.
    assert read_labeled(data / "train.csv", "sentence", "label", any_labels=True).labels[:4].tolist() == [1, 3, 5, 1]
    with pytest.raises(UserError, match="not a class of the training set"):
        transfer.class_indices(np.array([1, 2]), np.array([1, 3]), "x")


def test_export_default_refuses_a_multiclass_classifier(fitted, workspace, capsys):
    message = error_of(["export-default", "-model", str(workspace / "model"), "-classifier", str(fitted),
                        "-out", str(workspace / "default")], capsys)
    assert "classes 1, 3, 5 (-multiclass)" in message and "negative/positive" in message
    assert not (workspace / "default").exists()


def test_binary_labels_give_the_same_classifier_with_or_without_multiclass(tmp_path, capsys):
    save_model(make_model(), tmp_path / "model")
    write_csv(tmp_path / "train.csv", labelled(30))
    write_csv(tmp_path / "dev.csv", labelled(10, offset=100))
    outputs = {}
    # -jobs 1: liblinear fits run in parallel threads are not bit-reproducible from run to run.
    for name, extra in (("plain", []), ("multi", ["-multiclass"])):
        assert cli.main(["transfer", "-experiment_dir", str(tmp_path / name), "-load_model", str(tmp_path / "model"),
                         "-train", str(tmp_path / "train.csv"), "-valid", str(tmp_path / "dev.csv"),
                         "-c_grid", "0.5", "8", "-no_data_efficiency", "-jobs", "1", *extra]) == 0
        outputs[name] = capsys.readouterr().out
    results = [tmp_path / name / "mlstm" / tmp_path.name / "model" for name in ("plain", "multi")]
    assert (results[0] / "classifier.json").read_bytes() == (results[1] / "classifier.json").read_bytes()
    assert outputs["plain"] == outputs["multi"] and " w/ neuron " in outputs["plain"]
    assert "classes" not in json.loads((results[1] / "results.json").read_text())


def test_probe_of_three_classes_round_trips_through_json():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    labels = np.argmax(features[:, :3], axis=1)
    probe = transfer.PreparedInputs.of(features).fit(labels, 1.0, seed=0)
    assert probe.multiclass and probe.coef.shape == (3, 4) and probe.n_classes == 3
    assert probe.accuracy(features, labels) > 0.8
    again = transfer.LinearProbe.from_dict(json.loads(json.dumps(probe.to_dict())))
    assert np.array_equal(again.predict_proba(features), probe.predict_proba(features))
    again.check_shape(4, "probe")
    with pytest.raises(ValueError, match="weights of shape"):
        transfer.LinearProbe.from_dict({**probe.to_dict(), "intercept": [0.0, 0.0]}).check_shape(4, "probe")
