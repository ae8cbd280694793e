"""Corpus-building throughput and peak memory: IMDB train, the same reviews repeated 10 times, Amazon.

Each case runs ``build_corpus`` (paper preprocessing, split 1000,1,1) in a fresh process
pinned to one CPU core, and reports MB/s of input, both as stored (gzip) and as text
(decompressed), with the peak resident memory of that process. Peak memory should not
grow with the input: the 10x file is one gzipped CSV ten times the size of IMDB train.

    .venv/bin/python benchmarks/preprocess_throughput.py [--data ../shared/data] [--json PATH]
"""

import argparse
import csv
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))


def measure(source: str, text_key: str, out_dir: str) -> dict:
    """Run in the child process: build one corpus, return timings and memory."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from sentiment_discovery.data.corpus import CorpusOptions, build_corpus

    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with gzip.open(source, "rb") as handle:
        text_bytes = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))
    started = time.perf_counter()
    out = build_corpus(source, out_dir, CorpusOptions(text_key=text_key, split="1000,1,1"))
    seconds = time.perf_counter() - started
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return {
        "seconds": seconds,
        "file_bytes": Path(source).stat().st_size,
        "text_bytes": text_bytes,
        "texts": sum(split["texts"] for split in manifest["splits"].values()),
        "corpus_bytes": sum(split["bytes"] for split in manifest["splits"].values()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_build_mib": baseline_kib / 1024,
    }


def repeated_csv(source: Path, times: int, destination: Path) -> Path:
    """``source`` (a gzipped CSV with a header) with its rows written ``times`` times, gzipped."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    with gzip.open(destination, "wt", encoding="utf-8", newline="", compresslevel=6) as out:
        writer = csv.writer(out)
        writer.writerow(rows[0])
        for _ in range(times):
            writer.writerows(rows[1:])
    return destination


def run_case(source: Path, text_key: str, workdir: Path) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[4]); import preprocess_throughput as b; "
        "print(json.dumps(b.measure(sys.argv[1], sys.argv[2], sys.argv[3])))"
    )
    out_dir = workdir / f"corpus-{source.name}"
    result = subprocess.run(
        [sys.executable, "-c", code, str(source), text_key, str(out_dir), str(Path(__file__).parent)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--json", type=Path, default=ROOT / "experiments" / "benchmarks" / "preprocess_throughput.json")
    args = parser.parse_args()
    imdb = args.data / "imdb" / "train.csv.gz"
    amazon = args.data / "amazon" / "reviews.jsonl.gz"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = [("IMDB train", imdb, "text"), ("IMDB train x10", repeated_csv(imdb, 10, workdir / "imdb_x10.csv.gz"), "text")]
        cases.append(("Amazon (Blitzer)", amazon, "reviewText"))
        results = []
        for name, source, text_key in cases:
            row = {"case": name, "source": str(source), **run_case(source, text_key, workdir)}
            row["file_mb_per_s"] = row["file_bytes"] / 1e6 / row["seconds"]
            row["text_mb_per_s"] = row["text_bytes"] / 1e6 / row["seconds"]
            results.append(row)

    header = f"{'case':<18} {'texts':>8} {'text MB':>8} {'gz MB':>7} {'seconds':>8} {'text MB/s':>10} {'gz MB/s':>8} {'peak RSS MiB':>13} {'RSS before':>11}"
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['case']:<18} {row['texts']:>8} {row['text_bytes'] / 1e6:>8.1f} {row['file_bytes'] / 1e6:>7.1f} "
            f"{row['seconds']:>8.2f} {row['text_mb_per_s']:>10.1f} {row['file_mb_per_s']:>8.1f} "
            f"{row['peak_rss_mib']:>13.0f} {row['rss_before_build_mib']:>11.0f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "preprocess_throughput",
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "one_core": hasattr(os, "sched_setaffinity"),
        # Other jobs on the machine slow a single-core benchmark down: this says how busy it was.
        "load_average_1_5_15min": list(os.getloadavg()),
        "results": results,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
