"""Write the multi-domain training, selection and report files the default classifier is built from.

    python recipes/domain_mix.py --out /tmp/runs/domain_mix

Six domains, all from ``../shared/data`` (or ``SENTIMENT_DISCOVERY_DATA``), each with its own
held-out part for selection:

| domain | what | train | selection |
|---|---|---|---|
| ``sst2`` | SST-2 film sentences | all of SST-2 train | SST-2 dev |
| ``imdb_review`` | IMDB film reviews (cut to 256 bytes when trained on) | 2,000 IMDB train reviews | 400 other IMDB train reviews |
| ``imdb_sentence`` | sentences of IMDB reviews | 2,500 | 400 |
| ``amazon_review`` | Amazon product reviews (books, DVD, electronics, kitchen) | 3,500 | 400 |
| ``amazon_summary`` | their one-line titles (``summary``) | 5,000 | 400 |
| ``amazon_sentence`` | sentences of Amazon reviews | 3,500 | 400 |

The Amazon reviews are split by review first (6,000 train, 1,000 selection, 1,000 report,
stratified by product domain and label), so a review's text, title and sentences all fall in
one part; so are the IMDB train reviews (sentences of the selection reviews never train). The
training sizes keep the film (11,420 texts) and product (12,000) halves about equal, so each
domain is a fixed share of every epoch, with SST-2 kept whole.

Labels: a review's label (1 = positive; the Amazon set's 4-5 stars, IMDB's 7-10) is given to its
title and its sentences. Neutral reviews: the Amazon set holds no 3-star reviews (its authors
left them out) and IMDB none rated 5 or 6; a 3-star review met here would be dropped.

Sentences: a review (IMDB's ``<br />`` turned into spaces first) is split after ``.``, ``!`` or
``?`` followed by white space and a capital letter, digit or quote (a simple rule, no library);
sentences of 20 to 400 characters count, and each review gives its first and its last (where
reviews state their verdict), so a sentence's label is as often right as a rule can make it.

No text is in two parts: a text (compared after collapsing white space and case) that is in the
selection part is dropped from the report part, one in either is dropped from training, and
repeats within a part are dropped (short titles such as "Great book" repeat across reviews).
Never read: SST-2 test, IMDB test, MR (SST-2's source), CR, MPQA and SUBJ, which stay for
reporting (``benchmarks/default_classifier_report.py``).

Files, columns ``label,text,domain``: ``train.csv`` (shuffled), ``select.csv`` (the held-out
selection set: the checkpoint, the recipe, the temperature and the n-gram blend are chosen on
its mean accuracy over domains) and ``report_amazon.csv`` (held-out Amazon reviews, titles and
sentences, only reported); ``manifest.json`` has the counts. Seeded (``--seed``), so the files
are reproducible.
"""

import argparse
import collections
import csv
import gzip
import json
import os
import random
import re
from pathlib import Path

from sentiment_discovery.foundation import storage

DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
FILM, PRODUCT = ("sst2", "imdb_review", "imdb_sentence"), ("amazon_review", "amazon_summary", "amazon_sentence")
DOMAINS = FILM + PRODUCT
TRAIN_SIZES = {"imdb_review": 2_000, "imdb_sentence": 2_500, "amazon_review": 3_500, "amazon_summary": 5_000,
               "amazon_sentence": 3_500}  # sst2: all of SST-2 train
SELECT_SIZE = 400  # per domain but sst2, whose selection part is all of SST-2 dev
AMAZON_TRAIN, AMAZON_SELECT, AMAZON_REPORT = 6_000, 1_000, 1_000
IMDB_SELECT_REVIEWS = 400
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
MIN_SENTENCE, MAX_SENTENCE = 20, 400

Row = tuple[int, str, str]  # label, text, domain


def sentences(review: str) -> list[str]:
    """The review's first and last sentence by the rule of the module docstring (one if they are the same)."""
    parts = [s.strip() for s in SENTENCE_END.split(review.replace("<br />", " ").replace("<br/>", " "))]
    parts = [s for s in parts if MIN_SENTENCE <= len(s) <= MAX_SENTENCE]
    if not parts:
        return []
    return [parts[0]] if len(parts) == 1 else [parts[0], parts[-1]]


def key(text: str) -> str:
    return " ".join(text.split()).casefold()


def read_sst2(path: Path) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [(int(row["label"]), row["sentence"]) for row in csv.DictReader(handle)]


