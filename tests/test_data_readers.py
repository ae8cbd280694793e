import gzip
import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from sentiment_discovery.data.readers import (
    EMPTY_TEXT,
    MISSING_TEXT,
    UNLABELED,
    ReadStats,
    apportion,
    binarize_labels,
    iter_texts,
    parse_split,
    read_labeled,
    read_texts,
    split_counts,
    split_indices,
)
from sentiment_discovery.foundation.errors import UserError
from sentiment_discovery.foundation.text import preprocess_text

FIXTURES = Path(__file__).parent / "fixtures"
REVIEWS = [
    'Loved it.<br /><br />The "twist" works, mostly.',
    "Dull &amp; slow, I left early",
    "Café scenes are gorgeous\tand the score soars",
    "Two hours\nI won't get back.",
]
STARS = [5, 1, 4, 2]


def write(path: Path, content: str | bytes) -> Path:
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.tsv", "reviews.json", "reviews.jsonl"])
def test_every_format_reads_the_same_texts_in_file_order(name, tmp_path):
    assert read_texts(FIXTURES / name, "review") == REVIEWS
    gzipped = tmp_path / (name + ".gz")
    gzipped.write_bytes(gzip.compress((FIXTURES / name).read_bytes()))
    assert read_texts(gzipped, "review") == REVIEWS


def test_txt_is_one_text_per_line_whatever_the_key(tmp_path):
    expected = [text.replace("\n", " ") for text in REVIEWS]
    assert read_texts(FIXTURES / "reviews.txt", "anything") == expected
    crlf = write(tmp_path / "crlf.txt.gz", "first\r\nsecond\r\n")
    assert read_texts(crlf, "text") == ["first", "second"]


def test_gzip_is_recognised_by_content_and_format_can_be_overridden(tmp_path):
    hidden = tmp_path / "reviews.data"
    hidden.write_bytes(gzip.compress((FIXTURES / "reviews.jsonl").read_bytes()))
    assert read_texts(hidden, "review", fmt="jsonl") == REVIEWS
    assert read_texts(hidden, "review", fmt="json") == REVIEWS
    piped = write(tmp_path / "reviews.csv", "a|review\n1|x, y\n")
    assert read_texts(piped, "review", delim="|") == ["x, y"]


def test_json_list_and_json_lines_are_both_accepted_as_json(tmp_path):
    lines = tmp_path / "reviews_Books.json"
    shutil.copy(FIXTURES / "reviews.jsonl", lines)
    assert read_texts(lines, "review") == REVIEWS
    listed = tmp_path / "one_line.json"
    listed.write_text(json.dumps([{"review": text} for text in REVIEWS]))
    assert read_texts(listed, "review") == REVIEWS
    assert read_texts(write(tmp_path / "empty.json", " [ ] \n"), "review") == []


def test_json_array_items_larger_than_the_read_buffer(tmp_path, monkeypatch):
    import sentiment_discovery.data.readers as readers

    monkeypatch.setattr(readers, "_CHUNK_CHARS", 7)
    texts = ["x" * 50, "short", "é" * 30]
    path = write(tmp_path / "big.json", "[\n" + ",\n".join(json.dumps({"t": t}) for t in texts) + "\n]\n")
    assert read_texts(path, "t") == texts


def test_labels_in_file_order_for_every_format():
    for name in ["reviews.csv", "reviews.tsv", "reviews.json", "reviews.jsonl"]:
        result = read_labeled(FIXTURES / name, "review", "stars", binarize_sent=True)
        assert result.texts == REVIEWS
        # Ratings 1..5 split at 3: 5 and 4 are positive.
        assert result.labels.tolist() == [1, 0, 1, 0]
        assert result.labels.dtype == np.int64


def test_binary_labels_stay_and_ratings_need_binarize_sent(tmp_path):
    path = write(tmp_path / "l.csv", "label,sentence\n1,good\n0,bad\n1.0,fine\n")
    assert read_labeled(path, "sentence", "label").labels.tolist() == [1, 0, 1]
    with pytest.raises(UserError) as error:
        read_labeled(FIXTURES / "reviews.csv", "review", "stars")
    assert str(error.value) == (
        f"{FIXTURES / 'reviews.csv'}: labels in 'stars' are not binary (found 1, 2, 4, 5); "
        "pass -binarize_sent to split them at the middle of their range"
    )


def test_binarize_splits_at_the_middle_of_the_observed_range():
    labels, ties = binarize_labels(np.array([1, 2, 3, 4, 5, 3]))
    assert labels.tolist() == [0, 0, 0, 1, 1, 0]
    assert ties == 2
    labels, ties = binarize_labels(np.array([1, 4, 7, 10]))  # IMDB ratings: middle 5.5
    assert labels.tolist() == [0, 0, 1, 1] and ties == 0
    with pytest.raises(UserError, match="every label is 3"):
        binarize_labels(np.array([3.0, 3.0]))


