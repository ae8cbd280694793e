import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import labelled, make_model, write_csv
from sentiment_discovery import save_model
from sentiment_discovery.cli import main
from sentiment_discovery.features import featurize, pool_sequence, prefix_pooled
from sentiment_discovery.finetune import (
    ClassifierHead,
    SequenceClassifier,
    epoch_batches,
    fit_probe_head,
    keep_ends,
    parameter_groups,
    set_trainable,
    text_batch,
    unfrozen_depth,
)
from sentiment_discovery.recipes.finetune_outputs import head_probe
from sentiment_discovery.training import WarmupDecay as Schedule
from sentiment_discovery.transfer import SentimentClassifier

TEXTS = [b"\n a wonderful film ", b"\n dull ", b"\n I loved every minute of it ", b"\n meh, long "]


def test_keep_ends_keeps_the_beginning_and_the_end():
    assert keep_ends(b"0123456789", 0) == b"0123456789"
    assert keep_ends(b"0123456789", 10) == b"0123456789"
    assert keep_ends(b"0123456789", 5) == b"012" + b"89"
    # A cut inside a UTF-8 character drops the partial character instead of splitting it.
    text = "ab\u00e9cd\u00e9ef".encode()  # é is two bytes
    assert keep_ends(text, 6) == b"ab" + b"ef"
    assert keep_ends(text, 6).decode("utf-8")


@pytest.mark.parametrize("pooling", ["final", "mean", "max", "concat"])
def test_training_pooling_gives_the_features_classify_reads(pooling):
    model = make_model()
    tokens, reset, is_text = text_batch(TEXTS, torch.device("cpu"))
    with torch.no_grad():
        encoded = model.encode(tokens, reset=reset, return_cell_sequences=True)
        pooled = pool_sequence(encoded.cell_sequences[-1], is_text, pooling).numpy()
    features = featurize(model, TEXTS, batch_size=3, pooling=pooling)
    np.testing.assert_allclose(pooled, features, rtol=1e-5, atol=1e-6)
    # The prefix pooling's last row is the whole text's feature.
    with torch.no_grad():
        cells = model.encode(torch.tensor([list(TEXTS[2])]), return_cell_sequences=True).cell_sequences[-1][0]
    np.testing.assert_allclose(prefix_pooled(cells, pooling)[-1].numpy(), features[2], rtol=1e-5, atol=1e-6)
    prefix = featurize(model, [TEXTS[2][:7]], pooling=pooling)[0]
    np.testing.assert_allclose(prefix_pooled(cells, pooling)[6].numpy(), prefix, rtol=1e-5, atol=1e-6)


def test_head_from_a_probe_predicts_what_the_probe_does_at_step_0():
    from sklearn.linear_model import LogisticRegression

    model = make_model()
    rng = np.random.default_rng(0)
    texts = [bytes(rng.integers(32, 127, size=rng.integers(5, 30)).tolist()) for _ in range(40)]
    labels = np.array([i % 2 for i in range(40)])
    features = featurize(model, texts, pooling="mean")
    fit = fit_probe_head(features[:30], labels[:30], features[30:], labels[30:])
    reference = LogisticRegression(C=fit.C, max_iter=1000, random_state=0).fit((features[:30] - fit.mean) / fit.scale, labels[:30])
    expected = reference.predict_proba((features - fit.mean) / fit.scale)[:, 1]
    classifier = SequenceClassifier(model, 2, "mean").eval()
    classifier.head.load_probe(fit.coef, fit.intercept, fit.mean, fit.scale)
    with torch.no_grad():
        logits, _ = classifier(*text_batch(texts, torch.device("cpu")))
    np.testing.assert_allclose(torch.softmax(logits, dim=1)[:, 1].numpy(), expected, rtol=1e-4, atol=1e-5)
    # Saved for classify, the head is the same logistic regression.
    np.testing.assert_allclose(head_probe(classifier.head).predict_proba(features), expected, rtol=1e-4, atol=1e-5)


