"""``preprocess -workers N``: one process reads, N clean; the corpus is the one a single process writes."""

import gzip
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sentiment_discovery.foundation import cores
from sentiment_discovery.data import cleaning
from sentiment_discovery.data.corpus import CorpusOptions, build_corpus
from sentiment_discovery.foundation.errors import UserError

# Markup, entities, runs of whitespace, quoted newlines and delimiters, a text that is empty once
# its markup is gone, non-ASCII, and an invalid UTF-8 byte: every path of the cleaning.
ROWS = [
    "plain review number {i}",
    'quoted, with a comma and a "quote" ({i})',
    "two\nlines\r\nin one field {i}",
    "<b>bold</b>&nbsp;&amp; <br /><br />tags {i}",
    "<br /><br />",
    "café naïve – {i} \u00a0 spaced   out",
]


def write_inputs(directory: Path, rows: int = 600) -> list[Path]:
    texts = [ROWS[i % len(ROWS)].format(i=i) for i in range(rows)]
    csv_path = directory / "reviews.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        import csv

        writer = csv.writer(handle)
        writer.writerow(["id", "sentence"])
        writer.writerows([i, text] for i, text in enumerate(texts))
    raw = csv_path.read_bytes().replace(b",plain review number 6\r", b",plain review \xff number 6\r")
    csv_path.write_bytes(raw)
    jsonl_path = directory / "reviews.jsonl"
    jsonl_path.write_text("".join(json.dumps({"sentence": text}) + "\n" for text in texts), encoding="utf-8")
    gz_csv = directory / "reviews.csv.gz"
    gz_csv.write_bytes(gzip.compress(csv_path.read_bytes()))
    gz_jsonl = directory / "reviews.jsonl.gz"
    gz_jsonl.write_bytes(gzip.compress(jsonl_path.read_bytes()))
    return [csv_path, jsonl_path, gz_csv, gz_jsonl]


def corpus_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.name != "manifest.json"}


def manifest_without_time(directory: Path) -> dict:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.pop("build_seconds")
    return manifest


@pytest.mark.parametrize("which", ["csv", "jsonl", "csv.gz", "jsonl.gz"])
def test_two_workers_write_the_corpus_of_one_byte_for_byte(tmp_path, monkeypatch, which):
    monkeypatch.setattr(cleaning, "CHUNK_CHARS", 500)  # dozens of chunks in flight, not one
    inputs = {path.name.removeprefix("reviews."): path for path in write_inputs(tmp_path)}
    options = dict(text_key="sentence", split="5,1,1", num_shards=7, shuffle=True, seed=3)
    one = build_corpus(inputs[which], tmp_path / "one", CorpusOptions(**options), workers=1)
    two = build_corpus(inputs[which], tmp_path / "two", CorpusOptions(**options), workers=2)
    files = corpus_files(one)
    assert sorted(files) == sorted(f"{s}.{k}" for s in ("train", "valid", "test") for k in ("bytes", "offsets"))
    assert files == corpus_files(two)
    assert manifest_without_time(one) == manifest_without_time(two)
    manifest = manifest_without_time(two)
    assert manifest["read"]["skipped"] == {"empty text": 100}  # the markup-only rows, counted the same
    assert sum(split["texts"] for split in manifest["splits"].values()) == 500
    if which.startswith("csv"):
        assert manifest["read"]["invalid_utf8_replaced"] == 1
        assert b"\n two lines in one field 2 " in files["train.bytes"] + files["valid.bytes"] + files["test.bytes"]


def test_several_inputs_and_strict_errors_are_the_same_with_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(cleaning, "CHUNK_CHARS", 500)
    inputs = write_inputs(tmp_path)
    one = build_corpus(inputs, tmp_path / "one", CorpusOptions(text_key="sentence"), workers=1)
    three = build_corpus(inputs, tmp_path / "three", CorpusOptions(text_key="sentence"), workers=3)
    assert corpus_files(one) == corpus_files(three)
    assert manifest_without_time(one) == manifest_without_time(three)
    errors = []
    for workers in (1, 2):
        with pytest.raises(UserError) as caught:
            strict = CorpusOptions(text_key="sentence", strict=True)
            build_corpus(inputs[1], tmp_path / f"strict{workers}", strict, workers=workers)
        errors.append(str(caught.value))
        assert not (tmp_path / f"strict{workers}").exists() and not (tmp_path / f"strict{workers}.partial").exists()
    assert errors[0] == errors[1] == f"{inputs[1]}:5: the text is empty after preprocessing (-strict stops here)"


def big_csv(path: Path, rows: int) -> Path:
    line = '{i},"<p>a long review, with markup &amp; entities, number {i}</p>  ' + "and some more words " * 20 + '"\n'
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("id,sentence\n")
        handle.writelines(line.format(i=i) for i in range(rows))
    return path


def test_a_killed_worker_leaves_the_previous_corpus_and_no_partial_one(tmp_path):
    out = tmp_path / "corpus"
    write_inputs(tmp_path)
    build_corpus(tmp_path / "reviews.csv", out, CorpusOptions(text_key="sentence"))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    source = big_csv(tmp_path / "big.csv", 20_000)
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            children = multiprocessing.active_children()
            if len(children) == 2:  # both workers started: one is killed while they clean
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(children[0].pid)
            time.sleep(0.001)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        with pytest.raises(UserError, match="a preprocess worker process died before it finished"):
            build_corpus(source, out, CorpusOptions(text_key="sentence"), workers=2)
    finally:
        killed.append(None)  # stops the thread if the build ended first
        killer.join()
    assert killed[0] is not None
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith((".corpus", "corpus"))) == ["corpus"]


def test_ctrl_c_stops_every_process_and_leaves_no_partial_corpus(tmp_path):
    source = big_csv(tmp_path / "big.csv", 100_000)
    out = tmp_path / "corpus"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sentiment_discovery", "preprocess", str(source), "-text_key", "sentence",
               "-out", str(out), "-workers", "2"]
    # SIGINT as a terminal delivers it, also where the suite itself runs as a background job (which ignores it).
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / "corpus.partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not partial.exists():
        time.sleep(0.01)
    # The input takes seconds to clean, so the signal lands mid-run on a fast machine too.
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.csv"]


@pytest.mark.parametrize("idle, usable, expected", [(0.3, 2, 1), (1.4, 2, 1), (1.6, 2, 2), (7.9, 2, 2), (None, 3, 3)])
def test_default_workers_are_the_idle_cores(monkeypatch, idle, usable, expected):
    monkeypatch.setattr(cores, "idle_cores", lambda: idle)
    monkeypatch.setattr(cores, "usable_cores", lambda: usable)
    assert cores.default_workers() == expected