def test_missing_labels_need_drop_unlabeled(tmp_path):
    path = write(tmp_path / "l.jsonl", '{"t": "a", "y": 1}\n{"t": "b"}\n{"t": "c", "y": null}\n{"t": "d", "y": 0}\n')
    with pytest.raises(UserError) as error:
        read_labeled(path, "t", "y")
    assert str(error.value) == f"{path}:2: no label in 'y'; pass -drop_unlabeled to skip unlabeled rows"
    with pytest.warns(UserWarning, match="2 skipped \\(2 missing label\\)"):
        result = read_labeled(path, "t", "y", drop_unlabeled=True)
    assert result.texts == ["a", "d"]
    assert result.labels.tolist() == [1, 0]
    assert result.skipped == {UNLABELED: 2}


def test_non_numeric_label_is_a_clear_error(tmp_path):
    path = write(tmp_path / "l.csv", "label,sentence\n1,good\npos,great\n")
    with pytest.raises(UserError) as error:
        read_labeled(path, "sentence", "label")
    assert str(error.value) == (
        f"{path}:3: label 'pos' in 'label' is not a number; labels must be 0/1 (or numeric ratings with -binarize_sent)"
    )
    named = write(tmp_path / "named.tsv", "sentence\tlabel\ngood\tpos\nbad\tneg\nmeh\tmixed\n")
    with pytest.raises(UserError) as error:
        read_labeled(named, "sentence", "label", label_map={"neg": 0, "pos": 1})
    assert str(error.value) == (
        f"{named}:4: label 'mixed' in 'label' is not a number or one of 'neg', 'pos'; "
        "labels must be 0/1 (or numeric ratings with -binarize_sent)"
    )
    named.write_text("sentence\tlabel\ngood\tpos\nbad\tneg\n")
    assert read_labeled(named, "sentence", "label", label_map={"neg": 0, "pos": 1}).labels.tolist() == [1, 0]


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(UserError) as error:
        read_texts(tmp_path / "nope.csv", "text")
    assert str(error.value) == f"input file {tmp_path / 'nope.csv'} does not exist"
    odd = write(tmp_path / "reviews.xlsx", "x")
    with pytest.raises(UserError) as error:
        read_texts(odd, "text")
    assert str(error.value) == (
        f"{odd}: unknown extension '.xlsx'; expected one of .csv, .json, .jsonl, .ndjson, .tsv, .txt "
        "(optionally .gz), or name the format with -input_format (csv/tsv/json/jsonl/txt)"
    )
    with pytest.raises(UserError, match="unknown input format 'xml'"):
        read_texts(odd, "text", fmt="xml")


def test_missing_key_names_the_file_the_key_and_the_keys_that_exist(tmp_path):
    with pytest.raises(UserError) as error:
        read_texts(FIXTURES / "reviews.csv", "text")
    assert str(error.value) == f"{FIXTURES / 'reviews.csv'}: no column 'text'; the header has 'id', 'stars', 'review'"
    with pytest.raises(UserError) as error:
        read_texts(FIXTURES / "reviews.jsonl", "reviewText")
    assert str(error.value) == (
        f"{FIXTURES / 'reviews.jsonl'}: the first record (line 1) has no key 'reviewText'; its keys are 'id', 'stars', 'review'"
    )
    with pytest.raises(UserError) as error:
        read_labeled(FIXTURES / "reviews.json", "review", "label")
    assert "has no key 'label'; its keys are 'id', 'stars', 'review'" in str(error.value)
    with pytest.raises(UserError) as error:  # a TSV read as CSV: one column
        read_texts(FIXTURES / "reviews.tsv", "review", fmt="csv")
    assert str(error.value).endswith("the header has 'id\\tstars\\treview'; is ',' the right -delim?")


def test_malformed_csv_names_file_and_line(tmp_path):
    short = write(tmp_path / "short.csv", "id,text\n1,fine\n2\n")
    with pytest.raises(UserError) as error:
        read_texts(short, "text")
    assert str(error.value) == (
        f"{short}:3: malformed CSV: 1 fields where the header has 2 (check -delim ',' and the quoting)"
    )
    unclosed = write(tmp_path / "unclosed.csv", 'id,text\n1,fine\n2,"never closed\n3,more\n')
    with pytest.raises(UserError) as error:
        read_texts(unclosed, "text")
    assert str(error.value) == f"{unclosed}:3: malformed CSV in the row starting here: unexpected end of data"
    stray = write(tmp_path / "stray.csv", 'id,text\n1,"quoted"tail\n')
    with pytest.raises(UserError, match=re.escape(f"{stray}:2: malformed CSV")):
        read_texts(stray, "text")


