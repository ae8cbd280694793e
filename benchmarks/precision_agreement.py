"""The shipped classifier on SST-2 test from fp32 and from bf16 features: accuracies, label agreement, speed.

The classifier records the precision it was fitted in (bf16), but `classify` featurizes in
`auto` (fp32 on a CPU without native bf16): this measures what that changes.

    .venv/bin/python benchmarks/precision_agreement.py [--data ../shared/data] [--json PATH]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sentiment_discovery.foundation import storage
from sentiment_discovery.data.readers import read_labeled
from sentiment_discovery.transfer import SentimentClassifier

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--split", default="test", help="SST-2 split file (test, dev, train)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--json", type=Path, default=ROOT / "experiments" / "benchmarks" / "precision_agreement.json")
    args = parser.parse_args(argv)
    data = read_labeled(args.data / "sst2" / f"{args.split}.csv", "sentence", "label")
    texts, labels = data.texts[: args.limit], data.labels[: args.limit]
    results = {}
    for precision in ("fp32", "bf16"):
        classifier = SentimentClassifier.load(precision=precision)
        started = time.perf_counter()
        features = classifier.features(texts, progress=True)
        seconds = time.perf_counter() - started
        probabilities = classifier.predict_proba(features)[:, 1]
        predicted = classifier.predict(features)
        results[precision] = {
            "accuracy": float(np.mean(predicted == labels)),
            "seconds": seconds,
            "texts_per_s": len(texts) / seconds,
            "predicted": predicted,
            "probabilities": probabilities,
        }
    fp32, bf16 = results["fp32"], results["bf16"]
    report = {
        "benchmark": "precision_agreement",
        "split": args.split,
        "texts": len(texts),
        "recorded_precision": SentimentClassifier.load().model.precision,
        "fp32_accuracy": fp32["accuracy"],
        "bf16_accuracy": bf16["accuracy"],
        "accuracy_difference_points": 100 * (bf16["accuracy"] - fp32["accuracy"]),
        "label_agreement": float(np.mean(fp32["predicted"] == bf16["predicted"])),
        "max_probability_difference": float(np.abs(fp32["probabilities"] - bf16["probabilities"]).max()),
        "fp32_texts_per_s": fp32["texts_per_s"],
        "bf16_texts_per_s": bf16["texts_per_s"],
        "threads": torch.get_num_threads(),
        "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average": os.getloadavg(),
    }
    print(f"SST-2 {args.split} ({len(texts)} texts), shipped classifier (recorded precision {report['recorded_precision']}):")
    print(f"  accuracy from fp32 features {100 * fp32['accuracy']:.2f} %, from bf16 features {100 * bf16['accuracy']:.2f} % "
          f"({report['accuracy_difference_points']:+.2f} points)")
    print(f"  same label on {100 * report['label_agreement']:.2f} % of the texts; "
          f"probabilities differ by at most {report['max_probability_difference']:.4f}")
    print(f"  featurizing: fp32 {fp32['texts_per_s']:.1f} texts/s, bf16 {bf16['texts_per_s']:.1f} texts/s "
          f"({report['threads']} threads)")
    storage.write_json(args.json, report)
    print(f"wrote {args.json}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
