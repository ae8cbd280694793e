import csv
import dataclasses
import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sentiment_discovery import cli
from sentiment_discovery.data.batching import TransposedBatcher
from sentiment_discovery.data.corpus import (
    ByteCorpus, CorpusOptions, build_corpus, deal_order, ensure_corpus, shard_starts,
)
from sentiment_discovery.foundation.errors import UserError
from sentiment_discovery.foundation.text import LATER_SWITCHES, PAPER_TEXT_OPTIONS, TextOptions, preprocess_text

FIXTURES = Path(__file__).parent / "fixtures"


def numbered_lines(path: Path, count: int) -> Path:
    path.write_text("".join(f"text {i}\n" for i in range(count)))
    return path


def corpus_texts(directory: Path, split: str) -> list[bytes]:
    corpus = ByteCorpus.open(directory, split)
    return [corpus.text(i) for i in range(corpus.num_texts)]


def test_files_hold_the_preprocessed_texts_and_their_offsets(tmp_path):
    out = build_corpus(FIXTURES / "reviews.csv", tmp_path / "corpus", CorpusOptions(text_key="review"))
    expected = [
        b'\n Loved it. The "twist" works, mostly. ',
        b"\n Dull & slow, I left early ",
        "\n Café scenes are gorgeous and the score soars ".encode("utf-8"),
        b"\n Two hours I won't get back. ",
    ]
    assert (out / "train.bytes").read_bytes() == b"".join(expected)
    offsets = np.fromfile(out / "train.offsets", dtype="<i8")
    assert offsets.tolist() == np.cumsum([0] + [len(t) for t in expected]).tolist()
    corpus = ByteCorpus.open(out)
    assert isinstance(corpus.data, np.memmap) and corpus.data.dtype == np.uint8
    assert corpus.num_texts == 4 and corpus.num_bytes == sum(map(len, expected))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {
        "train": {"data": "train.bytes", "offsets": "train.offsets", "texts": 4, "bytes": corpus.num_bytes, "shards": 1002}
    }
    (source,) = manifest["sources"]
    assert source["path"] == str((FIXTURES / "reviews.csv").resolve())
    assert source["bytes"] == (FIXTURES / "reviews.csv").stat().st_size
    assert source["sha256"] == hashlib.sha256((FIXTURES / "reviews.csv").read_bytes()).hexdigest()
    # As recorded before the later switches existed (text.recorded_text_options); read back whole.
    recorded = {k: v for k, v in dataclasses.asdict(PAPER_TEXT_OPTIONS).items() if k not in LATER_SWITCHES}
    assert manifest["options"]["text_options"] == recorded
    assert TextOptions.from_dict(recorded) == PAPER_TEXT_OPTIONS


def test_1000_1_1_deals_runs_of_1002_texts(tmp_path):
    source = numbered_lines(tmp_path / "lines.txt", 2 * 1002 + 5)
    out = build_corpus(source, tmp_path / "corpus", CorpusOptions(text_key="text", split="1000,1,1"))
    # In each run of 1002 texts: the first to train, the second to valid, the third to test, the rest to train.
    train = [b"\n text %d " % i for i in range(2009) if i % 1002 not in (1, 2)]
    assert corpus_texts(out, "train") == train
    assert corpus_texts(out, "valid") == [b"\n text 1 ", b"\n text 1003 ", b"\n text 2005 "]
    assert corpus_texts(out, "test") == [b"\n text 2 ", b"\n text 1004 ", b"\n text 2006 "]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {name: split["shards"] for name, split in manifest["splits"].items()} == {"train": 1000, "valid": 1, "test": 1}
    corpus = ByteCorpus.open(out, "train")
    assert corpus.num_texts == 2003 and len(corpus.shard_starts) == 1000
    # 2003 texts in 1000 near-equal runs: 997 of 2 texts and 3 of 3.
    sizes = np.diff(np.append(corpus.shard_starts, 2003))
    assert sorted(sizes.tolist()) == [2] * 997 + [3] * 3
    assert shard_starts(5, 2).tolist() == [0, 2]
    assert shard_starts(3, 10).tolist() == [0, 1, 2]
    assert deal_order((3, 1)).tolist() == [0, 1, 0, 0]


