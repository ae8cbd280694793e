"""``featurize`` and ``classify`` across processes (torchrun, Gloo): the same output as one process."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sentiment_discovery import cli, sharding
from sentiment_discovery.features import encode_texts

from conftest import make_model
from test_transfer import make_experiment, transfer_args, write_csv

ROOT = Path(__file__).resolve().parents[1]
WORDS = "good bad fine dull lovely awful warm boring superb tedious".split()


def texts(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 60)))) for _ in range(count)]


def test_the_shares_of_two_ranks_assemble_to_the_one_process_features(tmp_path, monkeypatch):
    monkeypatch.setattr(sharding, "PIECE_BATCHES", 2)
    model = make_model()
    items = texts(37)
    byte_strings = encode_texts(model, items)
    plan = sharding.Plan.of([len(b) for b in byte_strings], batch_size=4)
    assert len(plan.pieces) == 5  # 10 batches of at most 4, two a piece
    assert sorted(np.concatenate([plan.indices(j) for j in range(5)]).tolist()) == list(range(37))
    parts = sharding.Parts(tmp_path / "out.npy.parts", {"key": "k", "pieces": 5})
    parts.prepare()
    options = dict(layer=0, pooling="mean", precision="fp32", progress=False)
    assert sharding.featurize_share(model, byte_strings, plan, parts, 1, 2, **options) == (0, 2)  # pieces 1, 3
    assert sharding.featurize_share(model, byte_strings, plan, parts, 0, 2, **options) == (0, 3)  # 0, 2, 4
    assert sharding.featurize_share(model, byte_strings, plan, parts, 0, 2, **options) == (3, 0)  # all reused
    assembled = sharding.assemble(plan, parts, 16)
    one = model.featurize(items, batch_size=4, layer=0, pooling="mean", precision="fp32")
    assert np.array_equal(assembled, one)  # bit for bit: every batch is the one-process batch
    parts.piece_path(2).write_bytes(b"not a piece")
    assert sharding.featurize_share(model, byte_strings, plan, parts, 0, 2, **options) == (2, 1)  # damaged: redone
    assert np.array_equal(sharding.assemble(plan, parts, 16), one)
    # Other work (another key) clears the directory.
    sharding.Parts(parts.directory, {"key": "other", "pieces": 5}).prepare()
    assert sorted(path.name for path in parts.directory.iterdir()) == ["manifest.json"]


def torchrun(*args: str, processes: int = 2) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(_free_port()), "-m", "sentiment_discovery", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _free_port() -> int:
    from sentiment_discovery.training.distributed import free_port

    return free_port()


def finished(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    return stderr


def rank_pids(launcher: int) -> dict[int, int]:
    """The processes torchrun started, by rank (read from /proc)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher:
            for variable in environ:
                if variable.startswith(b"RANK="):
                    ranks[int(variable[5:])] = int(entry.name)
    return ranks


def classify_setup(tmp_path: Path, count: int) -> tuple[Path, Path]:
    make_experiment(tmp_path)
    assert cli.main(transfer_args(tmp_path, "-no_data_efficiency")) == 0
    new = write_csv(tmp_path / "new.csv", [(text,) for text in texts(count)], header=("sentence",))
    return tmp_path / "exp" / "mlstm" / "toy" / "e0", new


def classify_args(results: Path, new: Path, output: Path, *extra: str) -> list[str]:
    return ["classify", "-classifier", str(results), "-input", str(new), "-text_key", "sentence",
            "-output", str(output), "-batch_size", "2", "-no_feature_cache", *extra]


def one_process(*args: str) -> None:
    """The one-process reference, started as torchrun starts each rank (one thread from the start:
    the products' last bits depend on the threads the process began with)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sentiment_discovery", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_torchrun_classify_and_featurize_write_what_one_process_writes(tmp_path):
    results, new = classify_setup(tmp_path, 150)
    one_process(*classify_args(results, new, tmp_path / "one.csv"))
    model = tmp_path / "exp" / "mlstm" / "model" / "e0"
    featurize = ["featurize", "-model", str(model), "-input", str(new), "-text_key", "sentence", "-batch_size", "3",
                 "-pooling", "mean"]
    one_process(*featurize, "-output", str(tmp_path / "one.npy"))
    stderr = finished(torchrun(*classify_args(results, new, tmp_path / "two.csv")))
    assert "featurized 2 piece(s) of 3, reused 0 written before" in stderr  # rank 0: pieces 0 and 2
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    with open(tmp_path / "two.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 150
    finished(torchrun(*featurize, "-output", str(tmp_path / "two.npy")))
    assert (tmp_path / "two.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()
    assert not (tmp_path / "two.csv.parts").exists() and not (tmp_path / "two.npy.parts").exists()


def test_a_rerun_after_one_rank_is_killed_reuses_the_pieces_written(tmp_path):
    # 100 batches of 2, longest first: pieces 0-3 of 32, 32, 32 and 4 batches. Rank 1 has pieces 1
    # and 3, about a third less work than rank 0 (0 and 2): it finishes first and waits for rank 0.
    results, new = classify_setup(tmp_path, 200)
    one_process(*classify_args(results, new, tmp_path / "one.csv"))
    output = tmp_path / "two.csv"
    parts = tmp_path / "two.csv.parts"
    process = torchrun(*classify_args(results, new, output))
    deadline = time.monotonic() + 120
    rank_1_pieces = [parts / "piece-1-of-4.npy", parts / "piece-3-of-4.npy"]
    while time.monotonic() < deadline and not all(piece.exists() for piece in rank_1_pieces):
        time.sleep(0.01)
    ranks = rank_pids(process.pid)
    os.kill(ranks[0], signal.SIGKILL)  # rank 0 dies before it has featurized all of its share
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, stderr
    assert not output.exists()
    left = sorted(path.name for path in parts.iterdir())
    assert "piece-2-of-4.npy" not in left, "rank 0 finished before it was killed: give it more work"
    assert set(left) <= {"manifest.json", "piece-0-of-4.npy", "piece-1-of-4.npy", "piece-3-of-4.npy"}
    stderr = finished(torchrun(*classify_args(results, new, output)))
    assert "[rank 1] featurized 0 piece(s) of 4, reused 2 written before" in stderr
    redone = 1 if "piece-0-of-4.npy" in left else 2
    assert f"featurized {redone} piece(s) of 4, reused {2 - redone} written before" in stderr
    assert output.read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert not parts.exists()
