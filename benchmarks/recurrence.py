"""The mLSTM recurrence: speed of the fast implementation against the plain per-step cell,
its memory, what each of its parts is worth, and how far bf16 training drifts from fp32.

Sections, each printed as a markdown table (docs/performance.md holds their output):

  speed      training and featurizing characters/s, fast and reference timed interleaved in
             one process (ratios, medians): H = 256, 512, 1024 (both) and 4096 (featurize),
             fp32 and bf16
  memory     training H=1024, B=128, T=256: a step's peak memory against what is stored
             for backward
  ablations  training H=512, B=64, T=256 with one part of the fast recurrence taken away:
             oneDNN weight packing, per-byte input tables, the allocator setting (in
             subprocesses, it is process-wide), and the gate math compiled by torch.compile
  drift      the same small model trained in fp32 and in bf16 from the same initial weights
             on the same batches of IMDB reviews: how far the loss curves part

    .venv/bin/python benchmarks/recurrence.py [--threads 1] [--quick] [--sections speed,drift] [--json PATH]

On a machine shared with other jobs, ``--threads 1`` gives steady numbers (two OpenMP
threads stall whenever the other core is taken); on a quiet machine leave it out.
"""

import argparse
import contextlib
import csv
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sentiment_discovery import fast_mlstm
from sentiment_discovery.model import MLSTM_IMPLEMENTATIONS, VOCAB_SIZE, ByteLM, ModelConfig
from sentiment_discovery.recipes.benchmark import BenchmarkConfig
from sentiment_discovery.speed import benchmark, training_step
from sentiment_discovery.foundation.text import TextOptions, preprocess_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
SECTIONS = ("speed", "memory", "ablations", "drift")


# --------------------------------------------------------------------------- speed


def speed_cases(quick: bool, cuda: bool) -> list[dict]:
    cases = [
        dict(rnn_size=256, batch_size=64, seq_length=256, mode="both"),
        dict(rnn_size=512, batch_size=64, seq_length=256, mode="both"),
    ]
    if not quick:
        cases += [
            dict(rnn_size=1024, batch_size=64, seq_length=256, mode="both", repeats=2),
            # The published model's size; featurizing only (training it is GPU work).
            dict(rnn_size=4096, batch_size=64, seq_length=64, mode="featurize", repeats=2),
        ]
    if cuda:
        cases.append(dict(rnn_size=4096, batch_size=128, seq_length=256, mode="train", repeats=3))
    return cases


def run_speed(args) -> list[dict]:
    rows = []
    for case in speed_cases(args.quick, args.cuda):
        for precision in ("fp32", "bf16"):
            config = BenchmarkConfig(
                **{"repeats": 3, **case},
                precision=precision,
                baseline="reference",
                threads=args.threads,
                cuda=args.cuda,
            )
            print(f"speed: H={config.rnn_size} {precision} {config.mode} ...", file=sys.stderr, flush=True)
            report = benchmark(config)
            for phase in ("train", "featurize"):
                if phase not in report:
                    continue
                fast, reference = report[phase]["fast"], report[phase]["reference"]
                rows.append(
                    {
                        "rnn_size": config.rnn_size,
                        "phase": phase,
                        "precision": precision,
                        "batch": f"{config.batch_size}x{config.seq_length}",
                        "fast_chars_per_s": fast["chars_per_s"],
                        "fast_min_max": [fast["min_chars_per_s"], fast["max_chars_per_s"]],
                        "reference_chars_per_s": reference["chars_per_s"],
                        "ratio": reference["speedup_of_measured"],
                        "fast_peak_fraction": fast["peak_fraction"],
                        "matmul_peak_gflops": report["matmul_peak_gflops"],
                        "machine": report["machine"],
                    }
                )
    # The targets compare bf16 with the fp32 reference too: add that ratio where both ran.
    fp32_reference = {(r["rnn_size"], r["phase"]): r["reference_chars_per_s"] for r in rows if r["precision"] == "fp32"}
    for row in rows:
        row["ratio_to_fp32_reference"] = row["fast_chars_per_s"] / fp32_reference[(row["rnn_size"], row["phase"])]
    return rows


