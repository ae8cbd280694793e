"""Write the labelled review files the default classifier's first fine-tuning stage reads.

    python recipes/review_mix.py --out /tmp/runs/reviews

``reviews_train.csv``: 10,000 IMDB train reviews drawn at random plus all 8,000 labelled Amazon
reviews (books, DVD, electronics, kitchen), shuffled; ``imdb_valid.csv``: 1,000 other IMDB train
reviews (validation: it chooses the kept weights); ``imdb_test.csv``: 2,000 IMDB test reviews
(only reported). Columns ``label,text``, 1 = positive. Never SST-2 (the second stage is
chosen on its dev set and reported on its test set), never MR (SST-2 was built from its
sentences), never CR (kept as held-out plain review text, benchmarks/default_classifier_report.py).
The draws are fixed (``random.Random(7)``), so the files, and the recipe, are reproducible.
"""

import argparse
import csv
import gzip
import json
import os
import random
from pathlib import Path

from sentiment_discovery.foundation import storage

DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
IMDB_TRAIN, IMDB_VALID, IMDB_TEST = 10_000, 1_000, 2_000


def read_imdb(path: Path) -> list[tuple[int, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return [(int(row["label"]), row["text"]) for row in csv.DictReader(handle)]


def read_amazon(path: Path) -> list[tuple[int, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [(int(review["label"]), review["reviewText"]) for review in map(json.loads, handle)]


def write_csv(path: Path, rows: list[tuple[int, str]]) -> None:
    with storage.atomic_file(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        writer.writerows(rows)
    print(f"{path}: {len(rows)} reviews, {sum(label for label, _ in rows)} positive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    imdb_train = read_imdb(data / "imdb" / "train.csv.gz")
    imdb_test = read_imdb(data / "imdb" / "test.csv.gz")
    amazon = read_amazon(data / "amazon" / "reviews.jsonl.gz")
    order = list(range(len(imdb_train)))
    rng.shuffle(order)
    train = [imdb_train[i] for i in order[:IMDB_TRAIN]] + amazon
    valid = [imdb_train[i] for i in order[IMDB_TRAIN : IMDB_TRAIN + IMDB_VALID]]
    rng.shuffle(train)
    test = rng.sample(imdb_test, IMDB_TEST)
    write_csv(out / "reviews_train.csv", train)
    write_csv(out / "imdb_valid.csv", valid)
    write_csv(out / "imdb_test.csv", test)


if __name__ == "__main__":
    main()
