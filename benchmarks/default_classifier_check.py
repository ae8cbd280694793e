"""The shipped default classifier (or any saved one) on SST-2 dev and test and on plain review sentences.

Measures what a user gets: accuracy on the SST-2 splits exactly as ``classify`` computes it
(the shipped weights, e.g. after their bfloat16 cast), and the label of each of the quick
start's five sentences and of a dozen plain, unambiguous review sentences, against the
label a reader would give, and accuracy on two sets of plain review text that no shipped
classifier was trained on: the CR customer-review sentences (Hu & Liu, 2004) and the titles
("summary") of the Amazon reviews (a classifier trained on those reviews' bodies has seen
their topics, which the table says). Prints a table and the sentences the classifier gets wrong.

    .venv/bin/python benchmarks/default_classifier_check.py                 # the shipped default
    .venv/bin/python benchmarks/default_classifier_check.py --classifier RUN/finetune
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from sentiment_discovery import storage

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))

# (label a reader gives, sentence): the quick start's five (examples/quickstart.py), then a dozen more.
SENTENCES = [
    (1, "This is one of the best films I have seen in years."),
    (0, "A dull, lifeless script and wooden acting."),
    (0, "The food was cold and the waiter was rude."),
    (1, "I loved every minute of it and can't wait to go back!"),
    (0, "It broke after two days. Avoid."),
    (1, "Absolutely wonderful, I would recommend it to anyone."),
    (0, "Terrible service, I will never come back."),
    (1, "The battery lasts all day and the screen is gorgeous."),
    (0, "What a waste of money."),
    (1, "The acting was superb and the story kept me hooked."),
    (0, "I was bored to tears."),
    (1, "Great product, works perfectly."),
    (0, "The worst movie I have ever seen."),
    (1, "A delightful, heartwarming story."),
    (0, "It stopped working after a week and support never answered."),
    (1, "Fantastic value for the price."),
    (0, "The plot made no sense and the ending was awful."),
]
QUICKSTART = 5


def main(argv=None) -> int:
    from sentiment_discovery.data.readers import read_labeled
    from sentiment_discovery.transfer import SentimentClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default=None, help="classifier directory (default: the shipped one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    classifier = SentimentClassifier.load(args.classifier)
    results = {"classifier": str(classifier.source), "model": classifier.model.path, "splits": {}}
    for split in ("dev", "test"):
        path = DATA / "sst2" / f"{split}.csv"
        if not path.is_file():
            print(f"skipping SST-2 {split}: {path} not found", file=sys.stderr)
            continue
        data = read_labeled(path, "sentence", "label")
        began = time.perf_counter()
        accuracy = float(np.mean(classifier.predict(data.texts) == data.labels))
        results["splits"][split] = {"accuracy": accuracy, "texts": len(data.texts),
                                    "seconds": round(time.perf_counter() - began, 1)}
        print(f"SST-2 {split}: {100 * accuracy:.2f} % of {len(data.texts)}")
    for name, path, text_key in (("CR sentences", DATA / "cr" / "cr.csv", "sentence"),
                                 ("Amazon review titles", DATA / "amazon" / "reviews.jsonl.gz", "summary")):
        if not path.is_file():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        data = read_labeled(path, text_key, "label")
        began = time.perf_counter()
        accuracy = float(np.mean(classifier.predict(data.texts) == data.labels))
        majority = float(max(np.mean(data.labels), 1 - np.mean(data.labels)))
        results["splits"][name] = {"accuracy": accuracy, "texts": len(data.texts), "majority": majority,
                                   "seconds": round(time.perf_counter() - began, 1)}
        print(f"{name}: {100 * accuracy:.2f} % of {len(data.texts)} (majority class {100 * majority:.1f} %)")
    labels = np.array([label for label, _ in SENTENCES])
    probabilities = classifier.predict_proba([text for _, text in SENTENCES])[:, 1]
    right = (probabilities > 0.5) == (labels == 1)
    results["sentences"] = [{"text": text, "label": int(label), "p_positive": float(p), "correct": bool(ok)}
                            for (label, text), p, ok in zip(SENTENCES, probabilities, right)]
    print(f"quick start sentences: {int(right[:QUICKSTART].sum())}/{QUICKSTART} right; "
          f"others: {int(right[QUICKSTART:].sum())}/{len(SENTENCES) - QUICKSTART} right")
    for (label, text), p, ok in zip(SENTENCES, probabilities, right):
        print(f"{'  ' if ok else 'X '}{p:.4f}\t{'positive' if label else 'negative'}\t{text}")
    if args.json:
        storage.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
