"""Calibrated probabilities and the n-gram part: the temperature, the ECE, NgramProbe, and `calibrate` end to end."""

import csv
import json

import numpy as np
import pytest

from sentiment_discovery import UserError, cli, save_model
from sentiment_discovery.serve.service import InferenceService, ShownUnit
from sentiment_discovery.transfer import SentimentClassifier
from sentiment_discovery.transfer.calibration import expected_calibration_error, fit_temperature, reliability
from sentiment_discovery.transfer.ngrams import NGRAM_FILE, NgramProbe, fit_ngram_probe

from conftest import labelled, make_model, write_csv

# --------------------------------------------------------------------------- temperature and ECE


def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 20_000)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-logits / 2.5))).astype(np.int64)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    # Already calibrated logits give T near 1; the fit never flips a label.
    calibrated = (rng.random(20_000) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    assert fit_temperature(logits, calibrated) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(UserError, match="binary"):
        fit_temperature(logits[:3], np.array([0, 1, 2]))


def test_ece_by_hand():
    # Two bins filled: confidence 0.9 (4 texts, 3 right) and 0.6 (2 texts, both right).
    positive = np.array([0.9, 0.9, 0.1, 0.1, 0.6, 0.4])
    labels = np.array([1, 1, 0, 1, 1, 0])
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(1.0 - 0.6)
    assert expected_calibration_error(positive, labels) == pytest.approx(expected)
    curve = reliability(positive, labels)
    assert int(curve.counts.sum()) == 6 and curve.to_dict()["ece"] == pytest.approx(expected, abs=1e-6)
    perfect = reliability(np.array([1.0, 0.0]), np.array([1, 0]))
    assert perfect.ece == 0.0


# --------------------------------------------------------------------------- the n-gram part

TEXTS = ["great phone, love it", "terrible, broke fast", "love the screen", "awful battery, avoid",
         "great value and fast", "broke after a week"] * 5
LABELS = np.array([1, 0, 1, 0, 1, 0] * 5)


def fitted_ngrams(n_features=2**10) -> NgramProbe:
    probe, scores = fit_ngram_probe(TEXTS, LABELS, lambda p: np.mean((p.decision_function(TEXTS) > 0) == LABELS),
                                    c_grid=(0.5, 4.0), n_features=n_features)
    assert set(scores) == {0.5, 4.0}
    return probe


def test_ngram_probe_matches_scikit_learn_tfidf_and_round_trips(tmp_path):
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfTransformer

    from sentiment_discovery.transfer.ngrams import _counts

    probe = fitted_ngrams()
    assert np.mean((probe.decision_function(TEXTS) > 0) == LABELS) == 1.0
    # The hand-written weighting is scikit-learn's TfidfTransformer (smooth idf, sublinear tf, l2).
    new = ["love it, great", "avoid, awful"]
    reference = hstack([TfidfTransformer(sublinear_tf=True).fit(_counts(TEXTS, block, 2**10)).transform(
        _counts(new, block, 2**10)) for block in ("word", "char")]).toarray()
    np.testing.assert_allclose(probe.matrix(new).toarray(), reference, rtol=1e-6, atol=1e-7)
    probe.save(tmp_path)
    values = probe.to_dict()
    loaded = NgramProbe.load(tmp_path, values, tmp_path / "classifier.json")
    np.testing.assert_array_equal(loaded.decision_function(new), probe.decision_function(new))
    # Bad files: a wrong byte, a missing file, another format.
    data = bytearray((tmp_path / NGRAM_FILE).read_bytes())
    data[-1] ^= 1
    (tmp_path / NGRAM_FILE).write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256 differs"):
        NgramProbe.load(tmp_path, values, "c.json")
    (tmp_path / NGRAM_FILE).unlink()
    with pytest.raises(UserError, match="are missing"):
        NgramProbe.load(tmp_path, values, "c.json")
    with pytest.raises(UserError, match="is not a"):
        NgramProbe.load(tmp_path, values | {"format": "other"}, "c.json")


# --------------------------------------------------------------------------- `calibrate`, then every consumer


@pytest.fixture
def fitted(tmp_path):
    """A transfer classifier on a tiny model, and train/selection files with a domain column."""
    save_model(make_model(seed=2), tmp_path / "model")
    write_csv(tmp_path / "train.csv", labelled(40))
    write_csv(tmp_path / "dev.csv", labelled(12, offset=100))
    assert cli.main(["transfer", "-load_model", str(tmp_path / "model"), "-train", str(tmp_path / "train.csv"),
                     "-valid", str(tmp_path / "dev.csv"), "-text_key", "sentence", "-c_grid", "0.5", "8",
                     "-no_data_efficiency", "-experiment_dir", str(tmp_path / "exp"), "-no_feature_cache"]) == 0
    [results] = list((tmp_path / "exp").glob("mlstm/*/*/classifier.json"))
    rows = [(label, text, "films" if i % 2 else "phones") for i, (label, text) in enumerate(labelled(24, offset=300))]
    write_csv(tmp_path / "select.csv", rows, header=("label", "sentence", "domain"))
    return tmp_path, results.parent


def test_calibrate_stores_the_temperature_and_every_consumer_applies_it(fitted, capsys):
    root, results = fitted
    out = root / "calibrated"
    assert cli.main(["calibrate", "-classifier", str(results), "-valid", str(root / "select.csv"),
                     "-domain_key", "domain", "-ngrams", "-train", str(root / "train.csv"), "-out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) >= ["calibration.json", "classifier.json", "model", "reliability.png"]
    report = json.loads((out / "calibration.json").read_text())
    stored = json.loads((out / "classifier.json").read_text())
    assert stored["temperature"] == report["temperature"] and report["temperature"] > 0
    assert set(report["language_model"]["by_domain"]) == {"films", "phones"}
    # The blend is kept exactly when it beats both parts alone on the selection texts.
    blend = report["ngrams"]
    assert blend["kept"] == (blend["best"]["score"] > max(report["language_model"]["score"], blend["alone"]["score"]))
    assert ("ngrams" in stored) == blend["kept"]
    original, calibrated = SentimentClassifier.load(results), SentimentClassifier.load(out)
    texts = ["what a lovely day", "a dull, tedious mess", "I loved it"]
    raw = original.all_neurons.decision_function(original.features(texts))
    expected = calibrated.scores(calibrated.features(texts), texts=texts) / report["temperature"]
    if not blend["kept"]:
        np.testing.assert_allclose(expected * report["temperature"], raw)
    api = calibrated.predict_proba(texts)[:, 1]
    np.testing.assert_allclose(api, 1 / (1 + np.exp(-expected)), rtol=1e-12)
    # classify prints the same probabilities (4 decimals) ...
    capsys.readouterr()
    args = ["classify", "-classifier", str(out)] + [a for t in texts for a in ("--text", t)]
    assert cli.main(args) == 0
    printed = [float(line.split("\t")[0]) for line in capsys.readouterr().out.splitlines()]
    assert printed == [round(float(p), 4) for p in api]
    # ... and writes them exactly to its CSV; serve and the trace give them too.
    assert cli.main(args + ["-output", str(root / "labels.csv")]) == 0
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        assert [float(r["probability_all_neurons"]) for r in csv.DictReader(handle)] == api.tolist()
    service = InferenceService(calibrated.language_model, calibrated, unit=ShownUnit(3, 0))
    try:
        served = [p for p, _ in service.classify(texts).result()]
    finally:
        service.close()
    np.testing.assert_allclose(served, api, rtol=1e-9)
    assert calibrated.probability_trace(texts[0])[-1] == pytest.approx(api[0], rel=1e-9)


def test_a_kept_ngram_part_is_used_everywhere_and_checked_on_load(fitted, monkeypatch):
    root, results = fitted
    # Force the blend to be kept, so that its prediction path is exercised whatever the tiny model does.
    from sentiment_discovery.recipes import calibrate

    out = root / "blended"
    monkeypatch.setattr(calibrate, "BLEND_WEIGHTS", (0.0, 0.5, 1.0))
    original = SentimentClassifier.load(results)
    probe = fitted_ngrams(n_features=2**12)
    original.ngrams, original.ngram_weight, original.temperature = probe, 0.5, 2.0
    out.mkdir()
    original.save(out)
    loaded = SentimentClassifier.load(out)
    texts = ["great phone, love it", "awful battery, avoid"]
    lm = loaded.all_neurons.decision_function(loaded.features(texts))
    ngram = probe.decision_function(loaded.ngram_texts(texts))
    np.testing.assert_allclose(loaded.predict_proba(texts)[:, 1], 1 / (1 + np.exp(-(0.5 * lm + 0.5 * ngram) / 2.0)))
    assert loaded.probability_trace(texts[1])[-1] == pytest.approx(loaded.predict_proba(texts)[1, 1], rel=1e-9)
    with pytest.raises(UserError, match="reads the texts too"):
        loaded.predict_proba(loaded.features(texts))
    values = json.loads((out / "classifier.json").read_text())
    for broken, message in (({"temperature": -1}, "temperature"), ({"temperature": "hot"}, "corrupt"),
                            ({"ngrams": values["ngrams"] | {"weight": 2}}, "weight")):
        (out / "classifier.json").write_text(json.dumps(values | broken))
        with pytest.raises(UserError, match=message):
            SentimentClassifier.load(out)


def test_calibrate_bad_flags(fitted, capsys):
    root, results = fitted
    common = ["calibrate", "-classifier", str(results), "-valid", str(root / "select.csv")]
    cases = [
        (common + ["-out", str(root / "o1"), "-ngrams"], "-ngrams fits the n-gram part on -train"),
        (common + ["-out", str(root / "o2"), "-train", str(root / "train.csv")], "-train is read only with -ngrams"),
        (common + ["-out", str(results)], "is not an empty directory"),
        (common + ["-out", str(root / "o3"), "-domain_key", "nope"], "'nope'"),
    ]
    for args, message in cases:
        assert cli.main(args) == 2
        assert message in capsys.readouterr().err
        assert not (root / "o3").exists() and not (root / "o1").exists()


def test_export_default_carries_the_temperature_and_the_ngram_part(fitted, tmp_path):
    from sentiment_discovery import defaults

    root, results = fitted
    classifier = SentimentClassifier.load(results)
    classifier.ngrams, classifier.ngram_weight, classifier.temperature = fitted_ngrams(), 0.3, 1.7
    blended = root / "blended"
    blended.mkdir()
    classifier.save(blended)
    installed = tmp_path / "installed"
    defaults.export_default_model(str(root / "model"), str(blended), str(installed))
    assert (installed / "classifier" / NGRAM_FILE).is_file()
    shipped = SentimentClassifier.load(installed / "classifier")
    assert shipped.temperature == 1.7 and shipped.ngram_weight == 0.3
    texts = ["great phone, love it", "awful battery, avoid"]
    np.testing.assert_array_equal(shipped.predict_proba(texts), SentimentClassifier.load(blended).predict_proba(texts))
