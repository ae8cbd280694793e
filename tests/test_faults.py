"""The fault suite: bad inputs to every command, training killed and resumed, concurrent writers.

Each bad input must give one ``error:`` line, exit status 2, no traceback, no output and
its inputs byte-identical; every SIGKILLed run must resume to the uninterrupted run's
weights, optimizer state and histories, bit for bit; a second writer is refused.
"""

import contextlib
import csv
import dataclasses
import errno
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sentiment_discovery import UserError, cli
from sentiment_discovery.foundation import log

import fault_catalogue as faults

CATALOGUE = faults.catalogue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return faults.make_workspace(tmp_path_factory.mktemp("faults") / "ws")


def test_the_catalogue_covers_every_command_with_over_40_cases():
    assert len(CATALOGUE) >= 40
    assert len({case.name for case in CATALOGUE}) == len(CATALOGUE)
    commands = {case.command for case in CATALOGUE}
    assert set(cli.COMMANDS) <= commands


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.name for case in CATALOGUE])
def test_bad_input_is_one_error_line_and_changes_nothing(case, workspace, tmp_path):
    outcome = faults.try_case(case, workspace, tmp_path / "case")
    assert outcome.status == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert len(outcome.lines) == 1, outcome.stderr
    assert outcome.lines[0].startswith("error: ")
    assert re.search(case.error, outcome.lines[0]), outcome.lines[0]
    assert outcome.changed == []  # no output, not even partial, and every input byte-identical


@pytest.mark.slow
def test_training_killed_at_20_moments_resumes_bit_identical(tmp_path):
    runs = faults.run_kills(tmp_path, kills=20, seed=18)
    assert len(runs) == 20
    assert all(run["killed"] for run in runs), runs
    assert all(run["resumed"] == 0 for run in runs), runs
    assert sum(run["moment"] == "mid-save" for run in runs) == 10
    straight = faults.final_state(tmp_path / "exp" / "straight")
    assert straight["iteration"] == faults.TRAIN_FLAGS["max_iters"]
    assert faults.final_state(tmp_path / "exp" / "straight_again") == straight
    for run in runs:
        assert faults.final_state(tmp_path / "exp" / run["name"]) == straight, run


@pytest.mark.slow
def test_finetune_killed_at_10_moments_resumes_bit_identical(tmp_path):
    runs = faults.run_kills(tmp_path, kills=10, seed=3, command="finetune")
    assert len(runs) == 10
    assert all(run["killed"] for run in runs), runs
    assert all(run["resumed"] == 0 for run in runs), runs
    assert sum(run["moment"] == "mid-save" for run in runs) == 5
    assert sum(run["with_resume"] for run in runs) >= 7, runs  # most kills fall after the first checkpoint
    straight = faults.finetune_final_state(tmp_path / "exp" / "straight")
    assert len([row for row in straight["history"] if row["split"] == "valid"]) == 4
    assert faults.finetune_final_state(tmp_path / "exp" / "straight_again") == straight
    for run in runs:
        assert faults.finetune_final_state(tmp_path / "exp" / run["name"]) == straight, run


@pytest.mark.parametrize("index", range(5))
def test_a_second_writer_is_refused_before_any_work(index, workspace, tmp_path):
    name, target, argv = faults.concurrent_cases(workspace, tmp_path)[index]
    with faults.live_writer(target) as pid:
        before = faults.snapshot(workspace, tmp_path)
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            status = cli.main(argv)
        after = faults.snapshot(workspace, tmp_path)
    assert status == 2, stderr.getvalue()
    assert stderr.getvalue() == (
        f"error: {target} is being written by another run (process {pid}); wait for it to finish or choose another "
        f"{ {2: '-experiment_name', 3: '-experiment_name', 4: '--out'}.get(index, 'output') }\n"
    )
    assert after == before


# --------------------------------------------------------------------------- the items of issue 18, one by one


def test_classify_writes_texts_that_are_not_utf8_back_as_their_bytes(workspace, tmp_path):
    out = tmp_path / "out.csv"
    text = b"good \xff\xfe movie".decode("utf-8", errors="surrogateescape")  # as a shell passes $'\xff\xfe'
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["classify", "-classifier", str(workspace / "classifier"), "-text", text, "-output",
                         str(out)]) == 0
    assert out.read_bytes().splitlines()[1].startswith(b"good \xff\xfe movie,")