def test_a_multiclass_probe_loads_row_for_row():
    head = ClassifierHead(4, 3)
    coef, intercept = np.arange(12.0).reshape(3, 4), np.array([1.0, 2.0, 3.0])
    head.load_probe(coef, intercept, np.zeros(4), np.ones(4))
    assert torch.equal(head.linear.weight, torch.tensor(coef, dtype=torch.float32))
    assert torch.equal(head.linear.bias, torch.tensor(intercept, dtype=torch.float32))


def test_schedule_warms_up_then_decays():
    schedule = Schedule(total_steps=10, warmup=0.2, decay="linear")
    assert [schedule.factor(s) for s in range(4)] == [0.5, 1.0, 1.0, 0.875]
    assert schedule.factor(9) == pytest.approx(0.125)
    assert Schedule(10, 0.0, "cosine").factor(5) == pytest.approx(0.5)
    assert Schedule(10, 0.0, "constant").factor(9) == 1.0


def test_epoch_batches_cover_every_text_once_and_repeat_for_a_seed():
    lengths = list(range(1, 101))
    batches = epoch_batches(lengths, 8, seed=3, epoch=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    again = epoch_batches(lengths, 8, seed=3, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, epoch_batches(lengths, 8, seed=3, epoch=2)))


def test_parameter_groups_decay_per_layer_and_unfreeze_top_down():
    model = SequenceClassifier(make_model(layers=2), 2, "mean")
    groups = parameter_groups(model, head_lr=1.0, lm_lr=0.1, layer_decay=0.5)
    assert [(g.name, g.lr, g.depth) for g in groups] == [
        ("head", 1.0, 0), ("layer 1", 0.1, 1), ("layer 0", 0.05, 2), ("embedding", 0.025, 3)
    ]
    counted = sum(p.numel() for g in groups for p in g.parameters)
    assert counted == sum(p.numel() for p in model.parameters())
    set_trainable(groups, unfrozen_depth(step=3, unfreeze_steps=2))  # head and top layer
    assert [all(p.requires_grad for p in g.parameters) for g in groups] == [True, True, False, False]
    set_trainable(groups, unfrozen_depth(step=3, unfreeze_steps=0))
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- the command


@pytest.fixture
def data_files(tmp_path):
    save_model(make_model(), tmp_path / "tiny")
    return {
        "model": str(tmp_path / "tiny"),
        "train": str(write_csv(tmp_path / "train.csv", labelled(24))),
        "valid": str(write_csv(tmp_path / "dev.csv", labelled(8, 24))),
        "test": str(write_csv(tmp_path / "test.csv", labelled(8, 32))),
        "root": tmp_path,
    }


def finetune_args(files, name, *extra):
    return ["finetune", "-load_model", files["model"], "-train", files["train"], "-valid", files["valid"],
            "-test", files["test"], "-experiment_dir", str(files["root"] / "exp"), "-experiment_name", name,
            "-batch_size", "4", "-epochs", "2", "-eval_every", "0.5", "-precision", "fp32", *extra]


HARD = ("-dropout", "0.3", "-lm_loss_weight", "0.5", "-warmup", "0.2", "-decay", "linear",
        "-unfreeze_every", "0.5", "-patience", "0")


@pytest.mark.slow
def test_resume_after_a_stop_equals_an_uninterrupted_run(data_files, capsys):
    assert main(finetune_args(data_files, "whole", *HARD)) == 0
    assert main(finetune_args(data_files, "parts", *HARD, "-max_steps", "5")) == 0
    partial = data_files["root"] / "exp/parts/finetune"
    assert not (partial / "classifier.json").exists()
    assert main(finetune_args(data_files, "parts", *HARD, "--resume")) == 0
    whole = data_files["root"] / "exp/whole/finetune"
    assert (whole / "model/model.safetensors").read_bytes() == (partial / "model/model.safetensors").read_bytes()

    def history(run):  # every column but the wall time
        return [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]

    assert history(whole) == history(partial)
    assert json.loads((whole / "classifier.json").read_text()) == json.loads((partial / "classifier.json").read_text())


