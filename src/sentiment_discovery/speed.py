"""Measuring the mLSTM's speed and memory on this machine: the work of ``sentiment-discovery benchmark``
(what is timed and how: :mod:`sentiment_discovery.recipes.benchmark`, whose config these functions take).
"""

import ctypes
import dataclasses
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .fast_mlstm import StepProduct, reuse_freed_memory
from .features import featurize
from .foundation import log
from .foundation.options import check_options
from .model import VOCAB_SIZE, ByteLM, ModelConfig
from .precision import autocast_dtype, products_autocast, resolve_precision
from .runtime import configure_threads, seed_everything, select_device


class BenchmarkConfig(Protocol):
    """The settings these functions read: ``recipes.benchmark.BenchmarkConfig`` has them (the
    recipe sits above this module and is not imported here)."""

    rnn_size: int
    embed_size: int
    layers: int
    no_weight_norm: bool
    batch_size: int
    seq_length: int
    precision: str
    implementation: str
    baseline: str | None
    mode: str
    repeats: int
    warmup: int
    threads: int | None
    system_allocator: bool
    cuda: bool
    seed: int


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux), e.g. VmRSS or VmHWM."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _return_free_heap_memory() -> None:
    """Give the C heap's free pages back to the system (glibc), so that resident = in use."""
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass


class PeakMemory:
    """Peak memory over a stretch of work: resident set on CPU, allocated memory on CUDA."""

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            return
        _return_free_heap_memory()  # else memory kept for reuse would count as in use
        try:  # Linux: "5" resets the resident-set high-water mark to the current size
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self.baseline = (_status_kib("VmRSS") or 0) * 1024

    def stop(self) -> dict:
        """{"peak_mib": peak during the stretch, "increase_mib": that minus the memory at start}."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = (_status_kib("VmHWM") or 0) * 1024
        return {"peak_mib": peak / 2**20, "increase_mib": max(peak - self.baseline, 0) / 2**20}


def saved_for_backward_bytes(run) -> int:
    """Bytes of the distinct storages autograd keeps for backward while ``run()`` builds the graph."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


# --------------------------------------------------------------------------- timing


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, size: int = 2048, runs: int = 4) -> float:
    """Best rate of a square matrix product in ``dtype``: the ceiling the model is read against.

    Both ways the recurrence multiplies are tried, ``torch.mm`` and (CPU) a weight packed
    once for oneDNN, which is the faster of the two here; the best run of either counts.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    product = StepProduct(b, dtype, rows=size, steps=size)
    best = math.inf
    for multiply in (lambda: torch.mm(a, b), lambda: product(a)):
        for _ in range(runs + 1):  # the first run warms up
            started = _now(device)
            multiply()
            best = min(best, _now(device) - started)
    return 2 * size**3 / best / 1e9


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _summary(chars: int, seconds: list[float]) -> dict:
    rates = [chars / s for s in seconds]
    return {
        "chars_per_s": statistics.median(rates),
        "min_chars_per_s": min(rates),
        "max_chars_per_s": max(rates),
        "seconds": seconds,
    }


def training_step(model: ByteLM, optimizer, tokens: torch.Tensor, precision: str) -> float:
    """One update on bytes [B, T + 1]: next-byte cross-entropy, backward, optimizer step."""
    with products_autocast(precision, tokens.device):
        logits, _ = model(tokens[:, :-1])
    loss = nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), tokens[:, 1:].reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _interleaved(implementations, model, runs: int, warmup: int, work) -> dict[str, list[float]]:
    """Seconds of ``work()`` per implementation, their runs interleaved so load changes hit all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in implementations}
    for index in range(warmup + runs):
        for name in implementations:
            model.set_implementation(name)
            started = _now(model.device)
            work()
            if index >= warmup:
                seconds[name].append(_now(model.device) - started)
    return seconds


def measure_training(model, config: BenchmarkConfig, implementations: list[str]) -> dict:
    device = model.device
    generator = torch.Generator().manual_seed(config.seed)
    tokens = torch.randint(0, VOCAB_SIZE, (config.batch_size, config.seq_length + 1), generator=generator).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    primary = implementations[0]
    model.set_implementation(primary)
    model.train()
    # A tiny step first creates the optimizer state, so that the memory measured next is
    # what a full-size step adds to the steady state (weights, optimizer state).
    training_step(model, optimizer, tokens[:1, :3], config.precision)
    memory = PeakMemory(device)
    memory.start()
    training_step(model, optimizer, tokens, config.precision)
    step_memory = memory.stop()

    def forward_for_saved():
        with products_autocast(config.precision, device):
            logits, _ = model(tokens[:, :-1])
        return nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), tokens[:, 1:].reshape(-1))

    saved = saved_for_backward_bytes(forward_for_saved) / 2**20
    optimizer.zero_grad(set_to_none=True)
    def work():
        training_step(model, optimizer, tokens, config.precision)

    seconds = _interleaved(implementations, model, config.repeats, config.warmup, work)
    chars = config.batch_size * config.seq_length
    results = {name: _summary(chars, seconds[name]) for name in implementations}
    results[primary]["memory"] = {
        "saved_for_backward_mib": saved,
        "step_peak_increase_mib": step_memory["increase_mib"],
        "peak_over_saved": step_memory["increase_mib"] / saved if saved else None,
        "peak_mib": step_memory["peak_mib"],
    }
    return results