def read_imdb_train(path: Path) -> list[tuple[int, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return [(int(row["label"]), row["text"]) for row in csv.DictReader(handle)]


def read_amazon(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [review for review in map(json.loads, handle) if float(review["overall"]) != 3.0]


def stratified_parts(reviews: list[dict], sizes: list[int], rng: random.Random) -> list[list[dict]]:
    """Reviews split into parts of the given sizes, each with the same share of every (domain, label)."""
    strata = collections.defaultdict(list)
    for review in reviews:
        strata[(review["domain"], int(review["label"]))].append(review)
    parts = [[] for _ in sizes]
    total = sum(sizes)
    for stratum in sorted(strata):
        members = strata[stratum]
        rng.shuffle(members)
        start = 0
        for part, size in zip(parts, sizes):
            count = round(len(members) * size / total)
            part.extend(members[start : start + count])
            start += count
        parts[-1].extend(members[start:])  # rounding leftovers
    for part in parts:
        rng.shuffle(part)
    return parts


def amazon_rows(reviews: list[dict]) -> dict[str, list[Row]]:
    rows = {domain: [] for domain in PRODUCT}
    for review in reviews:
        label = int(review["label"])
        rows["amazon_review"].append((label, review["reviewText"], "amazon_review"))
        if review["summary"].strip():
            rows["amazon_summary"].append((label, review["summary"], "amazon_summary"))
        rows["amazon_sentence"].extend((label, s, "amazon_sentence") for s in sentences(review["reviewText"]))
    return rows


def imdb_rows(reviews: list[tuple[int, str]], sentence_reviews: list[tuple[int, str]]) -> dict[str, list[Row]]:
    return {"imdb_review": [(label, text, "imdb_review") for label, text in reviews],
            "imdb_sentence": [(label, s, "imdb_sentence") for label, text in sentence_reviews for s in sentences(text)]}


def balanced_sample(rows: list[Row], size: int, rng: random.Random) -> list[Row]:
    """``size`` rows, half of each label where the rows allow it."""
    by_label = {0: [r for r in rows if r[0] == 0], 1: [r for r in rows if r[0] == 1]}
    for members in by_label.values():
        rng.shuffle(members)
    negatives = min(len(by_label[0]), size // 2)
    positives = min(len(by_label[1]), size - negatives)
    negatives = min(len(by_label[0]), size - positives)
    chosen = by_label[0][:negatives] + by_label[1][:positives]
    rng.shuffle(chosen)
    return chosen


def build(data: Path, seed: int) -> dict[str, list[Row]]:
    """The three parts (train, select, report_amazon) as rows."""
    rng = random.Random(seed)
    amazon_train, amazon_select, amazon_report = stratified_parts(
        read_amazon(data / "amazon" / "reviews.jsonl.gz"), [AMAZON_TRAIN, AMAZON_SELECT, AMAZON_REPORT], rng)
    imdb = read_imdb_train(data / "imdb" / "train.csv.gz")
    rng.shuffle(imdb)
    train_reviews = imdb[: TRAIN_SIZES["imdb_review"]]
    sentence_reviews = imdb[TRAIN_SIZES["imdb_review"] : 4 * TRAIN_SIZES["imdb_sentence"]]
    held_out = imdb[4 * TRAIN_SIZES["imdb_sentence"] : 4 * TRAIN_SIZES["imdb_sentence"] + 2 * IMDB_SELECT_REVIEWS]
    candidates = {"sst2": [(label, text, "sst2") for label, text in read_sst2(data / "sst2" / "train.csv")]}
    candidates |= imdb_rows(train_reviews, sentence_reviews) | amazon_rows(amazon_train)
    select_candidates = imdb_rows(held_out[:IMDB_SELECT_REVIEWS], held_out) | amazon_rows(amazon_select)
    select = [(label, text, "sst2") for label, text in read_sst2(data / "sst2" / "dev.csv")]
    for domain in DOMAINS[1:]:
        select += balanced_sample(select_candidates[domain], SELECT_SIZE, rng)
    select = _unique(select)
    select_keys = {key(text) for _, text, _ in select}
    report = _unique([row for rows in amazon_rows(amazon_report).values() for row in rows
                      if key(row[1]) not in select_keys])
    held_out_keys = select_keys | {key(text) for _, text, _ in report}
    train = []
    for domain in DOMAINS:
        seen, rows = set(), []
        for row in candidates[domain]:
            text_key = key(row[1])
            if text_key in held_out_keys or text_key in seen or not text_key:
                continue
            seen.add(text_key)
            rows.append(row)
        train += rows if domain == "sst2" else balanced_sample(rows, TRAIN_SIZES[domain], rng)
    rng.shuffle(train)
    return {"train": train, "select": select, "report_amazon": report}


def _unique(rows: list[Row]) -> list[Row]:
    """Rows without repeats of a text within the part (the first kept)."""
    seen, kept = set(), []
    for row in rows:
        if key(row[1]) not in seen:
            seen.add(key(row[1]))
            kept.append(row)
    return kept


def counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    table = {}
    for domain in DOMAINS:
        labels = [label for label, _, d in rows if d == domain]
        if labels:
            table[domain] = {"texts": len(labels), "positive": sum(labels)}
    return table


def write_csv(path: Path, rows: list[Row]) -> None:
    with storage.atomic_file(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text", "domain"])
        writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="the datasets' folder (default: %(default)s)")
    parser.add_argument("--out", required=True, help="folder to write train.csv, select.csv, report_amazon.csv into")
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    parts = build(data, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        write_csv(out / f"{name}.csv", rows)
        shown = ", ".join(f"{d} {c['texts']}" for d, c in counts(rows).items())
        print(f"{out / (name + '.csv')}: {len(rows)} texts ({shown})")
    storage.write_json(out / "manifest.json", {"seed": args.seed, "data": str(data),
                                               "parts": {name: counts(rows) for name, rows in parts.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