def test_malformed_json_names_file_and_line(tmp_path):
    lines = write(tmp_path / "bad.jsonl.gz", '{"t": "a"}\n{"t": "b"\n')
    with pytest.raises(UserError) as error:
        read_texts(lines, "t")
    assert str(error.value) == f"{lines}:2: malformed JSON Lines record: Expecting ',' delimiter (column 10)"
    array = write(tmp_path / "bad.json", '[\n{"t": "a"},\n{"t": "b",}\n]')
    with pytest.raises(UserError) as error:
        read_texts(array, "t")
    assert str(error.value) == f"{array}:3: malformed JSON: Expecting property name enclosed in double quotes"
    unclosed = write(tmp_path / "unclosed.json", '[{"t": "a"},\n{"t": "b"}\n')
    with pytest.raises(UserError) as error:
        read_texts(unclosed, "t")
    assert str(error.value) == f"{unclosed}:3: malformed JSON: expected ',' or ']' after list item 2, found 'the end of the file'"
    not_objects = write(tmp_path / "numbers.json", "[1, 2]")
    with pytest.raises(UserError) as error:
        read_texts(not_objects, "t")
    assert str(error.value) == f"{not_objects}:1: expected a JSON object, found int"
    neither = write(tmp_path / "csv_really.json", "t\nhello\n")
    with pytest.raises(UserError) as error:
        read_texts(neither, "t")
    assert str(error.value) == f"{neither}: expected a JSON list of objects or JSON Lines, but the file starts with 't'"


def test_invalid_utf8_is_replaced_and_counted_or_fails_with_strict(tmp_path):
    path = write(tmp_path / "bad.csv", b"id,text\n1,caf\xe9 ok\n2,fine\n")
    stats = ReadStats()
    with pytest.warns(UserWarning, match="1 with invalid UTF-8 replaced by U\\+FFFD"):
        texts = read_texts(path, "text", stats=stats)
    assert texts == ["caf\ufffd ok", "fine"]
    assert stats.invalid_utf8_replaced == 1
    assert preprocess_text(texts[0]) == "\n caf\ufffd ok ".encode("utf-8")
    with pytest.raises(UserError) as error:
        read_texts(path, "text", strict=True)
    assert str(error.value) == f"{path}:2: invalid UTF-8 in 'text' (without -strict it is replaced and counted)"


def test_empty_texts_and_later_missing_keys_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "r.jsonl", '{"t": "one"}\n\n{"t": "  "}\n{"other": 1}\n{"t": null}\n{"t": "two"}\n')
    stats = ReadStats()
    assert list(iter_texts(path, "t", stats=stats)) == ["one", "two"]
    assert stats.records == 5
    assert stats.skipped == {EMPTY_TEXT: 1, MISSING_TEXT: 2}
    assert stats.summary() == "5 records, 3 skipped (1 empty text, 2 missing text key)"
    with pytest.raises(UserError) as error:
        read_texts(path, "t", strict=True)
    assert str(error.value) == f"{path}:3: empty text in 't' (-strict stops here; without it the row is skipped)"


def test_clean_reads_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_texts(FIXTURES / "reviews.csv", "review")


def test_split_parsing():
    assert parse_split("1000,1,1") == (1000.0, 1.0, 1.0)
    assert parse_split("0.9") == pytest.approx((0.9, 0.1))
    assert parse_split(1.0) == (1.0,)
    assert split_counts("1000,1,1") == (1000, 1, 1)
    assert split_counts("0.9") == (9, 1)
    assert split_counts("0.8,0.1,0.1") == (8, 1, 1)
    for bad, message in [
        ("a,b", "-split 'a,b': expected numbers like 1000,1,1 or a fraction like 0.9"),
        ("1.5", "-split 1.5: a single value is the training fraction, in (0, 1]"),
        ("1,1,1,1", "-split '1,1,1,1': at most three parts (train, validation, test)"),
        ("0,1", "-split '0,1': proportions must be finite, at least 0, and train above 0"),
    ]:
        with pytest.raises(UserError) as error:
            parse_split(bad)
        assert str(error.value) == message


def test_split_indices_are_proportional_complete_and_reproducible():
    parts = split_indices(1002 * 3 + 5, "1000,1,1", seed=7)
    assert [len(part) for part in parts] == [3005, 3, 3]  # 3004.99, 3.005, 3.005 by largest remainder
    assert sorted(np.concatenate(parts).tolist()) == list(range(3011))
    again = split_indices(3011, "1000,1,1", seed=7)
    assert all((a == b).all() for a, b in zip(parts, again))
    other = split_indices(3011, "1000,1,1", seed=8)
    assert not (parts[0] == other[0]).all()
    train, valid = split_indices(10, 0.9, seed=None)
    assert train.tolist() == list(range(9)) and valid.tolist() == [9]
    # Tiny sets still give every non-empty part one index.
    assert [len(part) for part in split_indices(3, "1000,1,1")] == [1, 1, 1]
    assert apportion(1002, (1000, 1, 1)).tolist() == [1000, 1, 1]
    assert apportion(1002, (0.9, 0.1)).tolist() == [902, 100]


def test_json_lines_longer_than_the_read_buffer(tmp_path, monkeypatch):
    import sentiment_discovery.data.readers as readers

    monkeypatch.setattr(readers, "_CHUNK_CHARS", 5)
    texts = ["a" * 23, "b", "c" * 11]
    path = write(tmp_path / "long.jsonl", "\n".join(json.dumps({"t": t}) for t in texts))  # no final newline
    assert read_texts(path, "t") == texts
