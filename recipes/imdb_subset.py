"""Write the class-stratified IMDB subsets that docs/results.md evaluates on.

    python recipes/imdb_subset.py --size 6000 --out /tmp/runs/imdb6000

Featurizing all 50,000 IMDB reviews (65 MB) takes most of an hour on a 2-core CPU, so the
results use 6,000 train and 6,000 test reviews, drawn exactly as
``benchmarks/sentence_embedding_baseline.py --imdb_limit 6000`` draws them (same function,
seeds 1234 and 1235), so that every system in the table sees the same reviews.
"""

import argparse
import csv
import gzip
import os
from pathlib import Path

import numpy as np

from sentiment_discovery.transfer import stratified_sample

DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for offset, split in enumerate(("train", "test")):
        with gzip.open(Path(args.data) / "imdb" / f"{split}.csv.gz", "rt", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = list(reader)
        labels = np.array([int(row[header.index("label")]) for row in rows])
        chosen = stratified_sample(labels, args.size, np.random.default_rng(args.seed + offset))
        path = out / f"{split}.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows[i] for i in sorted(chosen))
        print(f"{path}: {len(chosen)} of {len(rows)} reviews, {int(labels[chosen].sum())} positive")


if __name__ == "__main__":
    main()
