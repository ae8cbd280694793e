"""Start-up time of the command line: `--help` against `python -c "import torch"`, in the same run.

Each command runs in a fresh interpreter, `--runs` times, the commands interleaved so that
a busy moment hits all alike; the table shows the median and the range of the wall-clock
seconds. `--help` imports only what parsing the flags needs (torch, numpy, scikit-learn,
matplotlib and tqdm on first use, docs/performance.md); `import torch` is what every command
paid before.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--json PATH]
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sentiment_discovery.foundation import storage

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5

CASES = {
    "python -c pass": ["-c", "pass"],
    'python -c "import torch"': ["-c", "import torch"],
    "sentiment-discovery --help": ["-m", "sentiment_discovery", "--help"],
    "sentiment-discovery train --help": ["-m", "sentiment_discovery", "train", "--help"],
    "sentiment-discovery classify --help": ["-m", "sentiment_discovery", "classify", "--help"],
}


def seconds_of(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (the median is reported)")
    parser.add_argument("--json", type=Path, default=ROOT / "experiments" / "benchmarks" / "startup.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    seconds_of(CASES["python -c pass"])  # the first start reads the interpreter from disk
    seconds: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, command in CASES.items():
            seconds[name].append(seconds_of(command))
    rows = [
        {"command": name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
        for name, times in seconds.items()
    ]
    header = f"{'command':<38} {'median s':>9} {'min s':>7} {'max s':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['command']:<38} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['max_s']:>7.3f}")
    help_median = next(row["median_s"] for row in rows if row["command"] == "sentiment-discovery --help")
    print(f"\n`--help` target: under {TARGET_SECONDS} s ({'met' if help_median < TARGET_SECONDS else 'NOT met'})")
    report = {
        "benchmark": "startup",
        "runs": args.runs,
        "rows": rows,
        "target_s": TARGET_SECONDS,
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "python": sys.version.split()[0],
    }
    storage.write_json(args.json, report)
    print(f"wrote {args.json}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
