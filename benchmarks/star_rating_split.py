"""Amazon reviews by star rating: a stratified 80/10/10 split for ``transfer -multiclass``.

Reads ``../shared/data/amazon/reviews.jsonl.gz`` (the label is ``overall``, the star rating;
the text ``reviewText``), drops reviews without text, cuts each text to its first
``--max-chars`` characters, and writes ``train.jsonl``, ``valid.jsonl`` and ``test.jsonl``
(``{"reviewText", "overall"}`` per line) to ``--out``: each class is shuffled with ``--seed``
and split 80/10/10 on its own, so every part has the classes' proportions. The measurement in
docs/results.md (More than two classes) was made on these files:

    .venv/bin/python benchmarks/star_rating_split.py --out /tmp/amazon_stars
    sentiment-discovery transfer -load_model src/sentiment_discovery/default_model/frozen/model \\
        -train /tmp/amazon_stars/train.jsonl -valid /tmp/amazon_stars/valid.jsonl \\
        -test /tmp/amazon_stars/test.jsonl -text_key reviewText -label_key overall \\
        -multiclass -pooling mean -no_data_efficiency
"""

import argparse
import collections
import gzip
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DATA / "amazon" / "reviews.jsonl.gz"))
    parser.add_argument("--out", required=True, help="directory for train.jsonl, valid.jsonl, test.jsonl")
    parser.add_argument("--max-chars", type=int, default=1000, help="keep each review's first characters")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with gzip.open(args.input, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rows = [row for row in rows if (row.get("reviewText") or "").strip()]
    labels = np.array([int(row["overall"]) for row in rows])
    rng = np.random.default_rng(args.seed)
    parts = {"train": [], "valid": [], "test": []}
    for label in sorted(set(labels.tolist())):
        rows_of_class = rng.permutation(np.flatnonzero(labels == label))
        train_end = round(len(rows_of_class) * 0.8)
        valid_end = train_end + round(len(rows_of_class) * 0.1)
        parts["train"] += list(rows_of_class[:train_end])
        parts["valid"] += list(rows_of_class[train_end:valid_end])
        parts["test"] += list(rows_of_class[valid_end:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, indices in parts.items():
        indices = rng.permutation(np.array(indices))
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for index in indices:
                record = {"reviewText": rows[index]["reviewText"][: args.max_chars], "overall": int(labels[index])}
                handle.write(json.dumps(record) + "\n")
        counts = collections.Counter(labels[indices].tolist())
        print(f"{name}: {len(indices)} reviews, by stars {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
