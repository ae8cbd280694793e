"""The quick start (`make demo`): the shipped model on a few sentences, then sentiment transfer on SST-2.

1. `classify` labels a handful of sentences with the shipped model and its SST-2 classifier
   (the model fine-tuned on SST-2 with its head).
2. `visualize` draws the sentiment unit and the classifier's P(positive) so far over two of
   them (PNG + HTML), and writes a review with the pre-trained model's unit held positive and
   one with it held negative.
3. If SST-2 is at hand (`$SENTIMENT_DISCOVERY_DATA/sst2`, by default `../shared/data/sst2`,
   or downloadable), `transfer` fits the L1 logistic regression on the pre-trained model's
   mean-pooled features and prints the results in the 2017 format. Where the products run
   in fp32 on the CPU (no native bf16, see docs/performance.md), all of SST-2 would take
   about ten minutes on two cores: the demo then transfers on a stratified subset, says
   so, and prints the command for all of it.

Everything is written under ./experiments/quickstart/.
"""

import csv
import os
import random
import shlex
import sys
from pathlib import Path

from sentiment_discovery import cli, defaults

# The subset used where featurizing runs in fp32 on the CPU: texts per split, class proportions kept.
SUBSET_TEXTS = {"train": 1000, "dev": 300, "test": 600}

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


def stratified_subset(source: Path, destination: Path, seed: int = 0) -> Path:
    """SST-2's CSVs cut to :data:`SUBSET_TEXTS` rows each, drawn per label in proportion (seeded)."""
    destination.mkdir(parents=True, exist_ok=True)
    for split, count in SUBSET_TEXTS.items():
        with open(source / f"{split}.csv", newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header, rows = reader.fieldnames, list(reader)
        by_label: dict[str, list[dict]] = {}
        for row in rows:
            by_label.setdefault(row["label"], []).append(row)
        rng = random.Random(seed)
        kept = []
        for label, group in sorted(by_label.items()):
            kept += rng.sample(group, min(len(group), round(count * len(group) / len(rows))))
        rng.shuffle(kept)
        partial = destination / f"{split}.csv.partial"
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        partial.replace(destination / f"{split}.csv")
    return destination


def products_are_fast() -> bool:
    """Whether featurizing runs at bf16 speed here (a GPU is not used by the demo)."""
    import torch

    from sentiment_discovery.precision import resolve_precision

    return resolve_precision("auto", torch.device("cpu")) != "fp32"


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
    # Transfer never writes into its model, so the package's own model is used as it is.
    model = pretrained
    # Mean-pooled features, as the shipped classifier was fitted (docs/transfer.md, "Pooling").
    transfer = ["transfer", *common, "-load_model", str(model), "-pooling", "mean", "-no_data_efficiency",
                "-text_key", "sentence", "-label_key", "label"]
    full = [*transfer, "-train", str(sst2 / "train.csv"), "-valid", str(sst2 / "dev.csv"), "-test", str(sst2 / "test.csv")]
    if products_are_fast():
        run(*full)
        return
    subset = stratified_subset(sst2, EXPERIMENTS / "quickstart" / "data" / "sst2_subset")
    sizes = ", ".join(f"{count} {split}" for split, count in SUBSET_TEXTS.items())
    print(f"The products run in fp32 on this CPU (no native bf16): transferring on a stratified subset of "
          f"SST-2 ({sizes} texts, {subset}) to keep the demo short; its accuracy is below the full set's.",
          flush=True)
    run(*transfer, "-train", str(subset / "train.csv"), "-valid", str(subset / "dev.csv"),
        "-test", str(subset / "test.csv"))
    print("\nAll of SST-2 (about ten minutes on two such cores):\n  sentiment-discovery "
          + shlex.join(full), flush=True)


if __name__ == "__main__":
    main()
