"""Scaling past one process on this machine: preprocess MB/s at 1 and 2 workers, featurize chars/s at 1 and 2 processes.

Preprocess: ``build_corpus`` of IMDB train (gzipped CSV, the paper's cleaning, split 1000,1,1)
with ``workers=1`` and ``workers=2``, alternated ``--repeats`` times, start-up excluded; MB/s
of review text (decompressed), with the CPU seconds of the reading process and of the workers.

Featurize: the pieces of ``sharding.py`` (the batches of a one-process run) for ``--texts``
IMDB reviews cut to ``--max_bytes``, on a random ``--rnn_size`` mLSTM in fp32, one thread per
process: all pieces in one process, then rank 0's and rank 1's shares in two processes started
together (model loaded and texts read before the clock starts). chars/s counts every text byte
over the wall time of the slower process. The same pieces are what ``torchrun --nproc_per_node 2
-m sentiment_discovery featurize`` runs, without its start-up.

The FLOPs per byte of the model (``ByteLM.flops_per_char``) at 4,096 units are printed too, for
the projections in docs/performance.md ("Scaling out").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py [--data ../shared/data] [--json PATH]
"""

import argparse
import csv
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))


def cpu_seconds() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def preprocess_case(source: Path, workdir: Path, workers: int) -> dict:
    from sentiment_discovery.data.corpus import CorpusOptions, build_corpus

    out = workdir / f"corpus-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    before, started = cpu_seconds(), time.perf_counter()
    build_corpus(source, out, CorpusOptions(text_key="text", split="1000,1,1"), workers=workers)
    seconds = time.perf_counter() - started
    after = cpu_seconds()
    return {"workers": workers, "seconds": seconds, "reader_cpu_s": after[0] - before[0],
            "workers_cpu_s": after[1] - before[1]}


def imdb_texts(source: Path, count: int, max_bytes: int) -> list[str]:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle)
        texts = []
        for row in rows:
            texts.append(row["text"].encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))
            if len(texts) == count:
                return texts
    return texts


def featurize_worker(args: argparse.Namespace) -> None:
    """One process: featurize the pieces of rank ``args.rank`` of ``args.world`` once ``args.go`` exists."""
    import torch

    from sentiment_discovery import sharding
    from sentiment_discovery.features import encode_texts
    from sentiment_discovery.model import ByteLM, ModelConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sharding.PIECE_BATCHES = args.piece_batches  # small pieces, so that a short run deals several to each rank
    model = ByteLM(ModelConfig(rnn_size=args.rnn_size, embed_size=64)).eval()
    byte_strings = encode_texts(model, imdb_texts(args.data / "imdb" / "train.csv.gz", args.texts, args.max_bytes))
    plan = sharding.Plan.of([len(b) for b in byte_strings], args.batch_size)
    parts = sharding.Parts(Path(args.parts), {"pieces": len(plan.pieces)})
    print("ready", flush=True)
    while not Path(args.go).exists():
        time.sleep(0.001)
    started = time.perf_counter()
    sharding.featurize_share(model, byte_strings, plan, parts, args.rank, args.world, layer=-1, pooling="final",
                             precision="fp32", progress=False)
    mine = sum(len(byte_strings[i]) for piece in plan.of_rank(args.rank, args.world) for i in plan.indices(piece))
    print(json.dumps({"seconds": time.perf_counter() - started, "bytes": mine,
                      "total_bytes": sum(map(len, byte_strings)), "pieces": len(plan.pieces)}), flush=True)


