import json

import numpy as np
import pytest

from sentiment_discovery import ByteLM, UserError, cli, cross_validation, save_model
from sentiment_discovery.cross_validation import assign_folds, cross_validate, fold_parts, summarize
from sentiment_discovery.transfer import ModelIdentity

from conftest import labelled, make_model, write_csv

IDENTITY = ModelIdentity(
    name="m", path="/nowhere/m", weights_sha256="0" * 64, rnn_size=12, layer=0, preprocess=True, text_options={}
)


def toy_texts(positives: int, negatives: int, repeated: int = 0):
    """Unique texts, plus ``repeated`` texts that each occur three times (with the same label)."""
    texts = [f"pos {i}" for i in range(positives)] + [f"neg {i}" for i in range(negatives)]
    labels = [1] * positives + [0] * negatives
    for i in range(repeated):
        texts += [f"again {i}"] * 3
        labels += [i % 2] * 3
    return texts, np.array(labels)


def test_folds_are_reproducible_stratified_and_keep_equal_texts_together():
    texts, labels = toy_texts(70, 130, repeated=10)
    assignment = assign_folds(texts, labels, 10, seed=7)
    assert np.array_equal(assignment, assign_folds(texts, labels, 10, seed=7))
    assert not np.array_equal(assignment, assign_folds(texts, labels, 10, seed=8))
    assert sorted(set(assignment.tolist())) == list(range(10))
    positives = np.bincount(assignment[labels == 1], minlength=10)
    negatives = np.bincount(assignment[labels == 0], minlength=10)
    # 85 positive and 145 negative rows (the repeats in groups of 3): about 8.5 and 14.5 per fold.
    assert positives.min() >= 6 and positives.max() <= 11
    assert negatives.min() >= 12 and negatives.max() <= 17
    for text in {t for t in texts if t.startswith("again")}:
        folds = {int(assignment[i]) for i, t in enumerate(texts) if t == text}
        assert len(folds) == 1, f"{text!r} is in folds {folds}"


def test_fold_parts_partition_the_rows_with_no_text_in_two_parts():
    texts, labels = toy_texts(30, 30, repeated=6)
    assignment = assign_folds(texts, labels, 5, seed=0)
    tested = []
    for fold in range(5):
        parts = fold_parts(assignment, fold)
        assert np.array_equal(parts["test"], np.flatnonzero(assignment == fold))
        assert np.array_equal(parts["valid"], np.flatnonzero(assignment == (fold + 1) % 5))
        assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(len(texts)))
        seen = [{texts[i] for i in rows} for rows in parts.values()]
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
        tested += parts["test"].tolist()
    assert sorted(tested) == list(range(len(texts)))  # every row is tested exactly once


def test_more_folds_than_a_class_has_texts_is_an_error():
    texts, labels = toy_texts(4, 20, repeated=0)
    texts += ["pos 0"] * 2  # repeats do not count: a class needs K distinct texts
    labels = np.concatenate([labels, [1, 1]])
    with pytest.raises(UserError) as error:
        assign_folds(texts, labels, 5, seed=0)
    assert str(error.value) == (
        "-cv 5 needs at least 5 distinct texts of each label, but label 1 has 4; pass a smaller -cv"
    )
    assert assign_folds(texts, labels, 4, seed=0).max() == 3
    with pytest.raises(UserError, match=r"-cv needs at least 3 folds .* not 2"):
        assign_folds(texts, labels, 2, seed=0)


def planted(n: int, unit: int = 5, width: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], n // 2)
    features = rng.standard_normal((n, width)).astype(np.float32)
    features[:, unit] += 1.5 * (2 * labels - 1)
    return features, labels


def test_C_is_chosen_without_looking_at_the_test_fold():
    features, labels = planted(300)
    assignment = assign_folds([str(i) for i in range(300)], labels, 5, seed=3)
    grid = [0.001, 0.05, 1.0]
    first = cross_validate(features, labels, assignment, IDENTITY, c_grid=grid, progress=False)
    # Scramble fold 0's test rows (features and labels): fold 0's fit must not change, its test score must.
    test_rows = fold_parts(assignment, 0)["test"]
    scrambled_features, scrambled_labels = features.copy(), labels.copy()
    scrambled_features[test_rows] = np.random.default_rng(9).standard_normal((len(test_rows), 12))
    scrambled_labels[test_rows] = 1 - labels[test_rows]
    second = cross_validate(scrambled_features, scrambled_labels, assignment, IDENTITY, c_grid=grid, progress=False)
    before, after = first[0].fit, second[0].fit
    assert before.all_neurons.valid_accuracy == after.all_neurons.valid_accuracy
    assert before.all_neurons.C == after.all_neurons.C
    np.testing.assert_array_equal(before.classifier.all_neurons.coef, after.classifier.all_neurons.coef)
    assert first[0].all_neurons[2] > 0.7 > second[0].all_neurons[2]


