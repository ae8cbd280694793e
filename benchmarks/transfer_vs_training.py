"""Sentiment transfer against training budget: SST-2 accuracy of every checkpoint of a run.

For each checkpoint directory (``iter400``, ``iter800``, ..., ``e0``) in a run's model
directory, in the order of the training iteration recorded in its ``training_state.json``:
bytes seen (iteration x batch_size x seq_length x processes from the flags the checkpoint
recorded, else its metadata), validation bits per byte (``history/eval.csv`` of the run, else
the checkpoint's own record), and SST-2 transfer exactly as ``sentiment-discovery transfer
-no_data_efficiency`` computes it (same reader, C grid, seed and fits): test accuracy of the
L1 classifier on all units, of the top unit's classifier, and of the top unit thresholded
at 0. Prints a table, writes JSON and a PNG of accuracy against bytes seen.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer_vs_training.py \\
        --checkpoints RUNS/laptop_mlstm/model --json RUNS/eval/transfer_vs_training.json

Results are cached per checkpoint in the JSON (keyed by the weights' sha256 and the
settings), so rerunning as new checkpoints appear evaluates only the new ones. Nothing is
written into the checkpoints (``transfer`` itself would record the sentiment unit in each
``config.json``). Featurizing runs in bf16 by default (``--precision fp32`` gives
``transfer``'s default numbers bit for bit).
"""

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
BENCHMARK = "transfer_vs_training"
FORMAT_VERSION = 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", required=True, help="a run's model directory (holding iter<N>/, e<N>/)")
    parser.add_argument("--data", default=str(DATA / "sst2"), help="directory with train.csv, dev.csv, test.csv")
    parser.add_argument("--history", default=None,
                        help="the run's eval.csv (default: <checkpoints>/../history/eval.csv)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="featurizing products")
    parser.add_argument("--pooling", choices=("final", "mean"), default="final",
                        help="feature: the cell state after the last byte (final) or its mean over the text")
    parser.add_argument("--seed", type=int, default=1234, help="as transfer's -seed (default 1234, transfer's too)")
    parser.add_argument("--jobs", type=int, default=1, help="regressions fitted in parallel (default 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per featurization batch")
    parser.add_argument("--json", default=str(ROOT / "experiments" / "benchmarks" / f"{BENCHMARK}.json"))
    parser.add_argument("--png", default=None, help="the figure (default: the JSON's path with .png)")
    parser.add_argument("--force", action="store_true", help="evaluate every checkpoint again, ignoring the cache")
    parser.add_argument("--save-classifiers", default=None, metavar="DIR",
                        help="also save each newly evaluated checkpoint's classifier as DIR/<checkpoint>/classifier.json "
                             "(for benchmarks/steering.py or `classify`)")
    return parser.parse_args(argv)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- what each checkpoint says


def read_eval_history(path: Path) -> dict[int, float]:
    """Validation bits per byte by iteration from a run's ``eval.csv`` (the last row wins)."""
    if not path.is_file():
        return {}
    values = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                if row.get("split") == "valid":
                    values[int(row["iteration"])] = float(row["bits_per_byte"])
            except (KeyError, TypeError, ValueError):
                continue
    return values


def checkpoint_facts(directory: Path, history: dict[int, float]) -> dict:
    """Iteration, bytes seen and validation bits per byte of one checkpoint, from its own files."""
    from sentiment_discovery.checkpoint import WEIGHTS_FILE, read_model_config
    from sentiment_discovery.checkpoint import read_state_json

    state = read_state_json(directory)
    training = (read_model_config(directory).get("metadata") or {}).get("training") or {}
    iteration = int(state["iteration"])
    flags = (state.get("run") or {}).get("flags") or {}
    position = state.get("data_position") or {}
    batch_size = flags.get("batch_size", position.get("batch_size"))
    seq_length = flags.get("seq_length", position.get("seq_length"))
    world_size = int(state.get("world_size") or position.get("world_size") or 1)
    if batch_size and seq_length:
        bytes_seen, bytes_source = iteration * int(batch_size) * int(seq_length) * world_size, "iteration x flags"
    else:
        bytes_seen, bytes_source = training.get("bytes_seen"), "checkpoint metadata"
    bpb, bpb_source = history.get(iteration), "history/eval.csv"
    if bpb is None:
        records = [row for row in (state.get("history") or {}).get("eval", [])
                   if row.get("split") == "valid" and int(row.get("iteration", -1)) == iteration]
        if records:
            bpb, bpb_source = float(records[-1]["bits_per_byte"]), "training_state.json history"
        elif training.get("valid_bits_per_byte") is not None:
            bpb, bpb_source = float(training["valid_bits_per_byte"]), "checkpoint metadata"
    return {
        "checkpoint": directory.name,
        "path": str(directory.resolve()),
        "iteration": iteration,
        "epoch": state.get("epoch"),
        "batch_size": batch_size,
        "seq_length": seq_length,
        "world_size": world_size,
        "bytes_seen": None if bytes_seen is None else int(bytes_seen),
        "bytes_seen_source": bytes_source if bytes_seen is not None else None,
        "valid_bits_per_byte": bpb,
        "valid_bits_per_byte_source": bpb_source if bpb is not None else None,
        "training_elapsed_s": state.get("elapsed_s"),
        "weights_sha256": sha256(directory / WEIGHTS_FILE),
    }


# --------------------------------------------------------------------------- transfer, as the transfer command does it


def transfer_config(args, model_path: Path):
    from sentiment_discovery.recipes.transfer import TransferConfig

    data = Path(args.data)
    values = dict(
        load_model=str(model_path), train=str(data / "train.csv"), valid=str(data / "dev.csv"),
        test=str(data / "test.csv"), text_key="sentence", label_key="label", seed=args.seed,
        batch_size=args.batch_size, no_feature_cache=True, no_data_efficiency=True, jobs=args.jobs,
    )
    if "precision" in {field.name for field in dataclasses.fields(TransferConfig)}:
        values["precision"] = args.precision
    elif args.precision != "fp32":
        raise SystemExit("error: this version of transfer featurizes in fp32 only; pass --precision fp32")
    if "pooling" in {field.name for field in dataclasses.fields(TransferConfig)}:
        values["pooling"] = args.pooling
    elif args.pooling != "final":
        raise SystemExit("error: this version of transfer has no -pooling; pass --pooling final")
    return TransferConfig(**values)


def settings(args) -> dict:
    """Everything besides the weights that a result depends on (the cache key)."""
    from sentiment_discovery.transfer import DEFAULT_C_GRID

    from sentiment_discovery.foundation.errors import UserError

    data = Path(args.data)
    missing = [name for name in ("train.csv", "dev.csv", "test.csv") if not (data / name).is_file()]
    if missing:
        raise UserError(f"--data {data} lacks {', '.join(missing)} (SST-2 as in ../shared/data/sst2)")
    return {
        "data_sha256": {name: sha256(data / name) for name in ("train.csv", "dev.csv", "test.csv")},
        "precision": args.precision,
        "pooling": args.pooling,
        "seed": args.seed,
        "c_grid": list(DEFAULT_C_GRID),
        "num_neurons": 1,
        "standardize": False,
        "layer": -1,
    }


def evaluate_checkpoint(directory: Path, splits: dict, args) -> dict:
    """SST-2 transfer on one checkpoint: the computation of ``transfer``, without writing anything."""
    from sentiment_discovery import transfer
    from sentiment_discovery.checkpoint import load_model
    from sentiment_discovery.recipes.transfer import featurize_splits
    from sentiment_discovery.runtime import seed_everything

    config = transfer_config(args, directory)
    started = time.perf_counter()
    seed_everything(config.seed)
    model = load_model(directory)
    options = {name: getattr(args, name) for name in ("precision", "pooling") if hasattr(config, name)}
    identity = transfer.ModelIdentity.of(model, directory, layer=config.layer, **options)
    featurize = featurize_splits(model, identity, splits, config)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    fit_start = time.perf_counter()
    fit = transfer.fit_sentiment_classifier(
        train.features, train.labels, valid.features, valid.labels, identity, num_neurons=1,
        c_grid=config.c_grid, standardize=False, seed=config.seed, jobs=config.jobs, progress=False,
    )
    fit_seconds = time.perf_counter() - fit_start
    classifier = fit.classifier
    if args.save_classifiers:
        classifier.save(Path(args.save_classifiers) / directory.name)
    result = transfer.evaluate(classifier, [train, valid, test])
    top = result.single_units[0].to_dict()

    def accuracies(values):
        return dict(zip(("train", "valid", "test"), values))

    return {
        "all_neurons": {**accuracies(result.all_neurons), "C": fit.all_neurons.C,
                        "features_used": classifier.all_neurons.features_used},
        "top_unit": {"unit": top["unit"], "sign": top["sign"], **accuracies(result.n_neurons),
                     "C": fit.n_neurons.C},
        "top_unit_threshold_0": {split: top[split] for split in ("train", "valid", "test")},
        "top_units": classifier.top_units,
        "seed_output": result.lines,
        "timing": {
            "featurize": featurize,
            "fit_seconds": round(fit_seconds, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
        },
    }


# --------------------------------------------------------------------------- output


def percent(value) -> str:
    return "   --" if value is None else f"{100 * value:5.2f}"


def print_table(rows: list[dict]) -> None:
    print(f"{'checkpoint':<10} {'iter':>6} {'bytes seen':>12} {'val bpb':>7} {'all':>6} {'used':>5} "
          f"{'unit':>5} {'unit LR':>7} {'unit>0':>6} {'seconds':>8}")
    for row in rows:
        result = row["transfer"]
        bpb = "     --" if row["valid_bits_per_byte"] is None else f"{row['valid_bits_per_byte']:7.3f}"
        bytes_seen = "--" if row["bytes_seen"] is None else f"{row['bytes_seen']:,}"
        print(f"{row['checkpoint']:<10} {row['iteration']:>6} {bytes_seen:>12} {bpb} "
              f"{percent(result['all_neurons']['test']):>6} {result['all_neurons']['features_used']:>5} "
              f"{result['top_unit']['unit']:>5} {percent(result['top_unit']['test']):>7} "
              f"{percent(result['top_unit_threshold_0']['test']):>6} {result['timing']['total_seconds']:>8.1f}")
    print("(SST-2 test accuracy %: all units L1, features used, top unit, its own classifier, its sign at threshold 0)")


def plot(rows: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = [row for row in rows if row["bytes_seen"] is not None]
    with_bpb = [row for row in rows if row["valid_bits_per_byte"] is not None]
    figure = Figure(figsize=(7.5, 6.5 if with_bpb else 4.2), dpi=100, layout="constrained")
    axes = figure.subplots(2 if with_bpb else 1, 1, sharex=True, squeeze=False)[:, 0]
    x = [row["bytes_seen"] / 1e6 for row in rows]
    series = (
        ("all units (L1)", lambda r: r["transfer"]["all_neurons"]["test"], "tab:blue", "o"),
        ("top unit, logistic regression", lambda r: r["transfer"]["top_unit"]["test"], "tab:orange", "s"),
        ("top unit, threshold 0", lambda r: r["transfer"]["top_unit_threshold_0"]["test"], "tab:green", "^"),
    )
    for label, value, color, marker in series:
        axes[0].plot(x, [100 * value(row) for row in rows], marker=marker, color=color, label=label)
    for row in rows:
        axes[0].annotate(row["checkpoint"], (row["bytes_seen"] / 1e6, 100 * row["transfer"]["all_neurons"]["test"]),
                         textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    axes[0].axhline(50.0, color="black", linewidth=0.8, linestyle=":", label="chance")
    axes[0].margins(x=0.08, y=0.15)
    axes[0].set_ylabel("SST-2 test accuracy (%)")
    axes[0].set_title(title)
    axes[0].grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if with_bpb:
        axes[1].plot([r["bytes_seen"] / 1e6 for r in with_bpb], [r["valid_bits_per_byte"] for r in with_bpb],
                     marker="o", color="tab:gray")
        axes[1].set_ylabel("valid bits per byte")
        axes[1].grid(True, alpha=0.3)
    axes[-1].set_xlabel("training bytes seen (millions)")
    if len(x) > 1 and min(x) > 0 and max(x) / min(x) > 20:
        axes[-1].set_xscale("log")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def load_previous(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        print(f"notice: ignoring unreadable {path} ({error}); evaluating every checkpoint", file=sys.stderr)
        return {}
    if previous.get("benchmark") != BENCHMARK or previous.get("format_version") != FORMAT_VERSION:
        return {}
    return {row["cache_key"]: row["transfer"] for row in previous.get("rows", []) if "cache_key" in row}


def write_json(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(values, indent=2) + "\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> dict:
    from sentiment_discovery.foundation.errors import UserError
    from sentiment_discovery.recipes.splits import LabelledFiles
    from sentiment_discovery.recipes.transfer import read_splits
    from sentiment_discovery.checkpoint import list_checkpoints, model_directories

    args = parse_args(argv)
    started = time.perf_counter()
    model_dir = Path(args.checkpoints)
    output = Path(args.json)
    figure_path = Path(args.png) if args.png else output.with_suffix(".png")
    try:
        checkpoints = list_checkpoints(model_dir)
        complete = {directory.name for _, directory in checkpoints}
        for directory in model_directories(model_dir):
            if directory.name not in complete:
                print(f"notice: skipping {directory}: not a complete training checkpoint (yet)", file=sys.stderr)
        if not checkpoints:
            raise UserError(f"no training checkpoints (iter<N>/, e<N>/ with training_state.json) in {model_dir}")
        history_path = Path(args.history) if args.history else model_dir.parent / "history" / "eval.csv"
        history = read_eval_history(history_path)
        run_settings = settings(args)
        cached = {} if args.force else load_previous(output)
        splits = None
        rows, evaluated, reused = [], [], []
        for _, directory in checkpoints:
            facts = checkpoint_facts(directory, history)
            key_source = {"weights_sha256": facts["weights_sha256"], **run_settings}
            key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()
            if key in cached:
                result = cached[key]
                reused.append(directory.name)
            else:
                if splits is None:
                    splits = read_splits(LabelledFiles.from_config(transfer_config(args, directory)))
                print(f"{directory.name}: SST-2 transfer ({args.precision})", file=sys.stderr, flush=True)
                result = evaluate_checkpoint(directory, splits, args)
                evaluated.append(directory.name)
            rows.append({**facts, "cache_key": key, "transfer": result})
            rows.sort(key=lambda row: (row["bytes_seen"] is None, row["bytes_seen"] or 0, row["iteration"]))
            report = {
                "benchmark": BENCHMARK,
                "format_version": FORMAT_VERSION,
                "checkpoints": str(model_dir.resolve()),
                "history": str(history_path) if history else None,
                "data": {name: str(Path(args.data) / name) for name in ("train.csv", "dev.csv", "test.csv")},
                "settings": run_settings,
                "rows": rows,
                "run": {"evaluated": evaluated, "reused": reused,
                        "seconds": round(time.perf_counter() - started, 2)},
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
            }
            write_json(output, report)  # after every checkpoint, so an interrupted run keeps what it did
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print_table(rows)
    report["figure"] = str(plot(rows, figure_path, f"SST-2 transfer along training ({model_dir.resolve().parent.name})"))
    write_json(output, report)
    print(f"wrote {output} and {figure_path} ({len(evaluated)} evaluated, {len(reused)} from the cache)",
          file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
