"""`-precision auto`: the choice made for the hardware, its notice and warnings (the capability check stubbed both ways)."""

import json
import time

import pytest
import torch

from sentiment_discovery import UserError, cli, precision, training
from sentiment_discovery.recipes import train

from conftest import labelled, make_model, write_csv
from test_train import make_config

CPU = torch.device("cpu")


@pytest.fixture
def undecided(monkeypatch):
    """No decision made yet in this process (conftest pins one for the other tests)."""
    monkeypatch.setattr(precision, "_auto_choices", {})


def stub_cpu(monkeypatch, *, native: bool, seconds: dict[str, float]) -> list[str]:
    """The CPU reports native bf16 or not; the probe product takes ``seconds[precision]``; returns the probes run."""
    probes = []
    monkeypatch.setattr(precision, "native_support", lambda name, device: native)

    def product_seconds(name, device):
        probes.append(name)
        return seconds[name]

    monkeypatch.setattr(precision, "product_seconds", product_seconds)
    return probes


def test_auto_picks_bf16_where_native_and_faster_once_per_process(undecided, monkeypatch, capsys):
    probes = stub_cpu(monkeypatch, native=True, seconds={"fp32": 4e-4, "bf16": 1e-4})
    assert precision.resolve_precision("auto", CPU) == "bf16"
    assert capsys.readouterr().err == (
        "notice: -precision auto: bf16 products on cpu (native on this CPU: a bf16 product ran 4.0x faster than fp32)\n"
    )
    assert sorted(probes) == ["bf16", "fp32"]
    # Decided once: no second probe, no second notice.
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert capsys.readouterr().err == "" and len(probes) == 2


def test_auto_picks_fp32_without_native_bf16_and_never_runs_the_slow_product(undecided, monkeypatch, capsys):
    probes = stub_cpu(monkeypatch, native=False, seconds={"fp32": 4e-4, "bf16": 2e-2})
    assert precision.resolve_precision("auto", CPU) == "fp32"
    err = capsys.readouterr().err
    assert err.startswith("notice: -precision auto: fp32 products on cpu (this CPU has no native bf16")
    assert err.count("\n") == 1 and probes == []


def test_auto_picks_fp32_where_native_bf16_is_measured_slower(undecided, monkeypatch, capsys):
    stub_cpu(monkeypatch, native=True, seconds={"fp32": 1e-4, "bf16": 3e-4})
    assert precision.resolve_precision("auto", CPU) == "fp32"
    assert "a bf16 product ran 3.0x slower than fp32" in capsys.readouterr().err


def test_the_real_decision_is_quick_and_follows_onednn(undecided, capsys):
    started = time.perf_counter()
    chosen = precision.resolve_precision("auto", CPU)
    assert time.perf_counter() - started < 0.5
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert chosen == "fp32"
    assert chosen in ("fp32", "bf16") and capsys.readouterr().err.startswith(f"notice: -precision auto: {chosen} ")


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_explicit_low_precision_without_hardware_warns_once_with_the_slowdown_and_runs(monkeypatch, capsys, name):
    stub_cpu(monkeypatch, native=False, seconds={"fp32": 4e-4, name: 2e-2})
    assert precision.resolve_precision(name, CPU) == name
    assert capsys.readouterr().err == (
        f"warning: this CPU has no native {name}: a {name} product ran 50x slower than fp32 here; "
        "use -precision auto (or fp32) to avoid it\n"
    )
    assert precision.resolve_precision(name, CPU) == name
    assert capsys.readouterr().err == ""


def test_explicit_bf16_with_hardware_runs_without_a_word(monkeypatch, capsys):
    stub_cpu(monkeypatch, native=True, seconds={})
    assert precision.resolve_precision("bf16", CPU) == "bf16"
    assert precision.resolve_precision("fp32", CPU) == "fp32"
    assert capsys.readouterr().err == ""


def test_an_unknown_precision_is_a_one_line_error():
    with pytest.raises(UserError, match="^-precision must be one of auto, fp32, bf16, fp16, not 'fp8'$"):
        precision.resolve_precision("fp8", CPU)


def test_products_autocast_runs_the_products_in_the_resolved_precision(monkeypatch):
    weight = torch.randn(8, 8)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("auto", torch.float32)):
        with precision.products_autocast(name, CPU):
            assert (torch.randn(2, 8) @ weight).dtype == dtype
    monkeypatch.setattr(precision, "_auto_choices", {"cpu": "bf16"})
    with precision.products_autocast("auto", CPU):
        assert (torch.randn(2, 8) @ weight).dtype == torch.bfloat16