def speed_table(rows: list[dict]) -> str:
    lines = [
        "| H | phase | precision | batch | fast chars/s (min-max) | reference chars/s | fast/reference "
        "| fast/fp32 reference | fast, of matmul peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["fast_min_max"]
        lines.append(
            f"| {r['rnn_size']} | {r['phase']} | {r['precision']} | {r['batch']} | {r['fast_chars_per_s']:,.0f} "
            f"({low:,.0f}-{high:,.0f}) | {r['reference_chars_per_s']:,.0f} | {r['ratio']:.2f}x | "
            f"{r['ratio_to_fp32_reference']:.2f}x | {r['fast_peak_fraction']:.0%} of "
            f"{r['matmul_peak_gflops']:.0f} GFLOP/s |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- memory


def run_memory(args) -> list[dict]:
    rows = []
    for precision in ("fp32", "bf16"):
        config = BenchmarkConfig(
            rnn_size=1024, batch_size=128, seq_length=256, precision=precision, mode="train", repeats=1, warmup=0,
            threads=args.threads, cuda=args.cuda,
        )  # fmt: skip
        print(f"memory: H=1024 B=128 T=256 {precision} ...", file=sys.stderr, flush=True)
        report = benchmark(config)
        memory = report["train"]["fast"]["memory"]
        rows.append({"precision": precision, "chars_per_s": report["train_chars_per_s"], **memory})
    return rows


def memory_table(rows: list[dict]) -> str:
    lines = [
        "| precision | saved for backward | a step's peak over the steady state | ratio | train chars/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['precision']} | {r['saved_for_backward_mib']:,.0f} MiB | {r['step_peak_increase_mib']:,.0f} MiB | "
            f"{r['peak_over_saved']:.2f}x | {r['chars_per_s']:,.0f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- ablations


def _fast_without_byte_tables(layer, inputs, *args):
    if isinstance(inputs, fast_mlstm.ByteInput):
        inputs = nn.functional.embedding(inputs.tokens, inputs.embedding)
    return fast_mlstm.mlstm_layer_forward(layer, inputs, *args)


@contextlib.contextmanager
def _weight_packing(enabled: bool):
    previous = fast_mlstm.PACK_WEIGHTS
    fast_mlstm.PACK_WEIGHTS = enabled
    try:
        yield
    finally:
        fast_mlstm.PACK_WEIGHTS = previous


def run_ablations(args) -> list[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    fast_mlstm.reuse_freed_memory()
    MLSTM_IMPLEMENTATIONS["fast, no byte tables"] = _fast_without_byte_tables
    variants = {
        "fast": ("fast", True),
        "no oneDNN weight packing": ("fast", False),
        "no per-byte input tables": ("fast, no byte tables", True),
    }
    rows = []
    for precision in ("fp32", "bf16"):
        print(f"ablations: H=512 B=64 T=256 {precision} ...", file=sys.stderr, flush=True)
        torch.manual_seed(0)
        model = ByteLM(ModelConfig(rnn_size=512, embed_size=64, weight_norm=True))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        tokens = torch.randint(0, VOCAB_SIZE, (64, 257))
        seconds = {name: [] for name in variants}
        for repeat in range(4):
            for name, (implementation, packing) in variants.items():
                model.set_implementation(implementation)
                with _weight_packing(packing):
                    started = time.perf_counter()
                    training_step(model, optimizer, tokens, precision)
                    if repeat:  # the first round warms up
                        seconds[name].append(time.perf_counter() - started)
        fast = statistics.median(seconds["fast"])
        for name, times in seconds.items():
            rows.append(
                {
                    "precision": precision,
                    "variant": name,
                    "chars_per_s": 64 * 256 / statistics.median(times),
                    "fast_is_faster_by": statistics.median(times) / fast,
                }
            )
        rows += allocator_ablation(precision, args)
    rows.append(compile_ablation())
    return rows


def allocator_ablation(precision: str, args) -> list[dict]:
    """The benchmark command with and without keeping freed memory, alternating subprocesses."""
    rates = {"keep freed memory (default)": [], "system allocator": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            for name in rates:
                out = Path(tmp) / "report.json"
                command = [
                    sys.executable, "-m", "sentiment_discovery", "benchmark", "--rnn_size", "512", "--batch_size", "64",
                    "--seq_length", "256", "--precision", precision, "--mode", "train", "--repeats", "2",
                    "--json", str(out),
                ]  # fmt: skip
                if args.threads:
                    command += ["--threads", str(args.threads)]
                if name == "system allocator":
                    command.append("--system_allocator")
                subprocess.run(command, check=True, capture_output=True)
                rates[name].append(json.loads(out.read_text())["train_chars_per_s"])
    kept = statistics.median(rates["keep freed memory (default)"])
    return [
        {
            "precision": precision,
            "variant": f"allocator: {name}",
            "chars_per_s": statistics.median(values),
            "fast_is_faster_by": kept / statistics.median(values),
        }
        for name, values in rates.items()
    ]


def compile_ablation(batch: int = 64, size: int = 512, runs: int = 200) -> dict:
    """One step's gate math (forward and backward) in eager mode and compiled by torch.compile."""
    torch.manual_seed(0)
    gates = torch.rand(batch, 4 * size)
    c_prev, dh = torch.randn(batch, size), torch.randn(batch, size)
    c_out, h_out, dz = (torch.empty(batch, n) for n in (size, size, 4 * size))

    def step():
        z = gates.clone()
        fast_mlstm._cell_forward(z, c_prev, c_out, h_out, None)
        fast_mlstm._cell_backward(z, c_out, c_prev, dh, torch.zeros_like(dh), None, dz)

    def timed(function) -> float:
        for _ in range(10):
            function()
        started = time.perf_counter()
        for _ in range(runs):
            function()
        return (time.perf_counter() - started) / runs * 1e6

    eager = timed(step)
    row = {"precision": "fp32", "variant": "gate math compiled (per step, µs)", "eager_us": eager}
    try:
        compiled = torch.compile(step, dynamic=False)
        started = time.perf_counter()
        compiled()
        row["compile_seconds"] = time.perf_counter() - started
        row["compiled_us"] = timed(compiled)
    except Exception as error:  # no C++ compiler, unsupported platform: report, do not fail
        row["compile_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return row


def ablation_table(rows: list[dict]) -> str:
    lines = ["| precision | variant | train chars/s (H=512, 64x256) | fast is faster by |", "|---|---|---|---|"]
    for r in rows:
        if "eager_us" in r:
            continue
        lines.append(f"| {r['precision']} | {r['variant']} | {r['chars_per_s']:,.0f} | {r['fast_is_faster_by']:.2f}x |")
    for r in rows:
        if "eager_us" not in r:
            continue
        if "compiled_us" in r:
            lines.append(
                f"\nGate math of one step (B=64, H=512, forward + backward): eager {r['eager_us']:.0f} µs, "
                f"torch.compile {r['compiled_us']:.0f} µs after {r['compile_seconds']:.0f} s of compiling."
            )
        else:
            failure = r["compile_error"]
            lines.append(f"\nGate math eager {r['eager_us']:.0f} µs per step; torch.compile failed: {failure}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- drift


def imdb_bytes(data_dir: Path, reviews: int) -> bytes:
    """The first ``reviews`` IMDB training reviews, cleaned as the model reads them, concatenated."""
    path = data_dir / "imdb" / "train.csv.gz"
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass --data or set SENTIMENT_DISCOVERY_DATA")
    options = TextOptions()
    chunks = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            if index == reviews:
                break
            chunks.append(preprocess_text(row["text"], options))
    return b"".join(chunks)


def run_drift(args, steps: int = 300, batch: int = 32, seq_length: int = 64, size: int = 256) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    data = np.frombuffer(imdb_bytes(args.data, 2000), dtype=np.uint8)
    valid_bytes = batch * (seq_length * 8 + 1)
    train, valid = data[:-valid_bytes], data[-valid_bytes:]
    stream = len(train) // batch
    if stream < steps * seq_length + 1:
        raise SystemExit("not enough IMDB text for the drift run")
    streams = torch.from_numpy(train[: batch * stream].reshape(batch, stream).astype(np.int64))
    valid_streams = torch.from_numpy(valid.reshape(batch, -1).astype(np.int64))
    torch.manual_seed(0)
    models = {"fp32": ByteLM(ModelConfig(rnn_size=size, embed_size=64, weight_norm=True))}
    models["bf16"] = ByteLM(ModelConfig(rnn_size=size, embed_size=64, weight_norm=True))
    models["bf16"].load_state_dict(models["fp32"].state_dict())
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=2e-3) for name, model in models.items()}
    curves = {name: [] for name in models}
    print(f"drift: H={size}, {steps} steps of {batch}x{seq_length} IMDB bytes, fp32 and bf16 ...", file=sys.stderr)
    for step in range(steps):
        window = streams[:, step * seq_length : (step + 1) * seq_length + 1]
        for name, model in models.items():
            curves[name].append(training_step(model, optimizers[name], window, name))

    def valid_loss(name: str) -> float:
        model = models[name]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            logits, _ = model(valid_streams[:, :-1])
        targets = valid_streams[:, 1:].reshape(-1)
        return nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), targets).item()

    fp32, bf16 = np.array(curves["fp32"]), np.array(curves["bf16"])
    difference = bf16 - fp32
    tail = slice(steps - 50, steps)
    return {
        "steps": steps,
        "batch": f"{batch}x{seq_length}",
        "rnn_size": size,
        "loss_curves": curves,
        "final_train_loss": {"fp32": float(fp32[tail].mean()), "bf16": float(bf16[tail].mean())},
        "mean_abs_difference_last_50": float(np.abs(difference[tail]).mean()),
        "max_abs_difference": float(np.abs(difference).max()),
        "mean_relative_difference_last_50": float((np.abs(difference[tail]) / fp32[tail]).mean()),
        "valid_loss": {"fp32": valid_loss("fp32"), "bf16": valid_loss("bf16")},
    }


def drift_table(result: dict) -> str:
    final, valid = result["final_train_loss"], result["valid_loss"]
    checkpoints = [0, 49, 99, 149, 199, 249, result["steps"] - 1]
    lines = [
        f"H={result['rnn_size']}, batches {result['batch']} bytes, Adam 2e-3, same initial weights and batches.",
        "",
        "| step | " + " | ".join(str(s + 1) for s in checkpoints) + " |",
        "|---|" + "---|" * len(checkpoints),
    ]
    for name in ("fp32", "bf16"):
        curve = result["loss_curves"][name]
        lines.append(f"| {name} loss (nats/byte) | " + " | ".join(f"{curve[s]:.4f}" for s in checkpoints) + " |")
    lines += [
        "",
        f"Mean train loss over the last 50 steps: fp32 {final['fp32']:.4f}, bf16 {final['bf16']:.4f}; "
        f"mean |bf16 - fp32| there {result['mean_abs_difference_last_50']:.4f} "
        f"({result['mean_relative_difference_last_50']:.2%}), largest over the run {result['max_abs_difference']:.4f}. "
        f"Held-out loss: fp32 {valid['fp32']:.4f}, bf16 {valid['bf16']:.4f}.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="speed section at H=256 and 512 only")
    parser.add_argument("--cuda", action="store_true", help="run the speed and memory sections on the GPU")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (IMDB for drift)")
    parser.add_argument("--json", type=Path, default=None, help="write every result to this JSON file")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    runners = {
        "speed": (run_speed, speed_table),
        "memory": (run_memory, memory_table),
        "ablations": (run_ablations, ablation_table),
        "drift": (run_drift, drift_table),
    }
    results = {}
    started = time.perf_counter()
    for section in sections:
        run, table = runners[section]
        results[section] = run(args)
        print(f"\n## {section}\n\n{table(results[section])}\n", flush=True)
    print(f"(all sections: {time.perf_counter() - started:.0f} s; threads: {torch.get_num_threads()})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
