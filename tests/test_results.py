"""results.json as dataclasses (transfer.results, cross_validation) and the one formatter of the 2017 lines."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import labelled, make_model, write_csv
from sentiment_discovery import cli, cross_validation, save_model
from sentiment_discovery.foundation import storage
from sentiment_discovery.transfer import (
    ClassifierScores,
    FinetuneResults,
    LinearProbe,
    TransferResults,
    UnitScores,
    seed_output,
    seed_result_lines,
)
from test_transfer import IDENTITY, make_experiment, transfer_args


def test_seed_output_is_the_2017_format_line_for_line():
    full = LinearProbe(coef=np.r_[np.ones(107), np.zeros(4096 - 107)], intercept=0.0, C=0.125)
    top = LinearProbe(coef=np.array([2.5]), intercept=0.1, C=0.5, units=np.array([1285]))
    units = [UnitScores(1285, -1, [0.8636, 0.8544, None]), UnitScores(1503, 1, [0.5, 0.25, 0.75])]
    lines = seed_output(ClassifierScores.of(full, [0.92114, 0.90022, 0.91268]), ClassifierScores.of(top, [0.8636, 0.8544, 0.8671]),
                        [1285, 1503, 3986, 1228, 2301], units)
    assert lines == [
        "92.11/90.02/91.27 train/val/test accuracy w/ all_neurons",
        "00.12 regularization coef w/ all_neurons",
        "00107 features used w/ all neurons all_neurons",
        "neuron(s) 1285, 1503, 3986, 1228, 2301 are top sentiment neurons",
        "86.36/85.44/86.71 train/val/test accuracy w/ n_neurons",
        "00.50 regularization coef w/ n_neurons",
        "00001 features used w/ all neurons n_neurons",
        "86.36/85.44/--.-- train/val/test accuracy w/ neuron 1285 < 0",
        "50.00/25.00/75.00 train/val/test accuracy w/ neuron 1503 > 0",
    ]
    # Scores given as numbers (the means over -cv folds) print as a probe's do.
    assert seed_output(ClassifierScores([0.92114, 0.90022, 0.91268], 0.125, 107), ClassifierScores.of(top, [0.8636, 0.8544, 0.8671]),
                       [1285, 1503, 3986, 1228, 2301], units) == lines
    assert seed_result_lines("all_neurons", [1.0, None, 0.5], ClassifierScores([0.0] * 3, 5.5, 3)) == [
        "100.00/--.--/50.00 train/val/test accuracy w/ all_neurons",
        "05.50 regularization coef w/ all_neurons",
        "00003 features used w/ all neurons all_neurons",
    ]
    assert UnitScores(7, -1, [0.5, None, 1.0]).to_dict() == {"unit": 7, "sign": -1, "train": 0.5, "valid": None, "test": 1.0}


def assert_is_the_dataclass(path, results_class):
    """The file read back as its dataclass gives the same dict, in the same key order, and the same text."""
    text = path.read_text(encoding="utf-8")
    saved = json.loads(text)
    results = results_class.from_dict(saved)
    assert list(results.to_dict()) == list(saved)
    assert results.to_dict() == saved
    assert storage.json_text(results.to_dict()) == text
    return results


def test_transfer_results_json_is_transfer_results(tmp_path, capsys):
    root = make_experiment(tmp_path)
    assert cli.main(transfer_args(root, "-data_efficiency_seeds", "1")) == 0
    printed = capsys.readouterr().out.splitlines()
    results = assert_is_the_dataclass(root / "exp" / "mlstm" / "toy" / "e0" / "results.json", TransferResults)
    assert results.seed_output == printed
    assert results.model.rnn_size == 16 and results.files_resolved["train"] == str((root / "toy" / "train.csv").resolve())
    # The keys of -multiclass runs only are left out without it, and come last with it.
    assert "classes" not in results.to_dict() and "per_class" not in results.to_dict()
    multiclass = dataclasses.replace(results, classes=[1, 3], per_class={"evaluated_on": "test"})
    assert list(multiclass.to_dict())[-2:] == ["classes", "per_class"]
    # data_efficiency is written as null when there is none, not left out.
    assert dataclasses.replace(results, data_efficiency=None).to_dict()["data_efficiency"] is None


def test_cross_validation_results_json_is_cross_validation_results(tmp_path, capsys):
    save_model(make_model(0), tmp_path / "exp" / "mlstm" / "model" / "e0")
    (tmp_path / "toy").mkdir()
    data = write_csv(tmp_path / "toy" / "all.csv", labelled(60))
    assert cli.main(["transfer", "-experiment_dir", str(tmp_path / "exp"), "-load_model", "e0", "-train", str(data),
                     "-c_grid", "0.5", "8", "-cv", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    results = assert_is_the_dataclass(tmp_path / "exp" / "mlstm" / "toy" / "e0" / "results.json",
                                      cross_validation.CrossValidationResults)
    assert results.seed_output == printed and len(results.folds) == 3
    # The first lines are the 2017 ones, each number the mean over the folds.
    summary = results.summary

    def means(name):
        entry = summary[name]
        return ClassifierScores([entry[f"{s}_accuracy"]["mean"] for s in ("train", "valid", "test")],
                                float(np.mean(entry["C_per_fold"])), round(entry["features_used"]["mean"]))

    units = [UnitScores(u["unit"], 1 if sum(u["signs_per_fold"]) >= 0 else -1,
                        [u[f"{s}_accuracy"]["mean"] for s in ("train", "valid", "test")])
             for u in summary["single_unit_threshold_0"]]
    top_units = [u["unit"] for u in summary["unit_stability"]["units"][:5]]
    expected = seed_output(means("all_neurons"), means("n_neurons"), top_units, units)
    assert printed[: len(expected)] == expected
    assert printed[len(expected)].startswith("3-fold cross-validation, all_neurons: test accuracy ")


def test_finetune_results_json_is_finetune_results(tmp_path, capsys):
    save_model(make_model(), tmp_path / "tiny")
    files = {name: write_csv(tmp_path / f"{name}.csv", rows) for name, rows in
             (("train", labelled(16)), ("dev", labelled(8, 16)), ("test", labelled(8, 24)))}
    assert cli.main(["finetune", "-load_model", str(tmp_path / "tiny"), "-train", str(files["train"]),
                     "-valid", str(files["dev"]), "-test", str(files["test"]), "-experiment_dir", str(tmp_path / "exp"),
                     "-experiment_name", "run", "-batch_size", "4", "-epochs", "1", "-eval_every", "0.5",
                     "-precision", "fp32"]) == 0
    printed = capsys.readouterr().out.splitlines()
    results = assert_is_the_dataclass(tmp_path / "exp" / "run" / "finetune" / "results.json", FinetuneResults)
    assert results.kind == "finetuned" and results.model.path == "model"
    assert results.seed_output == printed[-7:] and printed[-7].endswith(" train/val/test accuracy w/ all_neurons")
    assert "valid_accuracy_by_domain" not in results.to_dict() and "classes" not in results.to_dict()


def test_from_dict_refuses_a_key_the_dataclass_lacks():
    with pytest.raises(TypeError, match="unexpected keyword argument 'extra'"):
        TransferResults.from_dict({"model": IDENTITY.to_dict(), "extra": 1})