def test_summary_means_spreads_and_unit_stability():
    features, labels = planted(400, unit=5)
    assignment = assign_folds([str(i) for i in range(400)], labels, 4, seed=1)
    results = cross_validate(features, labels, assignment, IDENTITY, c_grid=[0.01, 0.1, 1.0], progress=False)
    summary = summarize(results)
    tests = [result.all_neurons[2] for result in results]
    assert summary["all_neurons"]["test_accuracy"]["mean"] == pytest.approx(np.mean(tests))
    assert summary["all_neurons"]["test_accuracy"]["std"] == pytest.approx(np.std(tests, ddof=1))
    assert summary["all_neurons"]["C_per_fold"] == [result.fit.all_neurons.C for result in results]
    stability = summary["unit_stability"]
    assert stability["top_unit_per_fold"] == [5, 5, 5, 5]
    assert stability["units"][0] == {"unit": 5, "top_1_folds": 4, "top_5_folds": 4, "signs": [1]}
    single = summary["single_unit_threshold_0"][0]
    assert single["unit"] == 5 and single["signs_per_fold"] == [1, 1, 1, 1]
    lines = cross_validation.result_lines(results, summary)
    assert lines[3].startswith("neuron(s) 5, ")
    assert lines[0] == "/".join(
        f"{100 * summary['all_neurons'][f'{split}_accuracy']['mean']:05.2f}" for split in ("train", "valid", "test")
    ) + " train/val/test accuracy w/ all_neurons"


@pytest.fixture
def one_file(tmp_path):
    save_model(make_model(0), tmp_path / "exp" / "mlstm" / "model" / "e0")
    data = tmp_path / "toy"
    data.mkdir()
    return write_csv(data / "all.csv", labelled(60))


def cv_args(root, data, *extra):
    return ["transfer", "-experiment_dir", str(root / "exp"), "-load_model", "e0", "-train", str(data),
            "-c_grid", "0.5", "8", "-cv", "4", *extra]


def test_transfer_cv_on_one_file_with_pooling_precision_and_the_cache(tmp_path, one_file, capsys, monkeypatch):
    assert cli.main(cv_args(tmp_path, one_file, "-pooling", "mean", "-precision", "bf16")) == 0
    lines = capsys.readouterr().out.splitlines()
    results_dir = tmp_path / "exp" / "mlstm" / "toy" / "e0"
    results = json.loads((results_dir / "results.json").read_text())
    assert sorted(p.name for p in results_dir.iterdir()) == ["results.json"]  # no classifier of one fold
    assert results["seed_output"] == lines
    assert results["model"]["pooling"] == "mean" and results["model"]["precision"] == "bf16"
    assert results["protocol"]["cross_validation_folds"] == 4 and len(results["folds"]) == 4
    folds = results["folds"]
    assert sum(fold["texts"]["test"] for fold in folds) == 60
    mean_test = np.mean([fold["all_neurons"]["test_accuracy"] for fold in folds])
    assert lines[0].endswith(f"/{100 * mean_test:05.2f} train/val/test accuracy w/ all_neurons")
    assert results["summary"]["all_neurons"]["C_per_fold"] == [fold["all_neurons"]["C"] for fold in folds]
    assert lines[-3].startswith("4-fold cross-validation, all_neurons: test accuracy ")
    assert results["fold_of_text"] == assign_folds([t for _, t in labelled(60)], np.array([l for l, _ in labelled(60)]),
                                                   4, 1234).tolist()

    def fail(*args, **kwargs):
        raise AssertionError("featurized although the features are cached")

    monkeypatch.setattr(ByteLM, "featurize", fail)
    assert cli.main(cv_args(tmp_path, one_file, "-pooling", "mean", "-precision", "bf16")) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_transfer_cv_errors(tmp_path, one_file, capsys):
    def error(args):
        assert cli.main(args) == 2
        return capsys.readouterr().err.strip()

    assert error(cv_args(tmp_path, one_file, "-valid", str(one_file))) == (
        "error: -cv cross-validates the -train file alone and fits one classifier per fold: drop -valid "
        "(join the files into one to cross-validate them all)"
    )
    assert error(cv_args(tmp_path, one_file)[:-2] + ["-cv", "31"]) == (
        "error: -cv 31 needs at least 31 distinct texts of each label, but label 0 has 30; pass a smaller -cv"
    )
    assert error(cv_args(tmp_path, one_file)[:-2] + ["-cv", "-1"]).startswith("error: -cv must be a number of folds")
