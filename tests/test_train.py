import csv
import dataclasses
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sentiment_discovery import cli, load_model, training
from sentiment_discovery.foundation import log
from sentiment_discovery.data.batching import TransposedBatcher
from sentiment_discovery.data.corpus import ByteCorpus
from sentiment_discovery.foundation.errors import UserError
from sentiment_discovery.model import ByteLM, ModelConfig
from sentiment_discovery.foundation.options import config_from_args
from sentiment_discovery.recipes import train

# A small, very regular corpus: a model of 32 units learns most of it in a few dozen updates.
SENTENCES = ["the cat sat on the mat.", "a dog ran in the park.", "the bird sang a song."]


def write_corpus(path: Path, lines: int = 36) -> Path:
    path.write_text("\n".join(SENTENCES[i % len(SENTENCES)] for i in range(lines)) + "\n")
    return path


def make_config(tmp_path: Path, name: str = "run", **overrides) -> train.TrainConfig:
    corpus = tmp_path / "reviews.txt"
    if not corpus.exists():
        write_corpus(corpus)
    values = dict(
        train=str(corpus),
        experiment_dir=str(tmp_path / "experiments"),
        experiment_name=name,
        rnn_size=32,
        embed_size=8,
        batch_size=4,
        seq_length=16,
        lr=0.01,
        log_iters=1,
        verbose=0,
    )
    values.update(overrides)
    return train.TrainConfig(**values)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_model(directory).state_dict()


