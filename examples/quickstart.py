"""The quick start (`make demo`): the shipped model on a few sentences, then sentiment transfer on SST-2.

1. `classify` labels a handful of sentences with the shipped model and its SST-2 classifier
   (the model fine-tuned on SST-2 with its head).
2. `visualize` draws the sentiment unit and the classifier's P(positive) so far over two of
   them (PNG + HTML), and writes a review with the pre-trained model's unit held positive and
   one with it held negative.
3. If SST-2 is at hand (`$SENTIMENT_DISCOVERY_DATA/sst2`, by default `../shared/data/sst2`,
   or downloadable), `transfer` fits the L1 logistic regression on the pre-trained model's
   mean-pooled features and prints the results in the 2017 format.

Everything is written under ./experiments/quickstart/.
"""

import os
import shutil
import sys
from pathlib import Path

from sentiment_discovery import cli, defaults

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))

SENTENCES = [
    "This is one of the best films I have seen in years.",
    "A dull, lifeless script and wooden acting.",
    "The food was cold and the waiter was rude.",
    "I loved every minute of it and can't wait to go back!",
    "It broke after two days. Avoid.",
]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(*argv: str) -> None:
    status = cli.main(list(argv))
    if status:
        sys.exit(status)


def sst2_directory() -> Path | None:
    local = DATA / "sst2"
    if all((local / f"{name}.csv").is_file() for name in ("train", "dev", "test")):
        return local
    downloaded = EXPERIMENTS / "data" / "sst2"
    print(f"SST-2 is not at {local}: trying to download it to {downloaded}", flush=True)
    if cli.main(["download", "sst2", "--to", str(downloaded)]) == 0:
        return downloaded
    return None


def main() -> None:
    common = ["-experiment_dir", str(EXPERIMENTS), "-experiment_name", "quickstart"]

    step("classify: probability positive, label, text")
    run("classify", *[arg for sentence in SENTENCES for arg in ("--text", sentence)])

    step("visualize: the sentiment unit, character by character")
    for sentence in SENTENCES[:2]:
        run("visualize", "--text", sentence, *common)

    # Generation and transfer read the pre-trained model: the default one was fine-tuned on SST-2.
    pretrained = defaults.default_directory() / defaults.FROZEN_SUBDIR / defaults.MODEL_SUBDIR
    step("visualize -generate: the unit held positive (+1), then negative (-1)")
    for value in ("+1", "-1"):
        run("visualize", "--text", "I bought this for my son and", "-generate", "-seq_length", "200",
            "-overwrite", value, "-seed", "1", "-load_model", str(pretrained), *common)

    sst2 = sst2_directory()
    if sst2 is None:
        print("\nSST-2 is not available here; skipping sentiment transfer.")
        return
    step(f"transfer: the pre-trained model's features on SST-2 ({sst2})")
    # Transfer records the unit it finds in the model's config.json: give it a copy, so
    # that the package's own files stay as shipped.
    model = EXPERIMENTS / "quickstart" / "model" / "shipped"
    if not model.is_dir():
        shutil.copytree(pretrained, model)
    # Mean-pooled features, as the shipped classifier was fitted (docs/transfer.md, "Pooling").
    run("transfer", *common, "-load_model", str(model), "-precision", "bf16", "-pooling", "mean",
        "-no_data_efficiency", "-train", str(sst2 / "train.csv"), "-valid", str(sst2 / "dev.csv"),
        "-test", str(sst2 / "test.csv"), "-text_key", "sentence", "-label_key", "label")


if __name__ == "__main__":
    main()
