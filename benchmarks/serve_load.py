"""Load test of `sentiment-discovery serve`: concurrent classify clients, against the CLI.

Starts the server (the shipped model and classifier unless ``--model``/``--classifier``)
on 127.0.0.1 at a free port, then for each ``--clients`` level runs that many client
threads for ``--duration`` seconds (and at most ``--max-requests`` requests), each sending
``POST /classify`` requests of ``--texts-per-request`` real SST-2 test sentences over a
kept-alive connection. Reports requests/s, texts/s, latency p50/p95/p99 and how many
requests the server merged into each featurize call. For comparison it then times the CLI:
``classify --text`` once per request (start-up and model loading every call, as a program
that shells out pays) and ``classify --input`` on a file of sentences (one process, batched).

    nice -n 10 .venv/bin/python benchmarks/serve_load.py --clients 1 4 16 --duration 20

Loopback only; every loop is bounded in time and count; the server is stopped at the end.
Prints a markdown table and writes JSON (``--output``).
"""

import argparse
import csv
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", ROOT.parent / "shared" / "data"))
HOST = "127.0.0.1"  # the load never leaves this machine
MAX_CLIENTS = 64


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: the classifier's, or the shipped one)")
    parser.add_argument("--classifier", help="results directory of `transfer` (default: the shipped classifier)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients, one level each")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each level runs")
    parser.add_argument("--max-requests", type=int, default=20_000, help="most requests a level sends")
    parser.add_argument("--texts-per-request", type=int, default=1, help="sentences in each classify request")
    parser.add_argument("--sentences", type=int, default=1_000, help="SST-2 test sentences the clients cycle through")
    parser.add_argument("--cli-calls", type=int, default=3, help="`classify --text` runs timed for the comparison")
    parser.add_argument("--cli-batch", type=int, default=500, help="sentences in the `classify --input` run (0: skip)")
    parser.add_argument("--server-args", default="", help="more flags for `serve`, e.g. \"--max-batch-texts 64\"")
    parser.add_argument("--output", help="JSON file for the results")
    args = parser.parse_args(argv)
    if not all(1 <= clients <= MAX_CLIENTS for clients in args.clients):
        parser.error(f"--clients must be between 1 and {MAX_CLIENTS}")
    if args.duration <= 0 or args.max_requests < 1 or args.texts_per_request < 1:
        parser.error("--duration, --max-requests and --texts-per-request must be positive")
    return args


def sentences(count: int) -> list[str]:
    """SST-2 test sentences (real reviews, 20 words on average); the shipped check texts without the data."""
    from sentiment_discovery.data.readers import read_texts
    from sentiment_discovery.defaults import CHECK_TEXTS

    path = DATA / "sst2" / "test.csv"
    if path.is_file():
        return read_texts(path, "sentence")[:count]
    print(f"notice: {path} not found; using the {len(CHECK_TEXTS)} built-in check sentences", file=sys.stderr)
    return list(CHECK_TEXTS)


def model_flags(args) -> list[str]:
    return (["--model", args.model] if args.model else []) + (["--classifier", args.classifier] if args.classifier else [])