def featurize_case(args: argparse.Namespace, processes: int, workdir: Path) -> dict:
    parts = workdir / f"parts-{processes}"
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    go = workdir / f"go-{processes}"
    go.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    children = [
        subprocess.Popen([sys.executable, __file__, "--featurize-worker", "--rank", str(rank),
                          "--world", str(processes), "--parts", str(parts), "--go", str(go), "--data", str(args.data),
                          "--texts", str(args.texts),
                          "--max_bytes", str(args.max_bytes), "--rnn_size", str(args.rnn_size),
                          "--batch_size", str(args.batch_size), "--piece_batches", str(args.piece_batches)],
                         stdout=subprocess.PIPE, text=True, env=env)
        for rank in range(processes)
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    results = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
    seconds = max(result["seconds"] for result in results)
    total = results[0]["total_bytes"]
    return {"processes": processes, "seconds": seconds, "chars": total, "chars_per_s": total / seconds,
            "per_rank_seconds": [result["seconds"] for result in results], "pieces": results[0]["pieces"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=ROOT / "experiments" / "benchmarks" / "scaling.json")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--max_bytes", type=int, default=300)
    parser.add_argument("--rnn_size", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--piece_batches", type=int, default=2, help="batches per piece (32 in the commands)")
    parser.add_argument("--featurize-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--parts", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.featurize_worker:
        featurize_worker(args)
        return

    from sentiment_discovery.model import ByteLM, ModelConfig

    source = args.data / "imdb" / "train.csv.gz"
    with gzip.open(source, "rb") as handle:
        text_bytes = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))
    loads = []
    preprocess = []
    featurize = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for _ in range(args.repeats):
            for workers in (1, 2):
                loads.append(os.getloadavg()[0])
                row = preprocess_case(source, workdir, workers)
                row["text_mb_per_s"] = text_bytes / 1e6 / row["seconds"]
                preprocess.append(row)
            for processes in (1, 2):
                loads.append(os.getloadavg()[0])
                featurize.append(featurize_case(args, processes, workdir))

    def best(rows, key, value):
        return {n: max(r[value] for r in rows if r[key] == n) for n in (1, 2)}

    pre, feat = best(preprocess, "workers", "text_mb_per_s"), best(featurize, "processes", "chars_per_s")
    print(f"preprocess IMDB train ({text_bytes / 1e6:.1f} MB of text), best of {args.repeats}:")
    print(f"{'workers':>8} {'seconds':>8} {'text MB/s':>10} {'reader CPU s':>13} {'workers CPU s':>14}")
    for row in preprocess:
        print(f"{row['workers']:>8} {row['seconds']:>8.2f} {row['text_mb_per_s']:>10.1f} {row['reader_cpu_s']:>13.2f} "
              f"{row['workers_cpu_s']:>14.2f}")
    print(f"2 workers / 1: {pre[2] / pre[1]:.2f}x")
    print(f"\nfeaturize {args.texts} IMDB reviews (<= {args.max_bytes} bytes), H={args.rnn_size} fp32, "
          f"one thread each:")
    print(f"{'processes':>9} {'seconds':>8} {'chars/s':>9} {'per-rank seconds':>20}")
    for row in featurize:
        ranks = ", ".join(f"{s:.2f}" for s in row["per_rank_seconds"])
        print(f"{row['processes']:>9} {row['seconds']:>8.2f} {row['chars_per_s']:>9.0f} {ranks:>20}")
    print(f"2 processes / 1: {feat[2] / feat[1]:.2f}x")
    flops = {size: {"train": ByteLM(ModelConfig(rnn_size=size, embed_size=64)).flops_per_char(training=True),
                    "featurize": ByteLM(ModelConfig(rnn_size=size, embed_size=64)).flops_per_char(training=False)
                    - 2 * size * 256}
             for size in (args.rnn_size, 4096)}
    for size, values in flops.items():
        print(f"H={size}: {values['train'] / 1e6:.1f} MFLOP/byte training, {values['featurize'] / 1e6:.1f} featurizing")
    print(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores")
    report = {"benchmark": "scaling", "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
              "load_average_1min": loads, "text_bytes": text_bytes, "preprocess": preprocess, "featurize": featurize,
              "preprocess_speedup_2_workers": pre[2] / pre[1], "featurize_speedup_2_processes": feat[2] / feat[1],
              "flops_per_byte": flops,
              "options": {key: getattr(args, key) for key in
                          ("repeats", "texts", "max_bytes", "rnn_size", "batch_size", "piece_batches")}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
