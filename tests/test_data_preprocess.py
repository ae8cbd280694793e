"""The paper's section-4 cleaning as the corpus builder applies it (``text.preprocess_text``)."""

import csv
import dataclasses
import gzip
import json
import re

from sentiment_discovery.foundation.text import PAPER_TEXT_OPTIONS, TextOptions, preprocess_text


def test_paper_cleaning_switch_by_switch():
    text = "A <b>bold</b>&nbsp;claim &amp; a\u00a0\u00a0café\r\n\n<br />  end "
    assert preprocess_text(text, PAPER_TEXT_OPTIONS) == "\n A bold claim & a café end ".encode("utf-8")
    keep_tags = dataclasses.replace(PAPER_TEXT_OPTIONS, strip_tags=False)
    assert preprocess_text("x<br />y", keep_tags) == b"\n x<br />y "
    ascii_only = dataclasses.replace(PAPER_TEXT_OPTIONS, to_ascii=True)
    assert preprocess_text("café – naïve", ascii_only) == b"\n cafe - naive "
    capped = dataclasses.replace(PAPER_TEXT_OPTIONS, max_length=4)
    assert preprocess_text("abcé", capped) == b"\n abc "  # é would be cut in half: dropped whole
    # Escaped markup is unescaped after tags are stripped, so it survives as text.
    assert preprocess_text("&lt;b&gt; is a tag", PAPER_TEXT_OPTIONS) == b"\n <b> is a tag "


def test_whitespace_collapse_matches_the_plain_rule_on_real_reviews(shared_data):
    """Every whitespace run becomes one space, exactly as re.sub(r"\\s+", " ") would do it."""
    with gzip.open(shared_data / "imdb" / "test.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        texts = [next(rows)[3] for _ in range(2000)]
    with gzip.open(shared_data / "amazon" / "reviews.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts += [json.loads(line)["reviewText"] for line, _ in zip(handle, range(2000))]
    texts += ["a\u00a0\u00a0b \t\n c\u2028d\x1c e  ", " x ", "\u3000y\u3000", "\t", "a \u00a0b"]
    options = TextOptions(unescape_html=False, newlines_to_spaces=False, collapse_whitespace=True)
    for text in texts:
        expected = ("\n " + re.sub(r"\s+", " ", text).strip() + " ").encode("utf-8")
        assert preprocess_text(text, options) == expected
