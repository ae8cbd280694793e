"""Featurizing and training speed at each thread count, on an idle machine and with the other cores busy.

For each load condition ("idle": nothing started by this script; "busy": one `yes > /dev/null`
process per core but one, started and stopped by this script), each precision and each
thread count, a model of the shipped model's size (1,024 units) is timed with the `benchmark`
command's own measurements (``speed.measure_featurize``, ``speed.measure_training``: warm-up,
then repeats), in this one process. The table gives chars/s (median of the repeats), how
each count compares with one thread, and the thread count the commands would choose
(``runtime.default_threads``) in that condition; the JSON keeps every number with the
machine's load average.

    .venv/bin/python benchmarks/threads.py [--precisions auto,fp32] [--repeats 3] [--json PATH]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from sentiment_discovery.foundation import storage
from sentiment_discovery.model import ByteLM, ModelConfig
from sentiment_discovery.precision import resolve_precision
from sentiment_discovery.recipes.benchmark import BenchmarkConfig
from sentiment_discovery.runtime import default_threads
from sentiment_discovery.speed import measure_featurize, measure_training

ROOT = Path(__file__).resolve().parents[1]


class BusyCores:
    """``count`` processes that each keep a core busy (``yes > /dev/null``) while in the block."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[subprocess.Popen] = []

    def __enter__(self):
        for _ in range(self.count):
            self.processes.append(subprocess.Popen(["yes"], stdout=subprocess.DEVNULL))
        time.sleep(1.0)  # let the scheduler spread them
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.kill()
            process.wait()


# (batch, bytes) per measurement: a few seconds each at 1,024 units on one core.
SHAPES = {"featurize": (64, 128), "train": (16, 64)}


def measure(mode: str, precision: str, threads: int, args) -> dict:
    batch_size, seq_length = SHAPES[mode]
    resolved = resolve_precision(precision, torch.device("cpu"))
    config = BenchmarkConfig(
        rnn_size=1024, batch_size=batch_size, seq_length=seq_length, precision=resolved, mode=mode,
        repeats=args.repeats, warmup=1, threads=threads,
    )
    torch.manual_seed(config.seed)
    model = ByteLM(ModelConfig(rnn_type="mlstm", embed_size=64, rnn_size=1024, weight_norm=True))
    torch.set_num_threads(threads)
    result = (measure_featurize if mode == "featurize" else measure_training)(model, config, ["fast"])["fast"]
    return {"chars_per_s": result["chars_per_s"], "precision": resolved, "seconds": result["seconds"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="auto,fp32", help="comma-separated precisions to measure")
    parser.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1 to the cores)")
    parser.add_argument("--modes", default="featurize,train")
    parser.add_argument("--conditions", default="idle,busy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "experiments" / "benchmarks" / "threads.json")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    counts = [int(t) for t in args.threads.split(",")] if args.threads else list(range(1, cores + 1))
    rows = []
    for condition in args.conditions.split(","):
        busy = BusyCores(max(cores - 1, 0) if condition == "busy" else 0)
        with busy:
            chosen = default_threads()
            for mode in args.modes.split(","):
                for precision in args.precisions.split(","):
                    for threads in counts:
                        print(f"{condition}: {mode} {precision} {threads} thread(s) ...", file=sys.stderr, flush=True)
                        result = measure(mode, precision, threads, args)
                        rows.append({
                            "condition": condition, "mode": mode, "requested_precision": precision, "threads": threads,
                            "default_threads": chosen, "load_average": os.getloadavg(), **result,
                        })
    one = {(r["condition"], r["mode"], r["requested_precision"]): r["chars_per_s"] for r in rows if r["threads"] == 1}
    lines = [
        "| condition | phase | precision | threads | chars/s | vs 1 thread | default threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = one.get((r["condition"], r["mode"], r["requested_precision"]))
        ratio = f"{r['chars_per_s'] / base:.2f}x" if base else ""
        lines.append(
            f"| {r['condition']} | {r['mode']} | {r['precision']} | {r['threads']} | {r['chars_per_s']:,.0f} | {ratio} "
            f"| {r['default_threads']} |"
        )
    print("\n".join(lines))
    report = {"benchmark": "threads", "cores": cores, "torch": torch.__version__, "rows": rows, "table": lines}
    storage.write_json(args.json, report)
    print(f"wrote {args.json}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
