import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sentiment_discovery import ByteLM, UserError, cli, load_model, precision, save_model
from sentiment_discovery import transfer
from sentiment_discovery.transfer import (
    FeatureCache,
    LinearProbe,
    ModelIdentity,
    SentimentClassifier,
    featurize_cached,
    fit_sentiment_classifier,
    rank_units,
    seed_result_lines,
    sweep_regularization,
    top_units_line,
)

from conftest import labelled, make_model, write_csv

IDENTITY = ModelIdentity(
    name="m", path="/nowhere/m", weights_sha256="0" * 64, rnn_size=12, layer=0, preprocess=True, text_options={}
)


def planted(n: int, unit: int = 5, width: int = 12, strength: float = 3.0, seed: int = 0):
    """Random features with one unit that moves with the label (sign of ``strength``)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.standard_normal((n, width)).astype(np.float32)
    features[:, unit] += strength * (2 * labels - 1)
    return features, labels


# --------------------------------------------------------------------------- the sweep and the ranking


def test_sweep_chooses_C_on_validation_accuracy():
    train_x, train_y = planted(200)
    valid_x, valid_y = planted(200, seed=1)
    grid = [1e-6, 1.0]  # 1e-6 gives the empty model, 1.0 a model on the planted unit
    same = sweep_regularization(train_x, train_y, valid_x, valid_y, c_grid=grid)
    assert same.C == 1.0 and same.valid_accuracy[1.0] > 0.9 and same.probe.features_used >= 1
    assert same.valid_accuracy[1e-6] == np.mean(valid_y == 0)  # empty model: decision 0 -> label 0
    # Same training data, validation labels flipped: now the empty model validates best.
    flipped = sweep_regularization(train_x, train_y, valid_x, 1 - valid_y, c_grid=grid)
    assert flipped.C == 1e-6 and flipped.probe.features_used == 0
    assert list(flipped.valid_accuracy) == grid


def test_sweep_ties_go_to_the_smaller_C_and_patience_stops_early():
    train_x, train_y = planted(200, strength=6.0)
    valid_x, valid_y = planted(200, strength=6.0, seed=1)
    tied = sweep_regularization(train_x, train_y, valid_x, valid_y, c_grid=[4.0, 1.0, 2.0], jobs=2)
    assert list(tied.valid_accuracy) == [1.0, 2.0, 4.0] and set(tied.valid_accuracy.values()) == {1.0}
    assert tied.C == 1.0
    early = sweep_regularization(train_x, train_y, valid_x, 1 - valid_y, c_grid=[1e-6, 1e-5, 1.0, 2.0, 4.0], patience=1)
    assert list(early.valid_accuracy) == [1e-6, 1e-5, 1.0]  # the plateau goes on, the first drop stops it


def test_sweep_matches_a_direct_fit_and_rejects_bad_grids():
    train_x, train_y = planted(150)
    valid_x, valid_y = planted(100, seed=1)
    sweep = sweep_regularization(train_x, train_y, valid_x, valid_y, c_grid=[0.01, 0.1, 1.0], seed=3)
    direct = transfer.PreparedInputs.of(train_x).fit(train_y, sweep.C, seed=3)
    np.testing.assert_array_equal(sweep.probe.coef, direct.coef)
    with pytest.raises(UserError, match="must be positive numbers"):
        sweep_regularization(train_x, train_y, valid_x, valid_y, c_grid=[0.1, -1.0])
    with pytest.raises(UserError, match="the training set has only label 1"):
        sweep_regularization(train_x, np.ones_like(train_y), valid_x, valid_y)


@pytest.mark.parametrize("strength", [3.0, -3.0])
def test_planted_unit_is_ranked_first_with_its_sign(strength):
    train_x, train_y = planted(300, unit=7, strength=strength)
    valid_x, valid_y = planted(200, unit=7, strength=strength, seed=1)
    fit = fit_sentiment_classifier(train_x, train_y, valid_x, valid_y, IDENTITY, progress=False)
    classifier = fit.classifier
    assert classifier.top_units[0] == 7 and len(classifier.top_units) == 5
    assert list(classifier.n_neurons.units) == [7]
    sign = classifier.top_unit_signs[0]
    assert sign == (1 if strength > 0 else -1)
    assert transfer.threshold_accuracy(valid_x[:, 7], valid_y, sign) > 0.9
    assert transfer.threshold_accuracy(valid_x[:, 7], valid_y, -sign) < 0.1
    assert list(rank_units(classifier.all_neurons, 1)) == [7]


def test_rank_units_orders_by_absolute_weight_and_maps_subsets():
    probe = LinearProbe(coef=np.array([0.1, -3.0, 2.0, 0.0, -2.0]), intercept=0.0, C=1.0)
    assert rank_units(probe, 4).tolist() == [1, 2, 4, 0]  # ties keep the lower index first
    subset = LinearProbe(coef=np.array([0.5, -4.0]), intercept=0.0, C=1.0, units=np.array([10, 3]))
    assert rank_units(subset, 2).tolist() == [3, 10]
    assert transfer.unit_sign(subset, 3) == -1 and transfer.unit_sign(subset, 10) == 1


# --------------------------------------------------------------------------- output formats


def test_seed_format_lines_are_exact():
    full = LinearProbe(coef=np.r_[np.ones(107), np.zeros(4096 - 107)], intercept=0.0, C=0.125)
    top = LinearProbe(coef=np.array([2.5]), intercept=0.1, C=0.5, units=np.array([1285]))
    assert seed_result_lines("all_neurons", [0.92114, 0.90022, 0.91268], full) == [
        "92.11/90.02/91.27 train/val/test accuracy w/ all_neurons",
        "00.12 regularization coef w/ all_neurons",
        "00107 features used w/ all neurons all_neurons",
    ]
    assert top_units_line([1285, 1503, 3986, 1228, 2301]) == "neuron(s) 1285, 1503, 3986, 1228, 2301 are top sentiment neurons"
    assert seed_result_lines("n_neurons", [0.8636, 0.8544, 0.8671], top) == [
        "86.36/85.44/86.71 train/val/test accuracy w/ n_neurons",
        "00.50 regularization coef w/ n_neurons",
        "00001 features used w/ all neurons n_neurons",
    ]
    assert seed_result_lines("n_neurons", [1.0, 0.5, None], top)[0] == "100.00/50.00/--.-- train/val/test accuracy w/ n_neurons"
    assert transfer.threshold_line(1285, -1, [0.5, 0.25, None]) == "50.00/25.00/--.-- train/val/test accuracy w/ neuron 1285 < 0"


def fitted_classifier(identity=IDENTITY, standardize=False):
    train_x, train_y = planted(200, width=identity.rnn_size)
    valid_x, valid_y = planted(100, width=identity.rnn_size, seed=1)
    return fit_sentiment_classifier(
        train_x, train_y, valid_x, valid_y, identity, standardize=standardize, progress=False
    ).classifier


@pytest.mark.parametrize("standardize", [False, True])
def test_classifier_round_trip_gives_identical_probabilities(tmp_path, standardize):
    classifier = fitted_classifier(standardize=standardize)
    features, _ = planted(50, seed=2)
    path = classifier.save(tmp_path)
    assert path == tmp_path / "classifier.json"
    loaded = SentimentClassifier.load(tmp_path)
    assert loaded.top_units == classifier.top_units and loaded.model == classifier.model
    for use in ("all_neurons", "n_neurons"):
        before = classifier.predict_proba(features, use=use)
        assert before.shape == (50, 2)
        np.testing.assert_array_equal(loaded.predict_proba(features, use=use), before)
    np.testing.assert_allclose(classifier.predict_proba(features).sum(axis=1), 1.0)
    saved = json.loads(path.read_text())
    assert saved["format"] == "sentiment-discovery-classifier"
    assert (saved["all_neurons"]["standardize"] is not None) == standardize


def test_classifier_load_errors(tmp_path):
    with pytest.raises(UserError, match="no classifier at .*classifier.json; pass the results directory"):
        SentimentClassifier.load(tmp_path)
    (tmp_path / "classifier.json").write_text("{not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        SentimentClassifier.load(tmp_path)
    (tmp_path / "classifier.json").write_text(json.dumps({"format": "sentiment-discovery-classifier"}))
    with pytest.raises(UserError, match="incomplete or corrupt"):
        SentimentClassifier.load(tmp_path)
    classifier = fitted_classifier()
    with pytest.raises(UserError, match=r"features of shape \(3, 7\) do not fit a classifier of a 12-unit model"):
        classifier.predict_proba(np.zeros((3, 7)))
    with pytest.raises(UserError, match="unknown classifier 'best'"):
        classifier.predict(np.zeros((3, 12)), use="best")


def saved_model(directory: Path, seed: int = 0, **overrides) -> Path:
    save_model(make_model(seed, **overrides), directory)
    return directory


def test_classifier_checks_the_model_and_predicts_from_texts(tmp_path):
    model_dir = saved_model(tmp_path / "e0")
    model = load_model(model_dir)
    identity = ModelIdentity.of(model, model_dir)
    assert identity.rnn_size == 16 and identity.layer == 0 and identity.name == "e0"
    classifier = fitted_classifier(identity)
    classifier.save(tmp_path / "results")
    texts = ["a fine film", "dull and long", "ok"]
    loaded = SentimentClassifier.load(tmp_path / "results")  # the model is found from the saved path
    np.testing.assert_array_equal(loaded.predict_proba(texts), classifier.predict_proba(model.featurize(texts)))
    other = saved_model(tmp_path / "other", seed=1)
    with pytest.raises(UserError, match=r"was fitted on model .*e0 \(weights sha256 [0-9a-f]{12}\.\.\.\), but .*other has different weights"):
        SentimentClassifier.load(tmp_path / "results", model=other)
    wider = saved_model(tmp_path / "wide", rnn_size=24)
    with pytest.raises(UserError, match=r"was fitted on a 16-unit model .*, but .*wide has 24 units"):
        SentimentClassifier.load(tmp_path / "results", model=wider)


def test_write_predictions_rows_follow_input_order(tmp_path):
    classifier = fitted_classifier()
    features, labels = planted(4, seed=3)
    texts = ["first, with a comma", "second \"quoted\"", "third", "fourth"]
    path = transfer.write_predictions(tmp_path / "out.csv", texts, features, classifier, text_key="sentence", labels=labels)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    units = classifier.top_units
    assert rows[0] == ["sentence", "label", "prediction", "probability_all_neurons", "probability_n_neurons"] + [
        f"neuron_{u}" for u in units
    ]
    full = classifier.predict_proba(features)[:, 1]
    top = classifier.predict_proba(features, use="n_neurons")[:, 1]
    for index, row in enumerate(rows[1:]):
        assert row[0] == texts[index] and int(row[1]) == labels[index]
        assert int(row[2]) == int(full[index] > 0.5)
        assert float(row[3]) == full[index] and float(row[4]) == top[index]
        assert [np.float32(v) for v in row[5:]] == [features[index, u] for u in units]
    assert len(rows) == 5
    with pytest.raises(UserError, match="name the file .csv, not out.txt"):
        transfer.write_predictions(tmp_path / "out.txt", texts, features, classifier)


# --------------------------------------------------------------------------- the feature cache


def test_feature_cache_hit_avoids_featurizing(tmp_path, monkeypatch):
    model_dir = saved_model(tmp_path / "e0")
    model = load_model(model_dir)
    calls = []
    original = ByteLM.featurize

    def counting(self, texts, **kwargs):
        calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(ByteLM, "featurize", counting)
    identity = ModelIdentity.of(model, model_dir)
    cache = FeatureCache(tmp_path / "cache")
    texts = ["good", "bad movie", "fine"]
    first = featurize_cached(model, texts, identity, cache, progress=False)
    again = featurize_cached(model, texts, identity, cache, progress=False)
    assert calls == [3] and not first.cached and again.cached
    np.testing.assert_array_equal(first.features, again.features)
    # Anything the features depend on is part of the key.
    featurize_cached(model, texts[:2], identity, cache, progress=False)
    raw = ModelIdentity.of(model, model_dir, preprocess=False)
    featurize_cached(model, texts, raw, cache, progress=False)
    assert calls == [3, 2, 3]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    # A damaged file is featurized again, with a notice.
    cache.path(identity.feature_key(texts)).write_bytes(b"garbage")
    repaired = featurize_cached(model, texts, identity, cache, progress=False)
    assert calls == [3, 2, 3, 3] and not repaired.cached
    np.testing.assert_array_equal(repaired.features, first.features)


def test_feature_key_covers_weights_and_layer(tmp_path):
    model_dir = saved_model(tmp_path / "e0", layers=2)
    model = load_model(model_dir)
    top, bottom = ModelIdentity.of(model, model_dir), ModelIdentity.of(model, model_dir, layer=0)
    assert top.layer == 1 and top == ModelIdentity.of(model, model_dir, layer=1)
    assert top.feature_key(["x"]) != bottom.feature_key(["x"])
    other = saved_model(tmp_path / "e1", seed=5, layers=2)
    assert ModelIdentity.of(load_model(other), other).feature_key(["x"]) != top.feature_key(["x"])
    with pytest.raises(UserError, match="-layer 2 does not exist: the model has 2 layer"):
        ModelIdentity.of(model, model_dir, layer=2)


# --------------------------------------------------------------------------- the data-efficiency curve


def test_curve_sizes_and_bounded_seeds():
    assert transfer.curve_sizes(6920) == [10, 20, 50, 100, 200, 500, 1000, 2000]
    assert transfer.curve_sizes(25000) == [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    assert transfer.curve_sizes(15) == []
    seeds = {size: transfer.curve_seeds(size, 6920, 3) for size in transfer.curve_sizes(6920)}
    assert seeds == {10: 3, 20: 3, 50: 3, 100: 3, 200: 3, 500: 3, 1000: 2, 2000: 1}
    # The whole curve fits no more examples than the training set holds.
    assert sum(size * count for size, count in seeds.items()) <= 6920


def test_data_efficiency_curve_learns_the_planted_unit():
    train_x, train_y = planted(120, unit=2)
    valid_x, valid_y = planted(60, unit=2, seed=1)
    test_x, test_y = planted(60, unit=2, seed=2)
    rows = transfer.data_efficiency_curve(
        train_x, train_y, valid_x, valid_y, test_x, test_y, seeds=2, c_grid=[0.01, 0.1, 1.0], jobs=2, progress=False
    )
    assert [(row["size"], row["seed"]) for row in rows] == [(10, 0), (10, 1), (20, 0), (20, 1), (50, 0)]
    assert all(row["unit_accuracy"] > 0.85 for row in rows if row["size"] >= 20)
    assert all(row["unit"] == 2 for row in rows if row["size"] >= 20)
    summary = transfer.summarize_curve(rows)
    assert [entry["size"] for entry in summary] == [10, 20, 50] and summary[0]["seeds"] == 2
    rng = np.random.default_rng(0)
    sample = transfer.stratified_sample(np.array([0] * 95 + [1] * 5), 10, rng)
    assert len(sample) == 10 and len(set(sample.tolist())) == 10 and np.sum(sample >= 95) == 1


# --------------------------------------------------------------------------- the commands





def make_experiment(root: Path) -> Path:
    """A tiny model as checkpoint e0 of ``root/exp/mlstm`` and toy train/dev/test files in ``root/toy``."""
    saved_model(root / "exp" / "mlstm" / "model" / "e0")
    data = root / "toy"
    data.mkdir()
    write_csv(data / "train.csv", labelled(40))
    write_csv(data / "dev.csv", labelled(12, offset=100))
    write_csv(data / "test.csv", labelled(10, offset=200))
    return root


@pytest.fixture
def experiment(tmp_path):
    return make_experiment(tmp_path)


def transfer_args(root: Path, *extra: str) -> list[str]:
    return [
        "transfer", "-experiment_dir", str(root / "exp"), "-load_model", "e0.pt",
        "-train", str(root / "toy" / "train.csv"), "-valid", str(root / "toy" / "dev.csv"),
        "-test", str(root / "toy" / "test.csv"), "-text_key", "sentence", "-label_key", "label",
        "-c_grid", "0.5", "8", *extra,
    ]


def test_transfer_command_writes_results_and_reuses_cached_features(experiment, capsys, monkeypatch):
    out_csv = experiment / "results.csv"
    model_dir = experiment / "exp" / "mlstm" / "model" / "e0"
    model_files = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    assert cli.main(transfer_args(experiment, "-write_results", str(out_csv))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    results_dir = experiment / "exp" / "mlstm" / "toy" / "e0"
    results = json.loads((results_dir / "results.json").read_text())
    assert results["seed_output"] == lines
    accuracy = results["all_neurons"]
    assert lines[0] == "/".join(f"{100 * accuracy[k]:05.2f}" for k in ("train_accuracy", "valid_accuracy", "test_accuracy")) + " train/val/test accuracy w/ all_neurons"
    assert lines[1] == f"{accuracy['C']:05.2f} regularization coef w/ all_neurons"
    assert lines[3] == top_units_line(results["top_units"])
    assert lines[6] == f"{results['n_neurons']['features_used']:05d} features used w/ all neurons n_neurons"
    assert results["texts"] == {"train": 40, "valid": 12, "test": 10}
    assert results["validation"].startswith("validation file ")
    assert sorted(p.name for p in results_dir.iterdir()) == sorted(
        ["classifier.json", "results.json", "weights.png", "data_efficiency.png"]
        + [f"neuron_{u}_histogram.png" for u in results["top_units"]]
    )
    assert [row["size"] for row in results["data_efficiency"]["rows"]][-1] == 40
    # write_results: the test texts in file order, with the saved classifier's probabilities.
    with open(out_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sentence"] for row in rows] == [text for _, text in labelled(10, offset=200)]
    classifier = SentimentClassifier.load(results_dir)
    features = load_model(model_dir).featurize([row["sentence"] for row in rows])
    np.testing.assert_allclose([float(row["probability_all_neurons"]) for row in rows],
                               classifier.predict_proba(features)[:, 1], rtol=1e-6)
    # The sentiment unit lives with the results; the model directory is left byte-identical.
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == model_files
    assert transfer.file_sha256(model_dir / "model.safetensors") == classifier.model.weights_sha256

    def fail(*args, **kwargs):
        raise AssertionError("featurized although every feature is cached")

    monkeypatch.setattr(ByteLM, "featurize", fail)
    assert cli.main(transfer_args(experiment, "-no_data_efficiency")) == 0
    again = json.loads((results_dir / "results.json").read_text())
    assert all(split["cached"] for split in again["timing"]["featurize"].values())
    assert again["seed_output"] == lines and again["data_efficiency"] is None
    # The results directory was replaced whole: no figure of the first run is left beside the second's.
    assert not (results_dir / "data_efficiency.png").exists()


def test_classify_command_labels_new_texts(experiment, capsys):
    assert cli.main(transfer_args(experiment, "-no_data_efficiency")) == 0
    results_dir = experiment / "exp" / "mlstm" / "toy" / "e0"
    new = write_csv(experiment / "new.csv", [("never seen before",), ("what a lovely day",)], header=("sentence",))
    output = experiment / "labels.csv"
    status = cli.main(["classify", "--classifier", str(results_dir), "--input", str(new), "--text-key", "sentence",
                       "--output", str(output), "-experiment_dir", str(experiment / "exp")])
    assert status == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sentence"] for row in rows] == ["never seen before", "what a lovely day"]
    classifier = SentimentClassifier.load(results_dir)
    expected = classifier.predict_proba(["never seen before", "what a lovely day"])[:, 1]
    assert [float(row["probability_all_neurons"]) for row in rows] == expected.tolist()
    assert "2 texts:" in capsys.readouterr().err
    other = saved_model(experiment / "other", seed=3)
    status = cli.main(["classify", "--classifier", str(results_dir), "--input", str(new), "--model", str(other),
                       "--output", str(output), "-no_feature_cache"])
    assert status == 2
    assert "has different weights" in capsys.readouterr().err


def test_transfer_holds_out_validation_and_classifies_unlabelled_test(experiment, capsys):
    unlabelled = write_csv(experiment / "toy" / "unlabelled.csv", [("fine",), ("bad",), ("meh",)], header=("sentence",))
    out_csv = experiment / "unlabelled_results.csv"
    args = ["transfer", "-experiment_dir", str(experiment / "exp"), "-load_model", "e0",
            "-train", str(experiment / "toy" / "train.csv"), "-test", str(unlabelled), "-no_test_eval",
            "-split", "0.75", "-write_results", str(out_csv), "-no_data_efficiency", "-c_grid", "1"]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("/--.-- train/val/test accuracy w/ all_neurons")
    results = json.loads((experiment / "exp" / "mlstm" / "toy" / "e0" / "results.json").read_text())
    assert results["texts"] == {"train": 30, "valid": 10, "test": 3}
    assert results["validation"] == "10 texts held out of -train (-split 0.75, seed 1234)"
    with open(out_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sentence"] for row in rows] == ["fine", "bad", "meh"] and "label" not in rows[0]


def error_of(args: list[str], capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_transfer_bad_input_errors(experiment, capsys):
    toy = experiment / "toy"
    unlabelled = write_csv(toy / "unlabelled.csv", [("fine",)], header=("sentence",))
    message = error_of(transfer_args(experiment) + ["-test", str(unlabelled)], capsys)
    assert "no column 'label'" in message and f"if {unlabelled} has no labels, pass -no_test_eval" in message
    missing = toy / "missing.csv"
    message = error_of(transfer_args(experiment) + ["-test", str(missing)], capsys)
    assert message == f"error: input file {missing} does not exist"  # no label hint for other problems
    ratings = write_csv(toy / "ratings.csv", [(1, "a"), (5, "b"), (3, "c")])
    message = error_of(transfer_args(experiment) + ["-train", str(ratings)], capsys)
    assert "are not binary" in message and "-binarize_sent" in message
    empty = write_csv(toy / "empty.csv", [])
    message = error_of(transfer_args(experiment) + ["-valid", str(empty)], capsys)
    assert message == f"error: {empty} (valid) holds no labelled texts"
    one_class = write_csv(toy / "positive.csv", [(1, "good"), (1, "great")])
    message = error_of(transfer_args(experiment) + ["-train", str(one_class)], capsys)
    assert message == "error: the training set has only label 1; a classifier needs examples of both labels"
    no_valid = [a for a in transfer_args(experiment) if a not in ("-valid", str(toy / "dev.csv"))]
    message = error_of(no_valid + ["-split", "1"], capsys)
    assert message == "error: no validation set to choose C on: pass -valid FILE, or -split below 1 (e.g. 0.9)"
    message = error_of(transfer_args(experiment) + ["-num_neurons", "17"], capsys)
    assert message == "error: -num_neurons must be between 1 and the model's 16 units, not 17"
    message = error_of(transfer_args(experiment) + ["-write_results", "out.tsv"], capsys)
    assert message == "error: -write_results writes CSV; name the file .csv, not out.tsv"


def test_transfer_on_a_slice_of_sst2(shared_data, tmp_path, capsys):
    sst = tmp_path / "sst2"
    sst.mkdir()
    for name, count in (("train.csv", 60), ("dev.csv", 20), ("test.csv", 20)):
        lines = (shared_data / "sst2" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (sst / name).write_text("".join(lines[: count + 1]), encoding="utf-8")
    saved_model(tmp_path / "exp" / "mlstm" / "model" / "e0")
    args = ["transfer", "-experiment_dir", str(tmp_path / "exp"), "-load_model", "e0.pt",
            "-train", str(sst / "train.csv"), "-valid", str(sst / "dev.csv"), "-test", str(sst / "test.csv"),
            "-no_data_efficiency", "-c_grid", "0.25", "4"]
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "exp" / "mlstm" / "sst2" / "e0" / "results.json").read_text())
    assert results["dataset"] == "sst2" and results["texts"] == {"train": 60, "valid": 20, "test": 20}


def classify_probabilities(experiment: Path, results_dir: Path, texts: list[str], *flags: str) -> list[float]:
    """`classify --input ... --output` on ``texts``: the all-units probabilities it wrote, in order."""
    new = write_csv(experiment / "new.csv", [(text,) for text in texts], header=("sentence",))
    output = experiment / "labels.csv"
    assert cli.main(["classify", "--classifier", str(results_dir), "--input", str(new), "--output", str(output),
                     "-experiment_dir", str(experiment / "exp"), *flags]) == 0
    with open(output, newline="", encoding="utf-8") as handle:
        return [float(row["probability_all_neurons"]) for row in csv.DictReader(handle)]


def test_bf16_features_are_recorded_but_classify_featurizes_in_auto(experiment, capsys):
    assert cli.main(transfer_args(experiment, "-no_data_efficiency", "-precision", "bf16")) == 0
    results_dir = experiment / "exp" / "mlstm" / "toy" / "e0"
    classifier = SentimentClassifier.load(results_dir)
    assert classifier.model.precision == "bf16"
    results = json.loads((results_dir / "results.json").read_text())
    assert results["model"]["precision"] == "bf16" and results["command_config"]["precision"] == "bf16"
    texts = ["never seen before", "what a lovely day"]
    language_model = load_model(classifier.model.path)
    bf16 = language_model.featurize(texts, precision="bf16")
    fp32 = language_model.featurize(texts, precision="fp32")
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    # The recorded precision is a record, not an order: from Python and from the CLI, new
    # texts are featurized in "auto" (fp32 in the tests, see conftest) unless told otherwise.
    assert classifier.precision == "auto"
    np.testing.assert_array_equal(classifier.features(texts), fp32)
    np.testing.assert_array_equal(SentimentClassifier.load(results_dir, precision="bf16").features(texts), bf16)
    assert classify_probabilities(experiment, results_dir, texts) == classifier.predict_proba(fp32)[:, 1].tolist()
    assert classify_probabilities(experiment, results_dir, texts, "-precision", "bf16") == (
        classifier.predict_proba(bf16)[:, 1].tolist()
    )


def test_auto_precision_is_resolved_and_recorded(experiment, capsys, monkeypatch):
    monkeypatch.setattr(precision, "_auto_choices", {"cpu": "bf16"})  # as on a CPU with native bf16
    assert cli.main(transfer_args(experiment, "-no_data_efficiency")) == 0
    results_dir = experiment / "exp" / "mlstm" / "toy" / "e0"
    results = json.loads((results_dir / "results.json").read_text())
    assert results["command_config"]["precision"] == "auto"  # the request
    assert results["model"]["precision"] == "bf16"  # what the features were made in
    assert SentimentClassifier.load(results_dir).model.precision == "bf16"


def test_mean_pooling_is_recorded_checked_and_reused_by_classify(experiment, capsys):
    assert cli.main(transfer_args(experiment, "-no_data_efficiency", "-pooling", "mean")) == 0
    results_dir = experiment / "exp" / "mlstm" / "toy" / "e0"
    classifier = SentimentClassifier.load(results_dir)
    assert classifier.model.pooling == "mean"
    texts = ["never seen before", "what a lovely day"]
    language_model = load_model(classifier.model.path)
    mean = language_model.featurize(texts, pooling="mean")
    np.testing.assert_array_equal(classifier.features(texts), mean)
    assert classify_probabilities(experiment, results_dir, texts) == classifier.predict_proba(mean)[:, 1].tolist()
    # Features pooled another way are refused, by name.
    final = ModelIdentity.of(language_model, classifier.model.path)
    with pytest.raises(UserError, match="fitted on features with pooling 'mean', not 'final'"):
        classifier.check_model(final)
    with pytest.raises(UserError, match="-pooling must be one of final, mean, max, concat, not 'last'"):
        ModelIdentity.of(language_model, classifier.model.path, pooling="last")


def test_classifier_files_without_pooling_mean_final_pooling(experiment):
    assert cli.main(transfer_args(experiment, "-no_data_efficiency")) == 0
    path = experiment / "exp" / "mlstm" / "toy" / "e0" / "classifier.json"
    values = json.loads(path.read_text())
    assert values["model"].pop("pooling") == "final"
    path.write_text(json.dumps(values))
    assert SentimentClassifier.load(path).model.pooling == "final"
