"""Bag-of-n-grams baseline for sentiment transfer: TF-IDF + logistic regression on the same splits.

The comparison the paper's sentiment neuron has to beat at small scale. Reads the same
files as ``sentiment-discovery transfer`` with the same reader, holds out validation from
train exactly as transfer does (``-split`` and ``-seed``) when there is no validation
file, chooses C on validation accuracy, and reports train/valid/test accuracy for word
n-grams, character n-grams and both together. Prints a table and writes JSON.

    .venv/bin/python benchmarks/tfidf_baseline.py                       # SST-2 from ../shared/data
    .venv/bin/python benchmarks/tfidf_baseline.py --train ../shared/data/imdb/train.csv.gz \\
        --test ../shared/data/imdb/test.csv.gz --text-key text --json imdb_tfidf.json
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
# Wider than transfer's 2^-8..2^0: sparse TF-IDF rows have norm 1, so useful C are larger.
C_GRID = tuple(float(2.0**power) for power in range(-2, 7))

FEATURES = {
    "word 1-2 grams": dict(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True),
    "char 1-5 grams": dict(analyzer="char_wb", ngram_range=(1, 5), min_df=2, sublinear_tf=True),
}


def vectorizer(name: str):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    if name == "word + char":
        return FeatureUnion([(key, TfidfVectorizer(**options)) for key, options in FEATURES.items()])
    return TfidfVectorizer(**FEATURES[name])


def read_splits(args) -> dict:
    """train/valid/test texts and labels, split the way ``transfer`` splits them."""
    from sentiment_discovery.data.readers import read_labeled, split_indices

    def read(path):
        data = read_labeled(path, args.text_key, args.label_key, binarize_sent=args.binarize_sent,
                            drop_unlabeled=args.drop_unlabeled, any_labels=args.multiclass)
        return list(data.texts), data.labels

    splits = {"train": read(args.train)}
    if args.valid:
        splits["valid"] = read(args.valid)
    else:
        texts, labels = splits["train"]
        kept, held_out = split_indices(len(texts), args.split, seed=args.seed)
        splits["train"] = ([texts[i] for i in kept], labels[kept])
        splits["valid"] = ([texts[i] for i in held_out], labels[held_out])
    if args.test:
        splits["test"] = read(args.test)
    return splits


def evaluate(name: str, splits: dict, seed: int) -> dict:
    """Fit the vectorizer on train, sweep C on validation, report accuracies of the chosen C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    start = time.perf_counter()
    vectors = vectorizer(name)
    train_texts, train_labels = splits["train"]
    matrices = {"train": vectors.fit_transform(train_texts)}
    for split in ("valid", "test"):
        if split in splits:
            matrices[split] = vectors.transform(splits[split][0])
    sweep = []
    for C in C_GRID:
        model = LogisticRegression(C=C, solver="liblinear", random_state=seed)
        if len(set(train_labels.tolist())) > 2:  # --multiclass: one-vs-rest, as transfer -multiclass fits
            model = OneVsRestClassifier(model)
        model.fit(matrices["train"], train_labels)
        sweep.append((model.score(matrices["valid"], splits["valid"][1]), C, model))
    best = max(sweep, key=lambda item: (item[0], -item[1]))  # ties: the smaller C
    model = best[2]
    accuracies = {split: float(model.score(matrices[split], splits[split][1])) for split in matrices}
    return {
        "features": name,
        "vocabulary": int(matrices["train"].shape[1]),
        "C": best[1],
        "valid_accuracy_by_C": [{"C": C, "valid_accuracy": float(score)} for score, C, _ in sweep],
        **{f"{split}_accuracy": accuracies.get(split) for split in ("train", "valid", "test")},
        "seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(DATA / "sst2" / "train.csv"))
    parser.add_argument("--valid", default=None, help="default: SST-2 dev when --train is SST-2 train, else held out")
    parser.add_argument("--test", default=None, help="default: SST-2 test when --train is SST-2 train")
    parser.add_argument("--text-key", default="sentence")
    parser.add_argument("--label-key", default="label")
    parser.add_argument("--split", type=float, default=0.9, help="as transfer's -split, without --valid")
    parser.add_argument("--seed", type=int, default=1234, help="as transfer's -seed (default 1234, transfer's too)")
    parser.add_argument("--binarize-sent", action="store_true")
    parser.add_argument("--drop-unlabeled", action="store_true")
    parser.add_argument("--multiclass", action="store_true", help="as transfer's -multiclass: every label a class")
    parser.add_argument("--json", default=str(ROOT / "experiments" / "benchmarks" / "tfidf_baseline.json"))
    args = parser.parse_args()
    if args.train == str(DATA / "sst2" / "train.csv"):
        args.valid = args.valid or str(DATA / "sst2" / "dev.csv")
        args.test = args.test or str(DATA / "sst2" / "test.csv")

    splits = read_splits(args)
    sizes = {split: len(texts) for split, (texts, _) in splits.items()}
    print(f"texts: {sizes}", file=sys.stderr)
    rows = [evaluate(name, splits, args.seed) for name in (*FEATURES, "word + char")]

    def percent(value):
        return "    --" if value is None else f"{100 * value:6.2f}"

    print(f"{'features':<16} {'vocab':>8} {'C':>6} {'train':>6} {'valid':>6} {'test':>6} {'seconds':>8}")
    for row in rows:
        print(f"{row['features']:<16} {row['vocabulary']:>8} {row['C']:>6g} {percent(row['train_accuracy'])} "
              f"{percent(row['valid_accuracy'])} {percent(row['test_accuracy'])} {row['seconds']:>8.2f}")
    report = {
        "benchmark": "tfidf_baseline",
        "files": {"train": args.train, "valid": args.valid, "test": args.test},
        "split": None if args.valid else args.split,
        "seed": args.seed,
        "texts": sizes,
        "c_grid": list(C_GRID),
        "results": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    output = Path(args.json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