EPOCHS = 8


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Eight epochs on the tiny corpus, a checkpoint every 25 iterations (all kept)."""
    tmp_path = tmp_path_factory.mktemp("finished")
    config = make_config(tmp_path, epochs=EPOCHS, lr=0.03, save_iters=25, keep_iters=0, log_iters=5)
    assert train.run(config) == 0
    return config


def test_small_model_overfits_tiny_corpus(finished_run):
    rows = read_csv(finished_run.experiment_path / "history" / "train.csv")
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert first > 3.0  # about ln(256) = 5.5 nats at the start
    assert last < 0.6, f"training loss only fell to {last:.3f} nats per byte"
    valid = [row for row in read_csv(finished_run.experiment_path / "history" / "eval.csv") if row["split"] == "valid"]
    assert float(valid[-1]["bits_per_byte"]) < float(valid[0]["bits_per_byte"]) - 2.0


def test_history_files_and_loss_plot(finished_run):
    history = finished_run.experiment_path / "history"
    with open(history / "train.csv") as handle:
        assert handle.readline().strip().split(",") == list(training.TRAIN_COLUMNS)
    with open(history / "eval.csv") as handle:
        assert handle.readline().strip().split(",") == list(training.EVAL_COLUMNS)
    rows = read_csv(history / "train.csv")
    per_epoch = train_batches_per_epoch(finished_run)
    total = EPOCHS * per_epoch
    # A row every 5 iterations and one at each checkpoint (epoch ends and every 25), the last at the end.
    expected = sorted({*range(5, total + 1, 5), *range(25, total + 1, 25), *range(per_epoch, total + 1, per_epoch)})
    assert [int(row["iteration"]) for row in rows] == expected
    for row in rows:
        assert math.isclose(float(row["bits_per_byte"]), float(row["loss"]) / math.log(2), rel_tol=1e-9)
        assert float(row["chars_per_s"]) > 0 and int(row["skipped_updates"]) == 0
    evals = read_csv(history / "eval.csv")
    assert [row["split"] for row in evals].count("test") == 1 and evals[-1]["split"] == "test"
    assert int(evals[-1]["iteration"]) == total
    png = finished_run.experiment_path / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def train_batches_per_epoch(config) -> int:
    corpus_dir = next((Path(config.experiment_dir) / "corpora").iterdir())
    corpus = ByteCorpus.open(corpus_dir, "train")
    return TransposedBatcher(corpus, config.batch_size, config.seq_length).batches_per_epoch


def test_checkpoint_layout(finished_run):
    model_path = finished_run.model_path
    per_epoch = train_batches_per_epoch(finished_run)
    names = sorted(p.name for p in model_path.iterdir())
    iteration_names = [f"iter{n}" for n in range(25, EPOCHS * per_epoch, 25) if n % per_epoch]
    assert names == sorted([*(f"e{n}" for n in range(EPOCHS)), *iteration_names])
    info = training.read_state_json(model_path / "e0")
    assert info["iteration"] == per_epoch and info["epoch"] == 0
    assert info["data_position"]["step"] == per_epoch
    last = model_path / f"e{EPOCHS - 1}"
    model = load_model(last)
    assert model.config == ModelConfig(rnn_size=32, embed_size=8)
    assert model.metadata["training"]["iterations"] == EPOCHS * per_epoch
    # The seed's `-load_model e0.pt` finds the epoch checkpoint.
    from sentiment_discovery.recipes.common import resolve_load_model

    assert resolve_load_model("e0.pt", finished_run) == model_path / "e0"
    # The training state loads without unpickling anything but tensors and containers.
    tensors = torch.load(last / training.STATE_TENSORS, weights_only=True)
    assert set(tensors) == {"optimizer", "scaler", "carried_state", "rng"}
    assert tensors["carried_state"]["cell"][0].shape == (4, 32)


def test_resume_is_bit_identical(tmp_path):
    # 8 updates straight (a checkpoint at 4), against: the same run resumed from that checkpoint.
    config = make_config(tmp_path, max_iters=8, save_iters=4, keep_iters=0, dropout=0.2, shuffle=True)
    assert train.run(config) == 0
    straight = config.experiment_path
    resumed = straight.with_name("resumed")
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "model" / "iter8")
    resumed_config = dataclasses.replace(config, experiment_name="resumed", resume=True)
    assert train.run(resumed_config) == 0
    a = (straight / "model" / "iter8" / "model.safetensors").read_bytes()
    b = (resumed / "model" / "iter8" / "model.safetensors").read_bytes()
    assert a == b
    a_state = torch.load(straight / "model" / "iter8" / training.STATE_TENSORS, weights_only=True)
    b_state = torch.load(resumed / "model" / "iter8" / training.STATE_TENSORS, weights_only=True)
    for key, value in a_state["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg_sq"], b_state["optimizer"]["state"][key]["exp_avg_sq"])
    deterministic = ["iteration", "epoch", "loss", "learning_rate", "grad_norm"]
    def rows(path):
        return [[row[c] for c in deterministic] for row in read_csv(path / "history" / "train.csv")]

    assert rows(straight) == rows(resumed)
    assert read_csv(straight / "history" / "eval.csv") == read_csv(resumed / "history" / "eval.csv")


def test_sigint_saves_a_loadable_checkpoint(tmp_path):
    config = make_config(tmp_path, max_iters=100_000, save_iters=0)
    command = [
        sys.executable, "-m", "sentiment_discovery", "train", "-train", config.train,
        "-experiment_dir", config.experiment_dir, "-experiment_name", config.experiment_name,
        "-rnn_size", "32", "-embed_size", "8", "-batch_size", "4", "-seq_length", "16", "-log_iters", "1",
        "-max_iters", "100000", "-save_iters", "0", "-verbose", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    history = config.experiment_path / "history" / "train.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "SIGINT: stopping after this update" in stderr
    checkpoints = training.list_checkpoints(config.model_path)
    assert checkpoints, stderr
    iteration, newest = checkpoints[-1]
    assert newest.name in (f"iter{iteration}", *(f"e{n}" for n in range(100)))
    assert f"stopped at iteration {iteration}" in stderr
    model = load_model(newest)
    assert model.config.rnn_size == 32
    assert len(read_csv(history)) >= 2


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    common = dict(max_iters=6, save_iters=0, rnn_size=24)
    single = make_config(tmp_path, "single", batch_size=4, **common)
    assert train.run(single) == 0
    ddp = make_config(tmp_path, "ddp", batch_size=2, distributed=True, num_gpus=2, **common)
    assert train.run(ddp) == 0
    a, b = weights(single.model_path / "iter6"), weights(ddp.model_path / "iter6")
    start = ByteLM(ModelConfig(rnn_size=24, embed_size=8))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4)
    moved = max((a[name] - start.state_dict()[name]).abs().max().item() for name in a)
    assert moved > 1e-3  # the weights really changed; equality is not the initial state
    def losses(config):
        return [float(r["loss"]) for r in read_csv(config.experiment_path / "history" / "train.csv")]

    assert losses(ddp) == pytest.approx(losses(single), rel=1e-5)
    info = training.read_state_json(ddp.model_path / "iter6")
    assert info["world_size"] == 2
    state = torch.load(ddp.model_path / "iter6" / training.STATE_TENSORS, weights_only=True)
    assert state["carried_state"]["hidden"][0].shape == (4, 24)  # both processes' streams
    assert len(state["rng"]) == 2


def test_verbose_1_prints_from_the_first_process_2_from_every_process_named_by_rank(tmp_path, capfd):
    """-verbose over two Gloo processes: 1, the first process's lines, bare; 2, every process's,
    each prefixed with its rank (0: quiet, as every other test here runs)."""
    common = dict(max_iters=2, save_iters=0, rnn_size=8, batch_size=2, distributed=True, num_gpus=2)

    def saved(name: str, verbose: int) -> list[str]:
        assert train.run(make_config(tmp_path, name, verbose=verbose, **common)) == 0
        path = make_config(tmp_path, name).model_path / "iter2"
        # The processes share stderr: a line may land beside the first one's progress bar.
        return sorted(re.findall(r"(?:\[rank \d+\] )?saved " + re.escape(str(path)), capfd.readouterr().err))

    assert saved("one", verbose=1) == [f"saved {make_config(tmp_path, 'one').model_path / 'iter2'}"]
    every = make_config(tmp_path, "every").model_path / "iter2"
    assert saved("every", verbose=2) == [f"[rank 0] saved {every}", f"[rank 1] saved {every}"]


def test_linear_schedule_decays_to_zero_per_iteration(tmp_path):
    config = make_config(tmp_path, max_iters=6, save_iters=0, lr=0.003)
    assert train.run(config) == 0
    rows = read_csv(config.experiment_path / "history" / "train.csv")
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([0.003 * (1 - i / 6) for i in range(6)])
    schedule = training.LinearDecay(0.003, 6)
    assert schedule.lr(6, 0) == 0.0 and schedule.lr(0, 5) == 0.003


def test_exponential_schedule_decays_by_lr_factor_each_epoch(tmp_path):
    config = make_config(tmp_path, epochs=3, save_iters=0, lr=0.002, lr_scheduler="ExponentialLR", lr_factor=0.5)
    assert train.run(config) == 0
    rows = read_csv(config.experiment_path / "history" / "train.csv")
    per_epoch = train_batches_per_epoch(config)
    assert len(rows) == 3 * per_epoch
    for index, row in enumerate(rows):
        assert int(row["epoch"]) == index // per_epoch
        assert float(row["learning_rate"]) == pytest.approx(0.002 * 0.5 ** (index // per_epoch))


def tiny_trainer(max_nonfinite: int = 3) -> training.Trainer:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(rnn_size=16, embed_size=8))
    batcher = TransposedBatcher(ByteCorpus.from_texts([s.encode() for s in SENTENCES]), 2, 8)
    state = training.TrainingState(
        model=model,
        optimizer=training.make_optimizer("adam", model.parameters(), 0.01),
        schedule=training.LinearDecay(0.01, 100),
        batcher=batcher,
        scaler=training.Precision().grad_scaler(),
    )
    context = training.DistributedContext()
    return training.Trainer(state, context, precision=training.Precision(), max_nonfinite_in_a_row=max_nonfinite)


def test_non_finite_loss_skips_the_update_and_many_stop_the_run():
    trainer = tiny_trainer(max_nonfinite=3)
    batch = next(iter(trainer.state.batcher))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():
        trainer.model.output.bias[7] = float("nan")
    result = trainer.step(*batch)
    assert result.skipped and math.isnan(result.loss)
    assert trainer.state.nonfinite_in_a_row == 1 and trainer.state.iteration == 1
    after = trainer.model.state_dict()
    for name, value in before.items():
        if name != "output.bias":
            assert torch.equal(after[name], value), name
    assert all(torch.isfinite(t).all() for t in trainer.state.carried.hidden)  # a poisoned state is dropped
    with torch.no_grad():
        trainer.model.output.bias[7] = 0.0
    result = trainer.step(*batch)
    assert not result.skipped and trainer.state.nonfinite_in_a_row == 0
    with torch.no_grad():
        trainer.model.output.bias[7] = float("inf")
    trainer.step(*batch)
    trainer.step(*batch)
    with pytest.raises(UserError, match="3 updates in a row had a non-finite loss or gradient"):
        trainer.step(*batch)


def test_bf16_precision_trains_with_fp32_state_and_weights():
    trainer = tiny_trainer()
    trainer.precision = training.Precision("bf16", "cpu")
    batch = next(iter(trainer.state.batcher))
    losses = [trainer.step(*batch).loss for _ in range(5)]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert trainer.state.carried.cell[0].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_cuda_flag_without_gpu_warns_once_and_trains(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = make_config(tmp_path, cuda=True, max_iters=2, save_iters=0, verbose=1)
    assert train.run(config) == 0
    stderr = capsys.readouterr().err
    assert stderr.count("no GPU is available") == 1
    assert (config.model_path / "iter2").is_dir()


def test_verbose_0_says_nothing_but_errors(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = make_config(tmp_path, cuda=True, max_iters=2, save_iters=0, verbose=0)
    assert train.run(config) == 0
    assert "no GPU is available" not in capsys.readouterr().err  # said at -verbose 1 (above), not at 0
    with pytest.raises(UserError, match="already holds checkpoints"):  # an error still reaches the user
        train.run(config)
    log.notice("shown again")
    assert capsys.readouterr().err == "notice: shown again\n"  # the quiet ends with the run


def test_refuses_to_overwrite_an_earlier_run_and_checks_resumed_flags(finished_run):
    with pytest.raises(UserError, match="already holds checkpoints of a run .*pass --resume"):
        train.run(finished_run)
    changed = dataclasses.replace(finished_run, resume=True, rnn_size=64)
    with pytest.raises(UserError, match=r"was trained with other model flags: -rnn_size 64 \(saved: 32\)"):
        train.run(changed)
    done = dataclasses.replace(finished_run, resume=True)
    assert train.run(done) == 0  # already at the end of its epochs: nothing to do


def test_flag_errors(tmp_path):
    with pytest.raises(UserError, match="--optimizer_type 'Adamm' is not usable here; choose one of .*Adam"):
        train.run(make_config(tmp_path, "a", optimizer_type="Adamm", max_iters=1))
    with pytest.raises(UserError, match="-valid is the training data, .* has none; give -split 1000,1,1"):
        train.run(make_config(tmp_path, "b", split="1.", valid=str(tmp_path / "reviews.txt"), max_iters=1))
    with pytest.raises(UserError, match="-rank needs -world_size"):
        train.run(make_config(tmp_path, "c", rank=0))
    assert training.optimizer_class("rmsprop") is torch.optim.RMSprop


def test_seed_command_line_is_accepted():
    # The 2017 README's command, with both flag spellings mixed in.
    argv = (
        "train -experiment_dir ./experiments -experiment_name mlstm -model_dir model -cuda -embed_size 64 "
        "-rnn_size 4096 -layers 1 -weight_norm -lstm_only -rnn_type mlstm -dropout 0 -persist_state 1 "
        "-seq_length 256 -batch_size 32 -lr 0.000125 --optimizer_type=Adam -lr_scheduler LinearLR -epochs 1 "
        "-train data/amazon/reviews.json -valid data/amazon/reviews.json -test data/amazon/reviews.json "
        "-data_set_type unsupervised -lazy -text_key sentence -num_gpus 2 -distributed --max-iters 10"
    ).split()
    args = cli.build_parser().parse_args(argv)
    config = config_from_args(train.TrainConfig, args, command="train")
    assert (config.weight_norm, config.lstm_only, config.persist_state, config.lr) == (True, True, 1, 0.000125)
    assert (config.optimizer_type, config.num_gpus, config.distributed, config.max_iters) == ("Adam", 2, True, 10)
    assert train.processes_to_start(config) == 2