class Server:
    """`sentiment-discovery serve --port 0` in a child process."""

    def __init__(self, flags: list[str]):
        started = time.perf_counter()
        command = [sys.executable, "-m", "sentiment_discovery", "serve", "--host", HOST, "--port", "0", *flags]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        printed = []  # notices (the precision chosen) may come before the address
        while (line := self.process.stderr.readline()) and not (found := re.search(r"on http://127\.0\.0\.1:(\d+)/", line)):
            printed.append(line)
        if not line:
            self.stop()
            raise SystemExit(f"serve did not start: {''.join(printed)}")
        self.port = int(found.group(1))
        threading.Thread(target=self.process.stderr.read, daemon=True).start()  # keep its pipe drained
        while True:
            try:
                self.get("/health")
                break
            except OSError:
                if time.perf_counter() - started > 120 or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit("serve did not answer within 120 s")
                time.sleep(0.05)
        self.start_s = time.perf_counter() - started

    def get(self, path: str) -> dict:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_level(port: int, clients: int, texts: list[str], per_request: int, duration: float, max_requests: int) -> dict:
    """``clients`` threads sending classify requests until the time or the request budget is spent."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + duration

    def client() -> None:
        nonlocal issued
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if issued >= max_requests:
                        return
                    start = issued * per_request
                    issued += 1
                batch = [texts[(start + i) % len(texts)] for i in range(per_request)]
                body = json.dumps({"texts": batch})
                sent = time.perf_counter()
                connection.request("POST", "/classify", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - sent
                with lock:
                    if response.status == 200 and len(json.loads(answer)["probabilities"]) == per_request:
                        latencies.append(elapsed)
                    else:
                        failures.append(f"{response.status}: {answer[:200]!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 120)
    wall = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    p50, p95, p99 = np.percentile(milliseconds, [50, 95, 99]) if len(latencies) else (float("nan"),) * 3
    return {
        "clients": clients,
        "texts_per_request": per_request,
        "requests": len(latencies),
        "failures": len(failures),
        "first_failures": failures[:3],
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "texts_per_s": len(latencies) * per_request / wall,
        "latency_ms": {"p50": float(p50), "p95": float(p95), "p99": float(p99)},
    }


def time_cli(args, texts: list[str]) -> dict:
    """The CLI: one `classify --text` process per request, and one `classify --input` over many."""
    command = [sys.executable, "-m", "sentiment_discovery", "classify", *model_flags(args)]
    per_call = []
    for index in range(args.cli_calls):
        started = time.perf_counter()
        subprocess.run(command + ["--text", texts[index % len(texts)]], check=True, capture_output=True, timeout=300)
        per_call.append(time.perf_counter() - started)
    result = {"calls": args.cli_calls, "seconds_per_call": per_call,
              "requests_per_s": args.cli_calls / sum(per_call) if per_call else None}
    if args.cli_batch:
        with tempfile.TemporaryDirectory() as scratch:
            batch = [texts[i % len(texts)] for i in range(args.cli_batch)]
            path = Path(scratch) / "sentences.csv"
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["sentence"])
                writer.writerows([text] for text in batch)
            started = time.perf_counter()
            subprocess.run(command + ["--input", str(path), "--output", str(Path(scratch) / "out.csv"),
                                      "-experiment_dir", scratch], check=True, capture_output=True, timeout=1800)
            seconds = time.perf_counter() - started
        result["batch"] = {"texts": args.cli_batch, "seconds": seconds, "texts_per_s": args.cli_batch / seconds}
    return result


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average": os.getloadavg()}


def table(result: dict) -> str:
    lines = [
        "| clients | texts/request | requests | requests/s | texts/s | p50 ms | p95 ms | p99 ms | requests per featurize call |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in result["levels"]:
        latency = level["latency_ms"]
        lines.append(
            f"| {level['clients']} | {level['texts_per_request']} | {level['requests']} | {level['requests_per_s']:.1f} | "
            f"{level['texts_per_s']:.1f} | {latency['p50']:.0f} | {latency['p95']:.0f} | {latency['p99']:.0f} | "
            f"{level['requests_per_batch']:.1f} |"
        )
    cli = result["cli"]
    if cli["calls"]:
        mean = sum(cli["seconds_per_call"]) / cli["calls"]
        lines.append(f"| CLI `classify --text`, one process a request | 1 | {cli['calls']} | {cli['requests_per_s']:.2f} | "
                     f"{cli['requests_per_s']:.2f} | {mean * 1000:.0f} | | | |")
    if "batch" in cli:
        batch = cli["batch"]
        lines.append(f"| CLI `classify --input`, one process | {batch['texts']} | 1 | {1 / batch['seconds']:.3f} | "
                     f"{batch['texts_per_s']:.1f} | {batch['seconds'] * 1000:.0f} | | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    texts = sentences(args.sentences)
    before = machine()
    server = Server(model_flags(args) + args.server_args.split())
    try:
        print(f"serve answered {server.start_s:.1f} s after starting", file=sys.stderr)
        info = server.get("/info")
        warm = run_level(server.port, 1, texts, args.texts_per_request, 2.0, 20)  # first calls are slower
        levels = []
        for clients in args.clients:
            batching = server.get("/info")["batching"]
            level = run_level(server.port, clients, texts, args.texts_per_request, args.duration, args.max_requests)
            after = server.get("/info")["batching"]
            served, batches = after["requests"] - batching["requests"], after["batches"] - batching["batches"]
            level["requests_per_batch"] = served / batches if batches else float("nan")
            levels.append(level)
            print(f"{clients} clients: {level['requests_per_s']:.1f} requests/s, p50 {level['latency_ms']['p50']:.0f} ms",
                  file=sys.stderr)
    finally:
        server.stop()
    result = {
        "benchmark": "serve_load",
        "server_start_s": server.start_s,
        "model": info["model"],
        "classifier": info["classifier"],
        "warm_up_requests": warm["requests"],
        "levels": levels,
        "cli": time_cli(args, texts),
        "machine": {"before": before, "after": machine()},
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
    }
    print(table(result))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    failed = sum(level["failures"] for level in levels)
    if failed:
        print(f"error: {failed} requests failed, e.g. {levels[0]['first_failures']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
