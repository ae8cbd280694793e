"""Featurizing at 4,096 units (OpenAI's model's shape) against the machine's matrix-multiply peak.

A model of the release's shapes (embed 64, 4,096 units, weight norm on the recurrence, random
weights: the speed does not depend on the values) is featurized with ``speed.measure_featurize``,
the ``benchmark`` command's own measurement, at each thread count and batch size given. The runs
are interleaved round by round (every configuration once per round), so that a change in the
machine's load hits all of them alike; the table gives medians over the rounds. Beside each
the matrix-multiply rates it is read against, measured in the same rounds at that thread count:
the square 2,048 product ``benchmark`` calls the peak, and the product of the recurrence's own
shape ([batch, 4,096] x [4,096, 16,384], the bulk of its FLOPs).

    .venv/bin/python benchmarks/featurize_4096.py [--threads 1,2] [--batches 64,128,256]
        [--seq-length 16] [--rounds 3] [--precision fp32] [--json PATH]
"""

import argparse
import os
import statistics
import time

import torch

from sentiment_discovery import storage
from sentiment_discovery.fast_mlstm import StepProduct, reuse_freed_memory
from sentiment_discovery.model import VOCAB_SIZE, ByteLM, ModelConfig
from sentiment_discovery.precision import autocast_dtype, resolve_precision
from sentiment_discovery.recipes.benchmark import BenchmarkConfig
from sentiment_discovery.speed import machine_description, matmul_peak_gflops, measure_featurize

HIDDEN, EMBED = 4096, 64


def shape_gflops(batch: int, dtype: torch.dtype, runs: int = 3) -> float:
    """Best rate of [batch, H] x [H, 4H], the recurrence's largest product, packed as the model packs it."""
    a = torch.randn(batch, HIDDEN).to(dtype)
    w = torch.randn(HIDDEN, 4 * HIDDEN).to(dtype)
    product = StepProduct(w, dtype, rows=batch, steps=runs + 1)
    best = float("inf")
    for _ in range(runs + 1):
        started = time.perf_counter()
        product(a)
        best = min(best, time.perf_counter() - started)
    return 2 * batch * HIDDEN * 4 * HIDDEN / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="64,128,256")
    parser.add_argument("--seq-length", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    dtype = autocast_dtype(precision) or torch.float32
    reuse_freed_memory()
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(embed_size=EMBED, rnn_size=HIDDEN, layers=1, weight_norm=True, lstm_only=True)).eval()
    flops = model.flops_per_char(training=False) - 2 * HIDDEN * VOCAB_SIZE  # featurizing runs no output layer
    load_before = os.getloadavg()

    def config(batch: int) -> BenchmarkConfig:
        return BenchmarkConfig(
            rnn_size=HIDDEN, embed_size=EMBED, batch_size=batch, seq_length=args.seq_length, precision=precision,
            mode="featurize", repeats=1, warmup=0,
        )

    rates: dict[tuple[int, int], list[float]] = {(t, b): [] for t in threads for b in batches}
    peaks: dict[int, list[float]] = {t: [] for t in threads}
    shapes: dict[tuple[int, int], list[float]] = {key: [] for key in rates}
    for t in threads:  # warm-up: every configuration once, untimed
        torch.set_num_threads(t)
        for b in batches:
            measure_featurize(model, config(b), ["fast"])
    for round_index in range(args.rounds):
        for t in threads:
            torch.set_num_threads(t)
            peaks[t].append(matmul_peak_gflops(dtype, device, runs=2))
            for b in batches:
                shapes[(t, b)].append(shape_gflops(b, dtype))
                result = measure_featurize(model, config(b), ["fast"])["fast"]
                rates[(t, b)].append(result["chars_per_s"])
                print(f"round {round_index + 1}: {t} thread(s), batch {b}: {result['chars_per_s']:,.0f} chars/s",
                      flush=True)
    rows = []
    for (t, b), values in rates.items():
        rate = statistics.median(values)
        peak = statistics.median(peaks[t])
        best_peak = max(max(peaks[p]) for p in threads)
        rows.append({
            "threads": t, "batch_size": b, "chars_per_s": rate, "all_chars_per_s": values,
            "gflops": rate * flops / 1e9, "square_peak_gflops": peak, "shape_gflops": statistics.median(shapes[(t, b)]),
            "of_square_peak": rate * flops / 1e9 / peak, "of_best_peak": rate * flops / 1e9 / best_peak,
        })
    print()
    print(f"featurize, {HIDDEN:,} units, {precision}, {args.seq_length}-byte texts, medians of {args.rounds} "
          f"interleaved rounds; load average at start {load_before[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"{'threads':>7} {'batch':>5} {'chars/s':>8} {'GFLOP/s':>8} {'square peak':>11} {'of it':>6} "
          f"{'[B,H]x[H,4H]':>12} {'of best peak':>12}")
    for row in rows:
        print(f"{row['threads']:>7} {row['batch_size']:>5} {row['chars_per_s']:>8,.0f} {row['gflops']:>8.1f} "
              f"{row['square_peak_gflops']:>11.1f} {row['of_square_peak']:>6.0%} {row['shape_gflops']:>12.1f} "
              f"{row['of_best_peak']:>12.0%}")
    if args.json:
        storage.write_json(args.json, {
            "machine": machine_description(device), "load_average": [load_before, os.getloadavg()],
            "precision": precision, "seq_length": args.seq_length, "flops_per_char": flops, "rows": rows,
        })


if __name__ == "__main__":
    main()
