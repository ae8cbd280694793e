"""Featurizing at 4,096 units (OpenAI's model's shape) against the machine's matrix-multiply peak.

A model of the release's shapes (embed 64, 4,096 units, weight norm on the recurrence, random
weights: the speed does not depend on the values) featurizes ``--texts`` texts of
``--seq-length`` printable bytes with ``features.featurize``, the loop every command uses, in
each configuration: thread count, batch size, and whether the weights are prepared once per
call (``prepared``, the default) or once per batch (``per-batch``, as before
``prepared_weights.py``). The runs are interleaved round by round (every configuration once
per round), so that a change in the machine's load hits all of them alike; the table gives
medians over the rounds, and each configuration's ratio to the first. Beside them the
matrix-multiply rates they are read against, measured in the same rounds at each thread
count: the square 2,048 product ``benchmark`` calls the peak, and the recurrence's largest
product ([batch, 4,096] x [4,096, 16,384], packed as the model packs it).

    .venv/bin/python benchmarks/featurize_4096.py [--configs 1:64:per-batch,1:64,1:128,2:64,2:128]
        [--texts 128] [--seq-length 64] [--rounds 3] [--precision fp32] [--json PATH]
"""

import argparse
import contextlib
import os
import statistics
import time

import numpy as np
import torch

from sentiment_discovery import features as features_module
from sentiment_discovery.foundation import storage
from sentiment_discovery.fast_mlstm import StepProduct, reuse_freed_memory
from sentiment_discovery.features import featurize
from sentiment_discovery.model import VOCAB_SIZE, ByteLM, ModelConfig
from sentiment_discovery.precision import autocast_dtype, resolve_precision
from sentiment_discovery.prepared_weights import prepared_weights
from sentiment_discovery.speed import machine_description, matmul_peak_gflops

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


def parse_config(text: str) -> tuple[int, int, str]:
    parts = text.split(":")
    return int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else "prepared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1:64:per-batch,1:64,1:128,2:64,2:128",
                        help="threads:batch[:per-batch], comma-separated; ratios are to the first")
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    configs = [parse_config(c) for c in args.configs.split(",")]
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    dtype = autocast_dtype(precision) or torch.float32
    reuse_freed_memory()
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(embed_size=EMBED, rnn_size=HIDDEN, layers=1, weight_norm=True, lstm_only=True)).eval()
    flops = model.flops_per_char(training=False) - 2 * HIDDEN * VOCAB_SIZE  # featurizing runs no output layer
    rng = np.random.default_rng(0)
    texts = [rng.integers(32, 127, args.seq_length, dtype=np.uint8).tobytes() for _ in range(args.texts)]
    chars = args.texts * args.seq_length
    load_before = os.getloadavg()

    def run(config) -> float:
        threads, batch, mode = config
        torch.set_num_threads(threads)
        features_module.prepared_weights = prepared_weights if mode == "prepared" else contextlib.nullcontext
        started = time.perf_counter()
        featurize(model, texts, batch_size=batch, preprocess=False, precision=precision)
        return chars / (time.perf_counter() - started)

    rates: dict = {c: [] for c in configs}
    thread_counts = sorted({c[0] for c in configs})
    peaks: dict = {t: [] for t in thread_counts}
    shapes: dict = {(c[0], c[1]): [] for c in configs}
    for config in configs:  # warm-up: every configuration once, untimed
        run(config)
    for round_index in range(args.rounds):
        for t in thread_counts:
            torch.set_num_threads(t)
            peaks[t].append(matmul_peak_gflops(dtype, device, runs=2))
        for key in shapes:
            torch.set_num_threads(key[0])
            shapes[key].append(shape_gflops(key[1], dtype))
        for config in configs:
            rates[config].append(run(config))
            print(f"round {round_index + 1}: {config}: {rates[config][-1]:,.0f} chars/s", flush=True)
    features_module.prepared_weights = prepared_weights
    best_peak = max(max(values) for values in peaks.values())
    first = statistics.median(rates[configs[0]])
    rows = []
    for config, values in rates.items():
        t, b, mode = config
        rate = statistics.median(values)
        gflops = rate * flops / 1e9
        rows.append({
            "threads": t, "batch_size": b, "weights": mode, "chars_per_s": rate, "all_chars_per_s": values,
            "ratio": rate / first, "gflops": gflops, "square_peak_gflops": statistics.median(peaks[t]),
            "shape_gflops": statistics.median(shapes[(t, b)]), "of_square_peak": gflops / statistics.median(peaks[t]),
            "of_best_peak": gflops / best_peak,
        })
    print()
    print(f"featurize, {HIDDEN:,} units, {precision}, {args.texts} texts of {args.seq_length} bytes, medians of "
          f"{args.rounds} interleaved rounds; load average at start {load_before[0]:.2f}, at end "
          f"{os.getloadavg()[0]:.2f}; best square peak seen {best_peak:.1f} GFLOP/s")
    print(f"{'threads':>7} {'batch':>5} {'weights':>9} {'chars/s':>8} {'ratio':>6} {'GFLOP/s':>8} "
          f"{'square peak':>11} {'of it':>6} {'[B,H]x[H,4H]':>12} {'of best peak':>12}")
    for row in rows:
        print(f"{row['threads']:>7} {row['batch_size']:>5} {row['weights']:>9} {row['chars_per_s']:>8,.0f} "
              f"{row['ratio']:>6.2f} {row['gflops']:>8.1f} {row['square_peak_gflops']:>11.1f} "
              f"{row['of_square_peak']:>6.0%} {row['shape_gflops']:>12.1f} {row['of_best_peak']:>12.0%}")
    if args.json:
        storage.write_json(args.json, {
            "machine": machine_description(device), "load_average": [load_before, os.getloadavg()],
            "precision": precision, "texts": args.texts, "seq_length": args.seq_length, "flops_per_char": flops,
            "rows": rows,
        })


if __name__ == "__main__":
    main()