def measure_featurize(model, config: BenchmarkConfig, implementations: list[str]) -> dict:
    rng = np.random.default_rng(config.seed)
    # Printable ASCII: the speed does not depend on the bytes, only on how many there are.
    texts = [rng.integers(32, 127, config.seq_length, dtype=np.uint8).tobytes() for _ in range(config.batch_size)]

    def work():
        featurize(model, texts, batch_size=config.batch_size, preprocess=False, precision=config.precision)

    seconds = _interleaved(implementations, model, config.repeats, config.warmup, work)
    chars = config.batch_size * config.seq_length
    return {name: _summary(chars, seconds[name]) for name in implementations}


# --------------------------------------------------------------------------- report


def machine_description(device: torch.device) -> dict:
    info = {
        "device": device.type,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def benchmark(config: BenchmarkConfig) -> dict:
    """Run the measurements that ``config`` asks for; the JSON report as a dict."""
    check_options(config)  # the flags' declared bounds (the CLI checked them already)
    configure_threads(config.threads)
    allocator_tuned = False if config.system_allocator else reuse_freed_memory()
    device = select_device(config.cuda)
    seed_everything(config.seed)
    model_config = ModelConfig(
        rnn_type="mlstm",
        embed_size=config.embed_size,
        rnn_size=config.rnn_size,
        layers=config.layers,
        weight_norm=not config.no_weight_norm,
    )
    model = ByteLM(model_config).to(device)
    implementations = [config.implementation]
    if config.baseline is not None and config.baseline != config.implementation:
        implementations.append(config.baseline)
    # The measurements run in the resolved precision; the report keeps the request in "config".
    requested = config
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, device))
    product_dtype = autocast_dtype(config.precision) or torch.float32
    peak_before = matmul_peak_gflops(product_dtype, device)
    flops = {
        "train": model.flops_per_char(training=True),
        # Featurizing runs no output layer.
        "featurize": model.flops_per_char(training=False) - 2 * config.rnn_size * VOCAB_SIZE,
    }
    report = {
        "train_chars_per_s": None,
        "featurize_chars_per_s": None,
        "machine": machine_description(device) | {"allocator_keeps_freed_memory": allocator_tuned},
        "config": dataclasses.asdict(requested),
        "precision": config.precision,
        "flops_per_char": flops,
    }
    for phase, measure in (("train", measure_training), ("featurize", measure_featurize)):
        if config.mode not in (phase, "both"):
            continue
        log.info(f"timing {phase} ({', '.join(implementations)}) ...")
        results = measure(model, config, implementations)
        for name, result in results.items():
            if name != config.implementation:
                result["speedup_of_measured"] = results[config.implementation]["chars_per_s"] / result["chars_per_s"]
        report[phase] = results
        report[f"{phase}_chars_per_s"] = results[config.implementation]["chars_per_s"]
    # Measured before and after, the better kept: a busy moment must not lower the ceiling.
    peak = max(peak_before, matmul_peak_gflops(product_dtype, device))
    report["matmul_peak_gflops"] = peak
    for phase in ("train", "featurize"):
        for result in report.get(phase, {}).values():
            result["peak_fraction"] = result["chars_per_s"] * flops[phase] / (peak * 1e9)
    return report


def format_report(report: dict) -> str:
    config = report["config"]
    machine = report["machine"]
    lines = [
        f"mLSTM {config['rnn_size']} units x {config['layers']} layer(s), embed {config['embed_size']}, "
        f"batch {config['batch_size']} x {config['seq_length']} bytes, {report['precision']}, "
        f"{machine['device']} ({machine['threads']} threads)",
        f"matrix-multiply peak measured: {report['matmul_peak_gflops']:.0f} GFLOP/s; "
        f"model FLOPs/char: train {report['flops_per_char']['train'] / 1e6:.1f} M, "
        f"featurize {report['flops_per_char']['featurize'] / 1e6:.1f} M",
        "",
        f"{'phase':<10} {'implementation':<15} {'chars/s':>10} {'min':>10} {'max':>10} {'of peak':>8} {'ratio':>7}",
    ]
    for phase in ("train", "featurize"):
        for name, result in report.get(phase, {}).items():
            ratio = result.get("speedup_of_measured")
            lines.append(
                f"{phase:<10} {name:<15} {result['chars_per_s']:>10,.0f} {result['min_chars_per_s']:>10,.0f} "
                f"{result['max_chars_per_s']:>10,.0f} {result['peak_fraction']:>8.0%} "
                f"{'' if ratio is None else f'{ratio:.2f}x':>7}"
            )
    memory = report.get("train", {}).get(config["implementation"], {}).get("memory")
    if memory:
        lines += [
            "",
            f"training memory: saved for backward {memory['saved_for_backward_mib']:,.0f} MiB; "
            f"a step's peak over the steady state {memory['step_peak_increase_mib']:,.0f} MiB "
            + ("" if memory["peak_over_saved"] is None else f"({memory['peak_over_saved']:.2f}x)")
            + f"; process peak {memory['peak_mib']:,.0f} MiB",
        ]
    if config["baseline"]:
        lines.append(f"ratio: how many times faster {config['implementation']} is than that implementation")
    return "\n".join(lines)