def test_outputs_load_in_classify_and_the_python_api(data_files, capsys):
    assert main(finetune_args(data_files, "run", "-pooling", "concat")) == 0
    out = capsys.readouterr().out
    assert "train/val/test accuracy w/ all_neurons" in out and "top sentiment neurons" in out
    run = data_files["root"] / "exp/run/finetune"
    results = json.loads((run / "results.json").read_text())
    assert results["kind"] == "finetuned" and results["model"]["pooling"] == "concat"
    assert {"train", "valid", "test"} <= set(results["finetuned_accuracy"])
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    classifier = SentimentClassifier.load(run)
    texts = ["I loved it", "boring and long"]
    probabilities = classifier.predict_proba(texts)[:, 1]
    trace = classifier.probability_trace(texts[0])
    assert trace.shape == (len(b"\n I loved it "),)
    assert trace[-1] == pytest.approx(probabilities[0], abs=1e-6)
    # The fine-tuned model with its head, run as in training, gives classify's probabilities.
    assert main(["classify", "-classifier", str(run), "--text", texts[0], "--text", texts[1]]) == 0
    printed = [float(line.split("\t")[0]) for line in capsys.readouterr().out.splitlines()]
    assert printed == pytest.approx(probabilities.tolist(), abs=1e-4)


def test_without_a_validation_file_it_is_held_out_of_train(data_files, capsys):
    args = finetune_args(data_files, "held", "-epochs", "0.5")
    at = args.index("-valid")
    del args[at:at + 2]
    assert main([*args, "-split", "1"]) == 2
    assert "no validation set" in capsys.readouterr().err
    assert main([*args, "-split", "0.75"]) == 0
    results = json.loads((data_files["root"] / "exp/held/finetune/results.json").read_text())
    assert results["texts"] == {"train": 18, "valid": 6, "test": 8}