def test_featurize_follows_auto(monkeypatch):
    model = make_model()
    texts = ["a fine film", "dull, dull and far too long"]
    fp32 = model.featurize(texts, precision="fp32")
    assert (model.featurize(texts) == fp32).all()  # auto is fp32 here (conftest)
    monkeypatch.setattr(precision, "_auto_choices", {"cpu": "bf16"})
    assert (model.featurize(texts) == model.featurize(texts, precision="bf16")).all()


def test_transfer_prints_the_notice_once_and_records_the_choice(undecided, monkeypatch, tmp_path, capsys):
    stub_cpu(monkeypatch, native=False, seconds={})
    model = make_model()
    from sentiment_discovery import save_model

    save_model(model, tmp_path / "model")
    data = tmp_path / "toy"
    data.mkdir()
    for name, count in (("train", 24), ("dev", 8), ("test", 8)):
        write_csv(data / f"{name}.csv", labelled(count, offset=len(name)))
    args = ["transfer", "-load_model", str(tmp_path / "model"), "-train", str(data / "train.csv"),
            "-valid", str(data / "dev.csv"), "-test", str(data / "test.csv"), "-experiment_dir", str(tmp_path / "exp"),
            "-no_data_efficiency", "-c_grid", "1"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert err.count("notice: -precision auto:") == 1  # three splits featurized, one notice
    results = json.loads((tmp_path / "exp" / "mlstm" / "toy" / "model" / "results.json").read_text())
    assert results["model"]["precision"] == "fp32" and results["command_config"]["precision"] == "auto"


def test_training_records_the_resolved_precision(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "_auto_choices", {"cpu": "bf16"})
    config = make_config(tmp_path, max_iters=2, save_iters=0)
    assert config.precision == "auto"
    assert train.run(config) == 0
    run = training.read_state_json(config.model_path / "iter2")["run"]
    assert run["flags"]["precision"] == "auto" and run["precision"] == "bf16"
    assert training.Precision("auto", "cpu").name == "bf16"


def read_sst2(path, count: int) -> tuple[list[str], "np.ndarray"]:
    import csv

    import numpy as np

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:count]
    return [row["sentence"] for row in rows], np.array([int(row["label"]) for row in rows])


def test_fp32_and_bf16_features_give_the_same_labels_on_real_sentences(shared_data):
    """docs/transfer.md measures the shipped classifier; here a small model (seconds even
    where bf16 is emulated): a classifier fitted on fp32 features labels 300 SST-2 test
    sentences from bf16 features as it does from fp32 ones, at least 99 % of the time."""
    import numpy as np

    from sentiment_discovery import transfer

    model = make_model(rnn_size=64, embed_size=16)
    train_texts, train_labels = read_sst2(shared_data / "sst2" / "train.csv", 400)
    test_texts, test_labels = read_sst2(shared_data / "sst2" / "test.csv", 300)
    train_features = model.featurize(train_texts, precision="fp32", pooling="mean")
    fp32 = model.featurize(test_texts, precision="fp32", pooling="mean")
    bf16 = model.featurize(test_texts, precision="bf16", pooling="mean")
    assert not np.array_equal(fp32, bf16)  # the products really ran in bf16
    probe = transfer.sweep_regularization(
        train_features, train_labels, fp32, test_labels, c_grid=[1.0], seed=0, jobs=1, progress=False
    ).probe
    assert probe.features_used >= 5
    labels_fp32, labels_bf16 = probe.predict(fp32), probe.predict(bf16)
    assert 0.15 < labels_fp32.mean() < 0.85  # both labels given: agreement is not a constant's
    assert np.mean(labels_fp32 == labels_bf16) >= 0.99
    assert np.abs(probe.predict_proba(fp32) - probe.predict_proba(bf16)).max() < 0.05


def test_visualize_runs_its_products_in_the_asked_precision():
    from sentiment_discovery import visualize

    model = make_model(rnn_size=32, weight_norm=True)
    text = "a fine film, though far too long"
    exact = visualize.unit_values(model, text, 3)
    assert (visualize.unit_values(model, text, 3).values == exact.values).all()  # auto: fp32 here (conftest)
    approximate = visualize.unit_values(model, text, 3, precision="bf16")
    assert approximate.values.dtype == exact.values.dtype and not (approximate.values == exact.values).all()
    assert abs(approximate.values - exact.values).max() < 0.05
    steered = [visualize.generate(model, "a fine", 3, 20, overwrite=1.0, precision=name) for name in ("fp32", "bf16")]
    for trace in steered:
        assert len(trace.values) == len(trace.data) and (trace.values[-20:] == 1.0).all()  # held in both
    prompt = steered[0].prompt_length - 1  # the prompt's values, before the unit is held
    assert abs(steered[1].values[:prompt] - steered[0].values[:prompt]).max() < 0.05