def test_classify_output_lines_up_with_the_input_where_empty_rows_were_skipped(workspace, tmp_path):
    source = tmp_path / "texts.csv"
    source.write_text("sentence\ngood\n\"\"\nbad\n")
    out = tmp_path / "out.csv"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert cli.main(["classify", "-classifier", str(workspace / "classifier"), "-input", str(source),
                         "-output", str(out), "-no_feature_cache"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(row["line"], row["sentence"]) for row in rows] == [("2", "good"), ("4", "bad")]
    # The skipped row is warned about on one line, without Python's source-line format.
    assert f"warning: {source}: 3 records, 1 skipped (1 empty text)\n" in stderr.getvalue()
    assert "warnings.warn" not in stderr.getvalue()


def test_featurize_without_a_model_uses_the_shipped_default(workspace, tmp_path, monkeypatch):
    from sentiment_discovery import defaults, load_model

    shutil.copytree(workspace / "model", tmp_path / "default" / "model")
    monkeypatch.setenv(defaults.ENV_VAR, str(tmp_path / "default"))
    out = tmp_path / "f.npy"
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        assert cli.main(["featurize", "-input", str(workspace / "texts.csv"), "-output", str(out)]) == 0
    texts = faults.POSITIVE + faults.NEGATIVE
    np.testing.assert_array_equal(np.load(out), load_model(workspace / "model").featurize(texts))
    assert stderr.getvalue().endswith(f"wrote 10 x 16 features to {out}\n")


def test_featurize_progress_moves_with_the_bytes_of_one_long_text(monkeypatch):
    import tqdm.auto

    from sentiment_discovery.features import CHUNK_LENGTH, featurize
    from sentiment_discovery.foundation.text import preprocess_text

    bars = []

    class Recording:
        def __init__(self, total, **options):
            self.total, self.updates = total, []
            bars.append(self)

        def update(self, count):
            self.updates.append(count)

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    text = "a long review. " * 200
    featurize(faults.tiny_model(), [text, "short"], progress=True)
    (bar,) = bars
    long = len(preprocess_text(text))
    assert bar.total == sum(bar.updates) == long + len(preprocess_text("short"))
    assert len(bar.updates) == -(-long // CHUNK_LENGTH) > 10  # one step per chunk of the batch, not per text


@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_ctrl_c_while_starting_up_is_one_line(delay, workspace):
    process = subprocess.Popen(
        [sys.executable, "-m", "sentiment_discovery", "classify", "-classifier", str(workspace / "classifier"),
         "-text", "good"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert (process.returncode, stderr) == (130, "interrupted\n")


def test_corpus_is_rebuilt_after_a_same_size_edit_that_kept_the_mtime(tmp_path):
    from sentiment_discovery.data.corpus import ByteCorpus, CorpusOptions, build_corpus

    source = tmp_path / "texts.txt"
    source.write_text("the cat sat\n")
    build_corpus(source, tmp_path / "corpus", CorpusOptions(text_key="text"))
    stat = source.stat()
    source.write_text("the dog sat\n")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    build_corpus(source, tmp_path / "corpus", CorpusOptions(text_key="text"))
    assert b"dog" in ByteCorpus.open(tmp_path / "corpus").text(0)


def _train_config(root, name="run", **overrides):
    from sentiment_discovery.recipes import train

    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(faults.SENTENCES[i % 3] for i in range(36)) + "\n")
    values = {**faults.TRAIN_FLAGS, "max_iters": 6, "keep_iters": 0, "verbose": 1}
    values.update(overrides)
    return train.TrainConfig(train=str(corpus), experiment_dir=str(root / "exp"), experiment_name=name, **values)


def _train(config) -> tuple[int, str]:
    from sentiment_discovery.recipes import train

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            status = train.run(config)
        except UserError as error:
            return 2, str(error)
    return status, stderr.getvalue()


def test_resume_says_what_it_redoes_names_the_checkpoint_before_a_damaged_one_and_tidies(tmp_path):
    config = _train_config(tmp_path)
    assert _train(config)[0] == 0
    model = config.model_path
    assert sorted(p.name for p in model.iterdir()) == ["iter3", "iter6"]
    resume = dataclasses.replace(config, resume=True, max_iters=9)

    (model / "iter6" / "training_state.json").unlink()
    status, said = _train(dataclasses.replace(resume, max_iters=6))
    assert status == 0
    assert (
        f"warning: {model / 'iter6'} (iteration 6) is newer but lacks its training state (training_state.json, "
        "training_state.pt); resuming iter3 at iteration 3: 3 iteration(s) are trained again"
    ) in said

    weights = model / "iter6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    status, error = _train(resume)
    assert status == 2
    assert error.startswith(f"{weights} is truncated or corrupt")
    assert error.endswith(
        f"; the checkpoint before it, {model / 'iter3'}, may be whole: move {model / 'iter6'} aside "
        f"(mv {model / 'iter6'} {model / 'iter6'}.damaged) and --resume again"
    )

    shutil.rmtree(model / "iter6")
    (model / "iter9.partial").mkdir()
    os.replace(model / "iter3", model / "iter3.previous")  # a swap cut between its two renames
    status, said = _train(resume)
    assert status == 0
    assert f"notice: restored {model / 'iter3'} from {model / 'iter3.previous'}" in said
    assert f"notice: removed the unfinished {model / 'iter9.partial'}" in said
    assert f"resumed {model / 'iter3'} at iteration 3" in said
    assert sorted(p.name for p in model.iterdir()) == ["iter3", "iter6", "iter9"]


def test_a_stop_on_a_save_point_keeps_its_validation_row(tmp_path, monkeypatch):
    from sentiment_discovery import training

    straight = _train_config(tmp_path, "straight", verbose=0)
    assert _train(straight)[0] == 0
    real_step = training.Trainer.step

    def step(self, inputs, targets, reset, stop=False):  # as if SIGINT came during update 3, a save point
        return real_step(self, inputs, targets, reset, stop=stop or self.state.iteration + 1 == 3)

    monkeypatch.setattr(training.Trainer, "step", step)
    stopped = _train_config(tmp_path, "stopped", verbose=0)
    assert _train(stopped)[0] == 128 + 15
    monkeypatch.setattr(training.Trainer, "step", real_step)
    assert _train(dataclasses.replace(stopped, resume=True))[0] == 0
    eval_csv = "history/eval.csv"
    assert (stopped.experiment_path / eval_csv).read_text() == (straight.experiment_path / eval_csv).read_text()
    assert (straight.experiment_path / eval_csv).read_text().count("\n3,") == 1


def test_a_second_train_into_a_live_experiment_is_refused(tmp_path):
    config = _train_config(tmp_path, max_iters=100_000, save_iters=50, verbose=0)
    command = [sys.executable, "-m", "sentiment_discovery", "train", "-train", config.train,
               "-experiment_dir", config.experiment_dir, "-experiment_name", config.experiment_name, "-rnn_size", "16", "-embed_size", "8", "-batch_size", "4",
               "-seq_length", "16", "-max_iters", "100000", "-save_iters", "50", "-verbose", "0"]  # fmt: skip
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        history = config.experiment_path / "history" / "train.csv"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and not history.is_file():
            time.sleep(0.1)
        assert first.poll() is None and history.is_file()
        status, error = _train(dataclasses.replace(config, max_iters=2))  # bounded, should the lock fail
        assert status == 2
        assert error == (
            f"{config.experiment_path} is being written by another run (process {first.pid}); wait for it to finish "
            "or choose another -experiment_name"
        )
    finally:
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr


# --------------------------------------------------------------------------- the items of issue 26, one by one


def _finetune_args(ws, root, *extra):
    return ["finetune", "-load_model", str(ws / "model"), "-train", str(ws / "train.csv"), "-valid",
            str(ws / "valid.csv"), "-experiment_dir", str(root / "exp"), "-batch_size", "8", "-epochs", "1",
            "-eval_every", "0.5", "-precision", "fp32", *extra]


def _quiet(argv) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        status = cli.main(argv)
    return status, stderr.getvalue()


def test_finetune_restores_a_checkpoint_whose_swap_was_cut_between_its_renames(workspace, tmp_path):
    args = _finetune_args(workspace, tmp_path)
    assert _quiet([*args, "-max_steps", "2"])[0] == 0
    run = tmp_path / "exp" / "mlstm" / "finetune"
    checkpoint = run / "checkpoint"
    saved = faults.snapshot(checkpoint)
    # A SIGKILL between the two renames of the next save: the old checkpoint moved aside, the new one staged.
    os.replace(checkpoint, run / "checkpoint.previous")
    shutil.copytree(run / "checkpoint.previous", run / "checkpoint.partial")
    status, said = _quiet(args)  # a fresh run: refused, and the checkpoint is back where it was
    assert status == 2
    assert (f"notice: restored {checkpoint} from {run / 'checkpoint.previous'}; removed the unfinished "
            f"{run / 'checkpoint.partial'}") in said
    assert said.splitlines()[-1] == (f"error: {run} already holds a fine-tuning run; pass --resume to continue it, "
                                     "or another -experiment_name")
    assert {k.replace(str(checkpoint), ""): v for k, v in faults.snapshot(checkpoint).items()} == {
        k.replace(str(checkpoint), ""): v for k, v in saved.items()}
    assert not (run / "checkpoint.previous").exists() and not (run / "checkpoint.partial").exists()
    status, said = _quiet([*args, "--resume"])
    assert status == 0, said
    assert f"resumed {checkpoint} at update 2 of" in said
    assert (run / "classifier.json").is_file()


def test_a_fresh_finetune_keeps_an_earlier_runs_outputs(workspace, tmp_path):
    args = _finetune_args(workspace, tmp_path)
    assert _quiet(args)[0] == 0
    run = tmp_path / "exp" / "mlstm" / "finetune"
    shutil.rmtree(run / "checkpoint")  # e.g. removed to save space, once the run was done
    before = faults.snapshot(run)
    status, said = _quiet(args)
    assert status == 2
    assert said == (f"error: {run} holds the outputs of an earlier fine-tuning run (model, classifier.json, "
                    "results.json) but no checkpoint to resume; pass another -experiment_name, or move them aside\n")
    assert faults.snapshot(run) == before


def test_heatmaps_of_texts_that_share_a_name_do_not_overwrite_each_other(workspace, tmp_path):
    from sentiment_discovery import load_model
    from sentiment_discovery.visualize import heatmap_file_stem, text_sha256, unit_values

    heatmaps = tmp_path / "mlstm" / "heatmaps"
    common = "x" * 100

    def draw(text):
        assert _quiet(["visualize", "-load_model", str(workspace / "model"), "-neuron", "1", "-text", text,
                       "-experiment_dir", str(tmp_path)])[0] == 0
        return sorted(p.name for p in heatmaps.iterdir())

    first, second = common + " first", common + " second"
    assert draw(first) == [f"{common}.html", f"{common}.png"]
    page = (heatmaps / f"{common}.html").read_bytes()
    drawn = unit_values(load_model(workspace / "model"), second, 1).text  # padded as the model read it
    hashed = f"{common}-{text_sha256(drawn)[:12]}"
    assert draw(second) == [f"{hashed}.html", f"{hashed}.png", f"{common}.html", f"{common}.png"]
    assert (heatmaps / f"{common}.html").read_bytes() == page  # the first text's heatmap is untouched
    assert draw(first) == [f"{hashed}.html", f"{hashed}.png", f"{common}.html", f"{common}.png"]  # replaced in place
    assert heatmap_file_stem("***") == heatmap_file_stem("???") == "___"
    assert len(draw("***")) == 6 and len(draw("???")) == 8


def test_a_stale_temporary_of_a_dead_writer_is_removed_by_the_next_write(workspace, tmp_path):
    from sentiment_discovery.foundation import storage

    def dead_pid() -> int:
        finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True)
        return int(finished.stdout)

    dead_pid, other_dead_pid = dead_pid(), dead_pid()
    out = tmp_path / "out.csv"
    stale = storage.temporary_name(out, pid=dead_pid)
    stale.write_bytes(b"x" * 10_000)  # a SIGKILL just before the rename left it, as big as the output
    other = storage.temporary_name(tmp_path / "other.csv", pid=dead_pid)
    other.write_bytes(b"y")
    recent = storage.temporary_name(out, pid=other_dead_pid)
    recent.write_bytes(b"w")  # written to a moment ago: perhaps a writer in another pid namespace
    an_hour_ago = time.time() - 3600
    for path in (stale, other):
        os.utime(path, (an_hour_ago, an_hour_ago))
    with faults.live_writer(tmp_path / "held") as live_pid:  # a live process's temporary is a write in flight
        live = storage.temporary_name(out, pid=live_pid)
        live.write_bytes(b"z")
        assert _quiet(["classify", "-classifier", str(workspace / "classifier"), "-text", "good", "-output",
                       str(out)])[0] == 0
        assert not stale.exists() and live.exists() and other.exists() and recent.exists()
    assert out.read_text().startswith("sentence,prediction,")


def test_cached_features_with_nan_are_featurized_again(tmp_path):
    from sentiment_discovery import save_model, transfer

    model = faults.tiny_model()
    save_model(model, tmp_path / "model")
    identity = transfer.ModelIdentity.of(model, tmp_path / "model")
    cache = transfer.FeatureCache(tmp_path / "cache")
    texts = ["good", "bad"]
    first = transfer.featurize_cached(model, texts, identity, cache, progress=False)
    path = cache.path(identity.feature_key(texts))
    damaged = first.features.copy()
    damaged[0, 3] = np.nan
    np.save(path, damaged)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), log.cli_output():
        again = transfer.featurize_cached(model, texts, identity, cache, progress=False)
    assert not again.cached
    np.testing.assert_array_equal(again.features, first.features)
    assert stderr.getvalue() == f"notice: ignoring cached features {path}: they hold NaN or infinite values (a damaged file)\n"


def test_classify_in_a_read_only_directory_prints_its_labels_without_a_cache(workspace, tmp_path, capsys):
    args = ["classify", "-classifier", str(workspace / "classifier"), "-input", str(workspace / "texts.csv"),
            "-experiment_dir", str(tmp_path / "exp")]
    with faults.failing_disk(tmp_path, errno.EROFS):
        assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 10
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: features not cached: cannot write {tmp_path / 'exp'}: read-only file system"]
    assert list(tmp_path.iterdir()) == []


def test_a_txt_with_cr_only_line_ends_is_one_text_per_line(tmp_path):
    from sentiment_discovery.data.readers import read_texts

    path = tmp_path / "old_mac.txt"
    path.write_bytes(b"first text\rsecond text\r\rthird\r\nfourth\n")
    assert read_texts(path, "text") == ["first text", "second text", "third", "fourth"]


def test_more_shards_than_texts_make_a_corpus_that_train_opens(tmp_path):
    from sentiment_discovery.data.batching import TransposedBatcher
    from sentiment_discovery.data.corpus import ByteCorpus, CorpusOptions, build_corpus, shard_starts

    source = tmp_path / "t.txt"
    source.write_text("\n".join(faults.SENTENCES * 4) + "\n")
    build_corpus(source, tmp_path / "corpus", CorpusOptions(text_key="text", num_shards=10**12))
    corpus = ByteCorpus.open(tmp_path / "corpus")
    np.testing.assert_array_equal(corpus.shard_starts, np.arange(12))
    assert list(shard_starts(12, 12)) == list(np.unique(np.arange(12) * 12 // 12))  # the same rule, at the edge
    TransposedBatcher(corpus, 2, 8, persist_state=1)


def test_featurize_and_finetune_refuse_what_cannot_fit_before_writing(workspace, tmp_path, monkeypatch):
    from sentiment_discovery.foundation import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 20_000)
    monkeypatch.setattr(memory, "total_bytes", lambda: 1 << 30)
    status, said = _quiet(["featurize", "-model", str(workspace / "model"), "-input", str(workspace / "texts.csv"),
                           "-output", str(tmp_path / "f.npy"), "-batch_size", "1000"])
    assert status == 2
    assert re.fullmatch(r"error: featurizing 10 texts in batches of 10 needs at least \d+(\.\d+)? KiB of memory, "
                        r"more than the 19.5 KiB this machine has free \(1 GiB in all\); lower -batch_size\n", said), said
    status, said = _quiet(_finetune_args(workspace, tmp_path, "-batch_size", "1000"))
    assert status == 2
    assert re.fullmatch(r"error: fine-tuning \d{1,3}(,\d{3})* weights on batches of 40 texts of up to \d+ bytes needs "
                        r"at least .* of memory, more than the 19.5 KiB this machine has free \(1 GiB in all\); "
                        r"lower -batch_size or -max_text_length\n", said), said
    assert list(tmp_path.iterdir()) == []