def test_errors_are_one_line(data_files, capsys):
    assert main(finetune_args(data_files, "none", "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(finetune_args(data_files, "bad", "-warmup", "1.5")) == 2
    assert "-warmup" in capsys.readouterr().err
    assert main(finetune_args(data_files, "once", "-max_steps", "1")) == 0
    assert main(finetune_args(data_files, "once")) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(finetune_args(data_files, "once", "-lr", "0.5", "--resume")) == 2
    assert "-lr 0.0001 -> 0.5" in capsys.readouterr().err


def test_probability_trace_of_the_frozen_feature_classifier(tmp_path):
    from sentiment_discovery.transfer import LinearProbe, ModelIdentity

    model = make_model()
    save_model(model, tmp_path / "tiny")
    for pooling in ("final", "mean"):
        identity = ModelIdentity.of(model, tmp_path / "tiny", pooling=pooling)
        rng = np.random.default_rng(1)
        probe = LinearProbe(coef=rng.normal(size=16), intercept=0.1, C=1.0)
        classifier = SentimentClassifier(probe, probe, [0], [1], identity)
        text = "A gorgeous, moving film."
        trace = classifier.probability_trace(text)
        assert trace[-1] == pytest.approx(classifier.predict_proba([text])[0, 1], abs=1e-6)
        data = b"\n " + text.encode() + b" "
        assert trace[10] == pytest.approx(probe.predict_proba(featurize(model, [data[:11]], pooling=pooling))[0], abs=1e-6)


def test_visualize_draws_the_sentiment_trace_of_a_finetuned_classifier(data_files, capsys):
    from matplotlib.image import imread

    from sentiment_discovery.visualize import HeatmapGeometry, TRACE_STRIP_HEIGHT, probability_colours

    assert main(finetune_args(data_files, "run", "-epochs", "0.5")) == 0
    run = data_files["root"] / "exp/run/finetune"
    heatmaps = data_files["root"] / "exp/mlstm/heatmaps"
    for given in (run, run / "model"):
        assert main(["visualize", "-load_model", str(given), "-text", "I loved it", "-experiment_dir",
                     str(data_files["root"] / "exp")]) == 0
    page = (heatmaps / "I loved it.html").read_text()
    assert page.count("P(positive) so far") == len("\n I loved it ")
    trace = SentimentClassifier.load(run).probability_trace("I loved it")
    assert f"P(positive) so far {trace[-1]:.3f}" in page
    image = np.round(imread(heatmaps / "I loved it.png")[:, :, :3] * 255).astype(int)
    geometry = HeatmapGeometry(strip_height=TRACE_STRIP_HEIGHT)
    positions = geometry.layout(list("\n I loved it "))  # the newline ends the first row
    for index in (0, 5, 11):
        left, top, _, _ = geometry.strip_box(*positions[index])
        expected = probability_colours(trace[index : index + 1])[0].astype(int)
        assert np.abs(image[top + 2, left + 2] - expected).max() <= 1


def test_domain_key_keeps_the_weights_with_the_best_mean_over_domains(data_files, capsys):
    from sentiment_discovery.transfer import domain_accuracies

    # Two domains of unequal size: the score is the mean of their accuracies, not the accuracy of all texts.
    assert domain_accuracies([True, True, True, False, False, True], ["a", "a", "a", "a", "b", "b"]) == {"a": 0.75, "b": 0.5}
    rows = [(label, text, "films" if i < 6 else "phones") for i, (label, text) in enumerate(labelled(8, 24))]
    files = dict(data_files, valid=str(write_csv(data_files["root"] / "domains.csv", rows,
                                                  header=("label", "sentence", "domain"))))
    assert main(finetune_args(files, "domains", "-domain_key", "domain")) == 0
    run = data_files["root"] / "exp/domains/finetune"
    results = json.loads((run / "results.json").read_text())
    by_domain = results["valid_accuracy_by_domain"]
    assert set(by_domain) == {"films", "phones"}
    assert results["valid_mean_domain_accuracy"] == pytest.approx((by_domain["films"] + by_domain["phones"]) / 2)
    with open(run / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    for row in (r for r in history if r["split"] == "valid"):
        parts = [float(r["accuracy"]) for r in history if r["step"] == row["step"] and r["split"].startswith("valid:")]
        assert len(parts) == 2 and float(row["accuracy"]) == pytest.approx(sum(parts) / 2)
    kept = max((r for r in history if r["split"] == "valid"), key=lambda r: float(r["accuracy"]))
    assert results["best_step"] == int(kept["step"])
    # The column must exist in -valid, and -valid must be given.
    assert main(finetune_args(data_files, "nodomain", "-domain_key", "domain")) == 2
    assert "no column 'domain'" in capsys.readouterr().err


def test_a_checkpoint_of_the_earlier_format_is_refused_in_one_line(data_files, capsys):
    assert main(finetune_args(data_files, "old", "-max_steps", "1")) == 0
    checkpoint = data_files["root"] / "exp/old/finetune/checkpoint"
    (checkpoint / "training_state.json").unlink()
    (checkpoint / "state.json").write_text(json.dumps({"format": "sentiment-discovery-finetune-state", "format_version": 1}))
    capsys.readouterr()
    assert main(finetune_args(data_files, "old")) == 2
    assert "already holds a fine-tuning run; pass --resume" in capsys.readouterr().err
    assert main(finetune_args(data_files, "old", "--resume")) == 2
    assert capsys.readouterr().err == (f"error: {checkpoint} was written by an earlier version of finetune, whose "
                                       "checkpoints this one cannot continue; start afresh with another "
                                       "-experiment_name\n")