def test_shuffle_deals_each_run_in_a_seeded_random_order(tmp_path):
    source = numbered_lines(tmp_path / "lines.txt", 40)
    first = build_corpus(source, tmp_path / "a", CorpusOptions(text_key="text", split="8,1,1", shuffle=True, seed=1))
    again = build_corpus(source, tmp_path / "b", CorpusOptions(text_key="text", split="8,1,1", shuffle=True, seed=1))
    other = build_corpus(source, tmp_path / "c", CorpusOptions(text_key="text", split="8,1,1", shuffle=True, seed=2))
    valid = [int(t.split()[1]) for t in corpus_texts(first, "valid")]
    assert valid == [int(t.split()[1]) for t in corpus_texts(again, "valid")]
    assert valid != [int(t.split()[1]) for t in corpus_texts(other, "valid")]
    # Still exactly one validation text per run of ten, and train keeps input order.
    assert [v // 10 for v in valid] == [0, 1, 2, 3]
    train = [int(t.split()[1]) for t in corpus_texts(first, "train")]
    assert len(train) == 32 and train == sorted(train)


def test_rerun_is_a_no_op_and_changes_rebuild(tmp_path, log_messages):
    source = numbered_lines(tmp_path / "lines.txt", 30)
    out = tmp_path / "corpus"
    messages = log_messages()
    build_corpus(source, out, CorpusOptions(text_key="text", split="0.9"))
    stamp = (out / "train.bytes").stat().st_mtime_ns
    build_corpus(source, out, CorpusOptions(text_key="text", split="0.9"))
    assert messages[-1] == f"{out} is up to date with its inputs and options: nothing to do"
    os.utime(source, ns=(1, 1))  # touched, same content: still up to date
    build_corpus(source, out, CorpusOptions(text_key="text", split="0.9"))
    assert messages[-1].endswith("nothing to do") and (out / "train.bytes").stat().st_mtime_ns == stamp
    build_corpus(source, out, CorpusOptions(text_key="text", split="0.8"))
    assert not messages[-1].endswith("nothing to do")
    assert json.loads((out / "manifest.json").read_text())["options"]["split"] == [4, 1]
    numbered_lines(source, 31)
    build_corpus(source, out, CorpusOptions(text_key="text", split="0.8"))
    assert ByteCorpus.open(out, "train").num_texts + ByteCorpus.open(out, "valid").num_texts == 31
    assert not (tmp_path / "corpus.partial").exists() and not (tmp_path / "corpus.previous").exists()


def test_skipped_rows_are_counted_in_the_manifest(tmp_path, log_messages):
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(
        b'{"t": "fine"}\n{"t": ""}\n{"t": "<br /><br />"}\n{"x": 1}\n{"t": "caf\xe9"}\n{"t": "ok"}\n'
    )
    messages = log_messages()
    out = build_corpus(source, tmp_path / "corpus", CorpusOptions(text_key="t"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["read"] == {
        "records": 6,
        "skipped": {"empty text": 2, "missing text key": 1},
        "invalid_utf8_replaced": 1,
    }
    assert corpus_texts(out, "train") == [b"\n fine ", "\n caf\ufffd ".encode(), b"\n ok "]
    assert messages[-1] == (
        f"{out}: train 3 texts / {manifest['splits']['train']['bytes']} bytes; read 6 records, "
        "3 skipped (2 empty text, 1 missing text key), 1 with invalid UTF-8 replaced by U+FFFD"
    )
    with pytest.raises(UserError) as error:
        build_corpus(source, tmp_path / "strict", CorpusOptions(text_key="t", strict=True))
    assert str(error.value) == f"{source}:2: empty text in 't' (-strict stops here; without it the row is skipped)"
    source.write_text('{"t": "fine"}\n{"t": "<br /><br />"}\n')
    with pytest.raises(UserError) as error:
        build_corpus(source, tmp_path / "strict", CorpusOptions(text_key="t", strict=True))
    assert str(error.value) == f"{source}:2: the text is empty after preprocessing (-strict stops here)"
    assert not (tmp_path / "strict").exists() and not (tmp_path / "strict.partial").exists()


def test_several_inputs_are_one_stream_and_text_options_apply(tmp_path):
    options = TextOptions(strip_tags=True, collapse_whitespace=True, to_ascii=True, max_length=9)
    out = build_corpus(
        [FIXTURES / "reviews.txt", FIXTURES / "reviews.jsonl"], tmp_path / "c",
        CorpusOptions(text_key="review", text_options=options),
    )
    texts = corpus_texts(out, "train")
    assert len(texts) == 8
    assert texts[2] == texts[6] == b"\n Cafe scen "
    assert len(json.loads((out / "manifest.json").read_text())["sources"]) == 2


def test_refuses_to_overwrite_a_directory_that_is_not_a_corpus(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError) as error:
        build_corpus(FIXTURES / "reviews.txt", tmp_path / "mine", CorpusOptions(text_key="text"))
    assert str(error.value) == f"{tmp_path / 'mine'} exists and is not a corpus; choose another --out or remove it"
    unknown = tmp_path / "data.xml"
    unknown.write_text("x")
    with pytest.raises(UserError, match="unknown extension '.xml'"):
        build_corpus(unknown, tmp_path / "x", CorpusOptions(text_key="text"))
    assert not (tmp_path / "x").exists()


def test_ensure_corpus_builds_once_and_passes_corpora_through(tmp_path):
    cache = tmp_path / "cache"
    built = ensure_corpus(FIXTURES / "reviews.jsonl", cache, CorpusOptions(text_key="review"))
    assert built.parent == cache and built.name.startswith("reviews.jsonl.")
    assert ensure_corpus(built, cache, CorpusOptions(text_key="ignored")) == built
    assert ensure_corpus(FIXTURES / "reviews.jsonl", cache, CorpusOptions(text_key="review")) == built
    with pytest.raises(UserError, match="is not a corpus"):
        ensure_corpus(tmp_path, cache, CorpusOptions(text_key="review"))


def test_preprocess_flags_make_the_corpus_options_the_manifest_records(tmp_path, log_messages):
    out = tmp_path / "corpus"
    argv = ["preprocess", str(FIXTURES / "reviews.tsv"), "--out", str(out), "--text-key", "review", "-split", "2,1,1",
            "-num_shards", "3", "-shuffle", "-seed", "5", "-input_format", "tsv", "-delim", "\t", "-keep_markup",
            "-to_ascii", "-max_length", "40", "-workers", "1"]  # fmt: skip
    assert cli.main(argv) == 0
    text_options = dataclasses.replace(PAPER_TEXT_OPTIONS, strip_tags=False, to_ascii=True, max_length=40)
    options = CorpusOptions(
        text_key="review", split="2,1,1", num_shards=3, shuffle=True, seed=5, text_options=text_options, fmt="tsv",
        delim="\t",
    )
    # The manifest's options are the corpus's cache key: recorded as they were before the options were a
    # dataclass (these keys, in this order), so that a corpus built then is still found up to date.
    recorded = json.loads((out / "manifest.json").read_text())["options"]
    keys = ["text_key", "split", "num_shards", "shuffle", "seed", "text_options", "fmt", "delim", "strict"]
    assert list(recorded) == keys
    assert recorded == options.recorded() == {
        "text_key": "review", "split": [2, 1, 1], "num_shards": 3, "shuffle": True, "seed": 5,
        "text_options": {"strip_tags": False, "unescape_html": True, "to_ascii": True, "newlines_to_spaces": True,
                         "collapse_whitespace": True, "front_pad": "\n ", "end_pad": " ", "max_length": 40},
        "fmt": "tsv", "delim": "\t", "strict": False,
    }
    messages = log_messages()
    stamp = (out / "train.bytes").stat().st_mtime_ns
    assert build_corpus(FIXTURES / "reviews.tsv", out, options, workers=2) == out  # the same options from Python
    assert messages == [f"{out} is up to date with its inputs and options: nothing to do"]
    assert (out / "train.bytes").stat().st_mtime_ns == stamp
    # Without -shuffle the seed deals nothing: any seed records null, and is the same corpus.
    assert CorpusOptions(text_key="t", seed=1).recorded() == CorpusOptions(text_key="t", seed=2).recorded()
    assert CorpusOptions(text_key="t", seed=1).recorded()["seed"] is None
    with pytest.raises(UserError, match="^-num_shards must be at least 1, not 0$"):
        build_corpus(FIXTURES / "reviews.tsv", tmp_path / "none", CorpusOptions(text_key="review", num_shards=0))
    with pytest.raises(UserError, match="^text_options must be a TextOptions, not dict$"):
        CorpusOptions(text_key="review", text_options={"strip_tags": True}).recorded()


def test_open_reports_missing_splits_and_damage(tmp_path):
    out = build_corpus(FIXTURES / "reviews.csv", tmp_path / "c", CorpusOptions(text_key="review"))
    with pytest.raises(UserError) as error:
        ByteCorpus.open(out, "valid")
    assert str(error.value) == f"corpus {out} has no 'valid' split; it has train"
    with open(out / "train.bytes", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(UserError) as error:
        ByteCorpus.open(out)
    assert "is damaged: train.bytes should hold" in str(error.value)
    with pytest.raises(UserError, match="is not a corpus"):
        ByteCorpus.open(tmp_path)


def test_preprocess_command(tmp_path, capsys):
    out = tmp_path / "corpus"
    argv = ["preprocess", str(FIXTURES / "reviews.tsv"), "--text-key", "review", "--out", str(out), "-split", "2,1,1"]
    assert cli.main(argv) == 0
    assert [len(corpus_texts(out, s)) for s in ("train", "valid", "test")] == [2, 1, 1]
    assert cli.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert cli.main(["preprocess", str(FIXTURES / "reviews.tsv"), "--text-key", "body", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {FIXTURES / 'reviews.tsv'}: no column 'body'; the header has 'id', 'stars', 'review'"]


def test_real_imdb_and_amazon_corpora(shared_data, tmp_path):
    imdb = build_corpus(
        shared_data / "imdb" / "train.csv.gz", tmp_path / "imdb", CorpusOptions(text_key="text", split="1000,1,1")
    )
    manifest = json.loads((imdb / "manifest.json").read_text())
    assert manifest["sources"][0]["sha256"] == "0e4959a9cd07840243ae6bf2cd28eca2ba4d10b6f88da1219747617065d0b606"
    assert [manifest["splits"][s]["texts"] for s in ("train", "valid", "test")] == [24950, 25, 25]
    assert manifest["read"]["skipped"] == {}
    train = ByteCorpus.open(imdb)
    assert b"<br" not in bytes(train.data[:2_000_000])
    with gzip.open(shared_data / "imdb" / "train.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        first_rows = [next(rows)[3] for _ in range(4)]
    # Rows 0 and 3 are the first two training texts (row 1 goes to valid, row 2 to test).
    assert train.text(0) == preprocess_text(first_rows[0], PAPER_TEXT_OPTIONS)
    assert train.text(1) == preprocess_text(first_rows[3], PAPER_TEXT_OPTIONS)
    assert "<br />" in first_rows[1]
    valid = ByteCorpus.open(imdb, "valid")
    assert valid.text(0) == preprocess_text(first_rows[1], PAPER_TEXT_OPTIONS)
    assert b"<br" not in valid.text(0) and b"so what? Equally annoying" in valid.text(0)
    amazon = build_corpus(
        shared_data / "amazon" / "reviews.jsonl.gz", tmp_path / "amazon", CorpusOptions(text_key="reviewText")
    )
    corpus = ByteCorpus.open(amazon)
    with gzip.open(shared_data / "amazon" / "reviews.jsonl.gz", "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())["reviewText"]
    assert corpus.num_texts == 8000 and corpus.text(0) == preprocess_text(first, PAPER_TEXT_OPTIONS)
    batch = next(iter(TransposedBatcher(corpus, batch_size=4, seq_length=64)))
    assert batch.inputs.shape == (4, 64) and bytes(batch.inputs[0, :5].tolist()) == b"\n Sph"


def test_one_text_key_per_input(tmp_path, capsys):
    amazon_like = tmp_path / "amazon.jsonl"
    amazon_like.write_text('{"reviewText": "Great blender."}\n{"reviewText": "Broke in a week."}\n')
    out = build_corpus(
        [FIXTURES / "reviews.tsv", amazon_like], tmp_path / "corpus", CorpusOptions(text_key="review,reviewText")
    )
    texts = corpus_texts(out, "train")
    tsv_corpus = build_corpus(FIXTURES / "reviews.tsv", tmp_path / "tsv", CorpusOptions(text_key="review"))
    tsv_texts = corpus_texts(tsv_corpus, "train")
    assert texts[: len(tsv_texts)] == tsv_texts
    assert texts[len(tsv_texts):] == [b"\n Great blender. ", b"\n Broke in a week. "]
    capsys.readouterr()  # the two builds' summaries (logged): only the command's error is checked below
    argv = ["preprocess", str(FIXTURES / "reviews.tsv"), str(amazon_like), "-text_key", "a,b,c", "-out", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: -text_key 'a,b,c' names 3 keys for 2 inputs: give one key, or one per input"
    )
