"""Bad inputs for every command, SIGKILLed training runs and concurrent writers: the fault suite's cases.

Shared by ``tests/test_faults.py`` (which asserts each) and ``benchmarks/fault_tour.py``
(which prints the table for docs/reliability.md). Everything is tiny (16-unit models, a
few dozen texts) so that the whole tour runs in well under a minute of CPU time.
"""

import contextlib
import csv
import dataclasses
import errno
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from conftest import NEGATIVE, POSITIVE, labelled, make_model, write_csv
from sentiment_discovery import cli, save_model
from sentiment_discovery.foundation import storage
from sentiment_discovery.model import ByteLM

SENTENCES = ["the cat sat on the mat.", "a dog ran in the park.", "the bird sang a song."]


def tiny_model(seed: int = 0) -> ByteLM:
    return make_model(seed)  # 16 units, 8-dimensional embedding


def make_workspace(root: Path) -> Path:
    """The good inputs every case starts from: a model, labelled files, a classifier fitted on them."""
    root.mkdir(parents=True, exist_ok=True)
    save_model(tiny_model(), root / "model")
    save_model(tiny_model(seed=7), root / "other_model")
    write_csv(root / "train.csv", labelled(40))
    write_csv(root / "valid.csv", labelled(12, offset=100))
    write_csv(root / "test.csv", labelled(10, offset=200))
    write_csv(root / "texts.csv", [(text,) for text in POSITIVE + NEGATIVE], header=("sentence",))
    (root / "corpus.txt").write_text("\n".join(SENTENCES[i % 3] for i in range(36)) + "\n")
    args = ["transfer", "-load_model", str(root / "model"), "-train", str(root / "train.csv"),
            "-valid", str(root / "valid.csv"), "-experiment_dir", str(root / "fitted"), "-c_grid", "0.5", "8",
            "-standardize", "-no_data_efficiency", "-no_feature_cache"]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(args) == 0
    shutil.copytree(root / "fitted" / "mlstm" / root.name / "model", root / "classifier")
    shutil.rmtree(root / "fitted")
    return root


# --------------------------------------------------------------------------- bad inputs


@dataclasses.dataclass
class Case:
    """One bad input: ``setup(workspace, case_dir)`` makes its files and returns the command line."""

    name: str
    command: str
    setup: Callable[[Path, Path], list[str]]
    error: str  # a regular expression the one error line must match (after "error: ")
    # What the run meets besides its inputs (a full or read-only disk): a context manager made
    # from (workspace, case directory), entered around the command only.
    during: Callable[[Path, Path], contextlib.AbstractContextManager] | None = None


def _config_edit(change: Callable[[dict], None]):
    def setup(ws: Path, case: Path) -> list[str]:
        shutil.copytree(ws / "model", case / "model")
        storage.update_json(case / "model" / "config.json", change)
        return ["featurize", "-model", str(case / "model"), "-input", str(ws / "texts.csv"), "-output",
                str(case / "f.npy")]

    return setup


def _weights_edit(change: Callable[[dict], None]):
    def setup(ws: Path, case: Path) -> list[str]:
        shutil.copytree(ws / "model", case / "model")
        tensors = load_file(case / "model" / "model.safetensors")
        change(tensors)
        save_file(tensors, case / "model" / "model.safetensors")
        return ["featurize", "-model", str(case / "model"), "-input", str(ws / "texts.csv"), "-output",
                str(case / "f.npy")]

    return setup


def _truncate_weights(ws: Path, case: Path) -> list[str]:
    shutil.copytree(ws / "model", case / "model")
    data = (case / "model" / "model.safetensors").read_bytes()
    (case / "model" / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["classify", "-model", str(case / "model"), "-classifier", str(ws / "classifier"), "-text", "good"]


def _classifier_edit(change: Callable[[dict], None]):
    def setup(ws: Path, case: Path) -> list[str]:
        shutil.copytree(ws / "classifier", case / "classifier")
        storage.update_json(case / "classifier" / "classifier.json", change)
        return ["classify", "-classifier", str(case / "classifier"), "-text", "good"]

    return setup


def _file(name: str, content: bytes | str):
    def make(case: Path) -> Path:
        path = case / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return make


def _classify_input(name: str, content: bytes | str, *extra: str):
    def setup(ws: Path, case: Path) -> list[str]:
        path = _file(name, content)(case)
        return ["classify", "-classifier", str(ws / "classifier"), "-input", str(path), "-output",
                str(case / "out.csv"), *extra]

    return setup


def _transfer(train: Callable[[Path, Path], Path] | None = None, *extra: str):
    def setup(ws: Path, case: Path) -> list[str]:
        path = train(ws, case) if train else ws / "train.csv"
        return ["transfer", "-load_model", str(ws / "model"), "-train", str(path), "-valid", str(ws / "valid.csv"),
                "-experiment_dir", str(case / "exp"), "-c_grid", "0.5", "-no_data_efficiency", *extra]

    return setup


def _train(*extra: str, prepare: Callable[[Path, Path], None] | None = None):
    def setup(ws: Path, case: Path) -> list[str]:
        if prepare:
            prepare(ws, case)
        return ["train", "-train", str(ws / "corpus.txt"), "-experiment_dir", str(case / "exp"), "-rnn_size", "16",
                "-embed_size", "8", "-batch_size", "4", "-seq_length", "16", "-max_iters", "2", "-verbose", "0",
                *extra]

    return setup


def _incomplete_checkpoint(ws: Path, case: Path) -> None:
    save_model(tiny_model(), case / "exp" / "mlstm" / "model" / "iter5")  # a model, no training state


def _other_results(ws: Path, case: Path) -> Path:
    """A train file beside which another train file's results already sit (issue 18, item 4)."""
    data = case / "data"
    data.mkdir()
    shutil.copy(ws / "train.csv", data / "sst400.csv")
    results = case / "exp" / "mlstm" / "data" / "model"
    results.mkdir(parents=True)
    storage.write_json(results / "results.json", {"files_resolved": {"train": str(data / "sst200.csv")}})
    return data / "sst400.csv"


def _symlinked_output(ws: Path, case: Path) -> list[str]:
    (case / "link.csv").symlink_to(ws / "texts.csv")
    return ["classify", "-classifier", str(ws / "classifier"), "-input", str(ws / "texts.csv"), "-output",
            str(case / "link.csv")]


def _export_with_other_model(ws: Path, case: Path) -> list[str]:
    return ["export-default", "-model", str(ws / "other_model"), "-classifier", str(ws / "classifier"), "-out",
            str(case / "default")]


def _nan(tensors: dict) -> None:
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))


def _wrong_shape(tensors: dict) -> None:
    name = sorted(tensors)[0]
    tensors[name] = torch.zeros(3, 3)


def _gz_truncated() -> bytes:
    data = gzip.compress(("sentence\n" + "a fine film\n" * 2000).encode())
    return data[: len(data) // 2]


# --------------------------------------------------------------------------- a failing file system
#
# Read-only and full disks without root: the file functions Python writes through (open, io.open,
# os.mkdir, os.replace) are wrapped so that, under one folder, they fail as the kernel would:
# EROFS at the open or the mkdir, or ENOSPC on the write once a few bytes are written (opening a
# file on a full disk succeeds; the data does not fit). A permission denied on an input is the
# open of that one file failing with EACCES, as it does for a user who may not read it.


class _FullFile:
    """A file open for writing on a disk with ``budget[0]`` bytes free; past them, ENOSPC (naming no file)."""

    def __init__(self, handle, budget: list[int]):
        self._handle, self._budget = handle, budget

    def write(self, data):
        if len(data) > self._budget[0]:
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= len(data)
        return self._handle.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False

    def __iter__(self):
        return iter(self._handle)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _under(path, root: Path) -> bool:
    try:
        return isinstance(path, (str, os.PathLike)) and Path(os.path.abspath(path)).is_relative_to(root)
    except (TypeError, ValueError):
        return False


def _writing(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


@contextlib.contextmanager
def failing_disk(root: Path, code: int, free_bytes: int = 16):
    """Under ``root``, writes fail as on a read-only (``errno.EROFS``) or full (``errno.ENOSPC``) file system."""
    import builtins

    root = Path(os.path.abspath(root))
    real_open, real_mkdir, real_replace = builtins.open, os.mkdir, os.replace
    budget = [free_bytes]

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    def fake_open(file, mode="r", *args, **kwargs):
        if _under(file, root) and _writing(mode):
            if code == errno.EROFS:
                refuse(file)
            return _FullFile(real_open(file, mode, *args, **kwargs), budget)
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if _under(path, root) and code == errno.EROFS:
            if os.path.lexists(path):  # the kernel looks the name up first: EEXIST, or ENOENT without a parent
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_replace(source, target, *args, **kwargs):
        if _under(target, root) and code == errno.EROFS:
            raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(target))
        return real_replace(source, target, *args, **kwargs)

    with pytest_free_patch() as patch:
        patch(builtins, "open", fake_open)
        patch(io, "open", fake_open)
        patch(os, "mkdir", fake_mkdir)
        patch(os, "replace", fake_replace)
        yield


@contextlib.contextmanager
def unreadable(path: Path):
    """Opening ``path`` fails with EACCES, as for a user without read permission (root reads everything)."""
    import builtins

    path = Path(os.path.abspath(path))
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(os.path.abspath(file)) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    with pytest_free_patch() as patch:
        patch(builtins, "open", fake_open)
        patch(io, "open", fake_open)
        yield


@contextlib.contextmanager
def pytest_free_patch():
    """``setattr`` undone on leaving (monkeypatch without pytest, for benchmarks/fault_tour.py too)."""
    undo = []

    def patch(owner, name, value):
        undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    try:
        yield patch
    finally:
        for owner, name, value in reversed(undo):
            setattr(owner, name, value)


def _disk(code: int):
    return lambda ws, case: failing_disk(case, code)


def _unreadable_texts(ws: Path, case: Path):
    return unreadable(ws / "texts.csv")


def _previous_output(ws: Path, case: Path) -> list[str]:
    (case / "out.csv").write_text("the previous output\n")
    return ["classify", "-classifier", str(ws / "classifier"), "-input", str(ws / "texts.csv"), "-output",
            str(case / "out.csv"), "-no_feature_cache"]


def _fifo(name: str):
    def make(case: Path) -> Path:
        path = case / name
        os.mkfifo(path)
        return path

    return make


def _export_into_experiment(ws: Path, case: Path) -> list[str]:
    shutil.copytree(ws / "model", case / "exp" / "mlstm" / "model" / "iter3")
    return ["export-default", "-model", str(ws / "model"), "-classifier", str(ws / "classifier"), "-out",
            str(case / "exp")]


def _export_into_its_model(ws: Path, case: Path) -> list[str]:
    shutil.copytree(ws / "model", case / "model")
    return ["export-default", "-model", str(case / "model"), "-classifier", str(ws / "classifier"), "-out",
            str(case / "model")]


def _finetune_outputs_without_checkpoint(ws: Path, case: Path) -> list[str]:
    run = case / "exp" / "mlstm" / "finetune"
    shutil.copytree(ws / "model", run / "model")
    shutil.copyfile(ws / "classifier" / "classifier.json", run / "classifier.json")
    storage.write_json(run / "results.json", {"kind": "finetuned"})
    return ["finetune", "-load_model", str(ws / "model"), "-train", str(ws / "train.csv"), "-valid",
            str(ws / "valid.csv"), "-experiment_dir", str(case / "exp")]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nothing listens on (bound, then let go)
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def catalogue() -> list[Case]:
    csv_texts = "sentence\ngood\n"
    return [
        # ---- preprocess
        Case("preprocess: missing input", "preprocess",
             lambda ws, c: ["preprocess", str(c / "none.csv"), "--out", str(c / "corpus")], r"input file .* does not exist"),
        Case("preprocess: a directory as input", "preprocess",
             lambda ws, c: ["preprocess", str(ws), "--out", str(c / "corpus")], r"input .* is a directory, not a file"),
        Case("preprocess: unknown extension", "preprocess",
             lambda ws, c: ["preprocess", str(_file("x.xml", "<a/>")(c)), "--out", str(c / "corpus")],
             r"unknown extension '\.xml'"),
        Case("preprocess: --out is another directory", "preprocess",
             lambda ws, c: ["preprocess", str(ws / "texts.csv"), "--out", str(ws)],
             r"exists and is not a corpus; choose another --out"),
        Case("preprocess: truncated .gz", "preprocess",
             lambda ws, c: ["preprocess", str(_file("t.csv.gz", _gz_truncated())(c)), "--out", str(c / "corpus")],
             r"t\.csv\.gz"),
        Case("preprocess: malformed JSON Lines", "preprocess",
             lambda ws, c: ["preprocess", str(_file("t.jsonl", '{"sentence": "a"}\n{"sentence": \n')(c)), "--out",
                            str(c / "corpus"), "--text-key", "sentence"], r"t\.jsonl:2"),
        # ---- featurize
        Case("featurize: model directory missing", "featurize",
             lambda ws, c: ["featurize", "-model", str(c / "none"), "-input", str(ws / "texts.csv"), "-output",
                            str(c / "f.npy")], r"model directory .* does not exist"),
        Case("featurize: a text file as -model", "featurize",
             lambda ws, c: ["featurize", "-model", str(ws / "texts.csv"), "-input", str(ws / "texts.csv"),
                            "-output", str(c / "f.npy")], r"texts\.csv is a file, not a model directory"),
        Case("featurize: a .pt file as -model", "featurize",
             lambda ws, c: ["featurize", "-model", str(_file("old.pt", b"x")(c)), "-input", str(ws / "texts.csv"),
                            "-output", str(c / "f.npy")], r"old\.pt is a PyTorch file, not a model directory"),
        Case("featurize: -output not .npy", "featurize",
             lambda ws, c: ["featurize", "-model", str(ws / "model"), "-input", str(ws / "texts.csv"), "-output",
                            str(c / "x.txt")], r"name it \.npy, not x\.txt"),
        Case("featurize: -output is a directory", "featurize",
             lambda ws, c: ["featurize", "-model", str(ws / "model"), "-input", str(ws / "texts.csv"), "-output",
                            str((c / "d.npy").mkdir() or c / "d.npy")], r"d\.npy is a directory; name a file in it"),
        Case("featurize: rnn_size is a string", "featurize",
             _config_edit(lambda v: v["model"].update(rnn_size="128")),
             r"config\.json: model config key rnn_size is '128', not int"),
        Case("featurize: embed_size missing", "featurize",
             _config_edit(lambda v: v["model"].pop("embed_size")),
             r"config\.json: missing model config key\(s\) embed_size"),
        Case("featurize: unknown config key", "featurize",
             _config_edit(lambda v: v["model"].update(heads=4)), r"unknown model config key\(s\) heads"),
        Case("featurize: config.json of another format", "featurize",
             _config_edit(lambda v: v.update(format="gpt")), r"is not a sentiment-discovery-model config"),
        Case("featurize: NaN weights", "featurize", _weights_edit(_nan), r"holds NaN or infinite values"),
        Case("featurize: a tensor of the wrong shape", "featurize", _weights_edit(_wrong_shape),
             r"has shape \[3, 3\] but config\.json implies"),
        Case("featurize: no text column", "featurize",
             lambda ws, c: ["featurize", "-model", str(ws / "model"), "-input", str(_file("t.csv", "review\na\n")(c)),
                            "-output", str(c / "f.npy")], r"'sentence'"),
        Case("featurize: no texts", "featurize",
             lambda ws, c: ["featurize", "-model", str(ws / "model"), "-input", str(_file("t.csv", "sentence\n")(c)),
                            "-output", str(c / "f.npy")], r"t\.csv"),
        # ---- calibrate
        Case("calibrate: -out is the classifier's directory", "calibrate",
             lambda ws, c: ["calibrate", "-classifier", str(ws / "classifier"), "-valid", str(ws / "valid.csv"),
                            "-out", str(ws / "classifier")], r"exists and is not an empty directory"),
        Case("calibrate: -ngrams without -train", "calibrate",
             lambda ws, c: ["calibrate", "-classifier", str(ws / "classifier"), "-valid", str(ws / "valid.csv"),
                            "-out", str(c / "out"), "-ngrams"], r"-ngrams fits the n-gram part on -train"),
        Case("calibrate: a selection file of one class", "calibrate",
             lambda ws, c: ["calibrate", "-classifier", str(ws / "classifier"), "-valid",
                            str(_file("one.csv", "label,sentence\n1,good\n1,fine\n")(c)), "-out", str(c / "out")],
             r"one\.csv"),
        # ---- classify
        Case("classify: -output is its -input", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-input", str(ws / "texts.csv"),
                            "-output", str(ws / "texts.csv")], r"is also an input .*; write the results to another"),
        Case("classify: -output links to its -input", "classify", _symlinked_output, r"is also an input"),
        Case("classify: -output is a directory", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-text", "good", "-output",
                            str((c / "d.csv").mkdir() or c / "d.csv")], r"is a directory; name a file in it"),
        Case("classify: -output not .csv", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-text", "good", "-output",
                            str(c / "out.txt")], r"name the file \.csv"),
        Case("classify: empty -text", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-text", ""],
             r"-text number 1 is empty"),
        Case("classify: no texts", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier")], r"classify needs texts"),
        Case("classify: a directory as -input", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-input", str(c)],
             r"is a directory, not a file"),
        Case("classify: malformed JSON Lines", "classify",
             _classify_input("t.jsonl", '{"sentence": "a"}\n{"sentence"\n'), r"t\.jsonl:2"),
        Case("classify: truncated .gz", "classify", _classify_input("t.csv.gz", _gz_truncated()), r"t\.csv\.gz"),
        Case("classify: coefficients of the wrong length", "classify",
             _classifier_edit(lambda v: v["all_neurons"].update(coef=[0.5] * 3)),
             r"has 3 weights for 16 features of 16"),
        Case("classify: classifier.json is not JSON", "classify",
             lambda ws, c: ["classify", "-classifier", str(_file("classifier.json", "{")(c)), "-text", "a"],
             r"classifier\.json is not valid JSON"),
        Case("classify: no classifier there", "classify",
             lambda ws, c: ["classify", "-classifier", str(c), "-text", "a"], r"no classifier at"),
        Case("classify: a classifier of another format", "classify",
             _classifier_edit(lambda v: v.update(format="x")), r"is not a sentiment-discovery-classifier file"),
        Case("classify: a classifier from another model", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-model", str(ws / "other_model"),
                            "-text", "a"], r"different weights"),
        Case("classify: truncated weights", "classify", _truncate_weights, r"is truncated or corrupt"),
        # ---- transfer
        Case("transfer: labels other than 0/1", "transfer",
             _transfer(lambda ws, c: write_csv(c / "t.csv", [(3, "a"), (1, "b")])), r"label"),
        Case("transfer: no label column", "transfer",
             _transfer(lambda ws, c: write_csv(c / "t.csv", [("a",)], header=("sentence",))), r"'label'"),
        Case("transfer: one label only", "transfer",
             _transfer(lambda ws, c: write_csv(c / "t.csv", [(1, "a"), (1, "b")])), r"has only label 1"),
        Case("transfer: -write_results is -train", "transfer",
             lambda ws, c: _transfer()(ws, c) + ["-write_results", str(ws / "train.csv")], r"is also an input"),
        Case("transfer: -write_results not .csv", "transfer",
             lambda ws, c: _transfer()(ws, c) + ["-write_results", str(c / "r.txt")], r"name the file \.csv"),
        Case("transfer: results of another training file", "transfer", _transfer(_other_results),
             r"holds the results of transfer on .*sst200\.csv, not .*sst400\.csv; pass another -experiment_name"),
        Case("transfer: -c_grid not positive", "transfer",
             lambda ws, c: _transfer()(ws, c) + ["-c_grid", "-1"], r"-c_grid values must be positive"),
        Case("transfer: -num_neurons 0", "transfer",
             lambda ws, c: _transfer()(ws, c) + ["-num_neurons", "0"], r"-num_neurons must be between 1"),
        Case("transfer: unknown checkpoint name", "transfer",
             lambda ws, c: ["transfer", "-load_model", "e9.pt", "-train", str(ws / "train.csv"),
                            "-experiment_dir", str(c / "exp")], r"no model 'e9\.pt'"),
        # ---- train
        Case("train: missing -train", "train",
             lambda ws, c: ["train", "-train", str(c / "none.txt"), "-experiment_dir", str(c / "exp")],
             r"input file .* does not exist"),
        Case("train: -rnn_size 0", "train", _train("-rnn_size", "0"), r"rnn_size must be at least 1"),
        Case("train: -lr negative", "train", _train("-lr", "-1"), r"-lr must not be negative"),
        Case("train: --resume with no complete checkpoint", "train", _train("--resume", prepare=_incomplete_checkpoint),
             r"holds models \(iter5\) but no complete training checkpoint"),
        Case("train: an earlier run's checkpoints", "train", _train(prepare=_incomplete_checkpoint),
             r"already holds checkpoints of a run \(iter5\); pass --resume"),
        # ---- visualize, export-default, importers, the command line
        Case("visualize: -overwrite without -generate", "visualize",
             lambda ws, c: ["visualize", "-load_model", str(ws / "model"), "-neuron", "1", "-overwrite", "1"],
             r"-overwrite steers generated text only"),
        Case("visualize: no unit recorded", "visualize",
             lambda ws, c: ["visualize", "-load_model", str(ws / "model"), "-experiment_dir", str(c)],
             r"has no sentiment_unit in its metadata; pass -neuron N or -classifier DIR"),
        Case("visualize: -classifier of another model", "visualize",
             lambda ws, c: ["visualize", "-classifier", str(ws / "classifier"), "-load_model",
                            str(ws / "other_model"), "-experiment_dir", str(c)], r"not on -load_model"),
        Case("export-default: a classifier from another model", "export-default", _export_with_other_model,
             r"different weights"),
        Case("import-pytorch: not a checkpoint", "import-pytorch",
             lambda ws, c: ["import-pytorch", str(_file("x.pt", b"not a pickle")(c)), str(c / "m")], r"x\.pt"),
        Case("import-openai: missing folder", "import-openai",
             lambda ws, c: ["import-openai", str(c / "none"), str(c / "m")], r"none"),
        Case("download: a mirror without the files", "download",
             lambda ws, c: ["download", "sst2", "--to", str(c / "data"), "--mirror", str(c / "none")],
             r"does not exist \(check --mirror\)"),
        Case("download: a model mirror without the files", "download",
             lambda ws, c: ["download", "openai-mlstm", "--mirror", str(c / "none")],
             r"mirror .*none holds no 0\.npy of openai-mlstm"),
        Case("featurize: an unknown model name", "featurize",
             lambda ws, c: ["featurize", "-model", "no-such-model", "-input", str(ws / "texts.csv"), "-output",
                            str(c / "f.npy")], r"no model 'no-such-model': not a model directory, nor an installed"),
        Case("models: an unknown flag", "models", lambda ws, c: ["models", "--units"],
             r"unrecognized arguments: --units"),
        Case("finetune: missing training file", "finetune",
             lambda ws, c: ["finetune", "-load_model", str(ws / "model"), "-train", str(c / "none.csv"),
                            "-experiment_dir", str(c / "exp")], r"none\.csv"),
        Case("finetune: --resume with nothing to resume", "finetune",
             lambda ws, c: ["finetune", "-load_model", str(ws / "model"), "-train", str(ws / "train.csv"),
                            "-experiment_dir", str(c / "exp"), "--resume"], r"nothing to resume"),
        Case("finetune: labels with three classes", "finetune",
             lambda ws, c: ["finetune", "-load_model", str(ws / "model"),
                            "-train", str(_file("three.csv", b"label,sentence\n0,bad\n1,good\n2,fine\n")(c)),
                            "-experiment_dir", str(c / "exp")], r"labels in .label. are not binary \(found 0, 1, 2\)"),
        Case("serve: --batch-size 0", "serve",
             lambda ws, c: ["serve", "--port", "0", "--batch-size", "0"], r"--batch-size must be at least 1"),
        Case("serve: a model with no unit and no classifier", "serve",
             lambda ws, c: ["serve", "--port", "0", "--model", str(ws / "model")],
             r"records no sentiment unit and no classifier was given; pass --unit N"),
        Case("serve: a missing classifier", "serve",
             lambda ws, c: ["serve", "--port", "0", "--classifier", str(c / "none")], r"none"),
        Case("benchmark: -rnn_size 0", "benchmark",
             lambda ws, c: ["benchmark", "-rnn_size", "0", "-json", str(c / "b.json")], r"rnn_size must be at least 1"),
        Case("cli: an unknown flag", "cli",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "--no-such-flag"],
             r"unrecognized arguments: --no-such-flag"),
        Case("cli: a flag value of the wrong type", "cli",
             lambda ws, c: ["transfer", "-load_model", "m", "-train", "t.csv", "-num_neurons", "many"],
             r"invalid int value: 'many'"),
        *third_round(),
    ]


def third_round() -> list[Case]:
    """The cases of issue 26 (a third round of faults), most severe first."""
    classify_out = lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-input",  # noqa: E731
                                  str(ws / "texts.csv"), "-output", str(c / "out.csv"), "-no_feature_cache"]
    featurize_out = lambda ws, c: ["featurize", "-model", str(ws / "model"), "-input", str(ws / "texts.csv"),  # noqa: E731
                                   "-output", str(c / "f.npy")]
    preprocess_out = lambda ws, c: ["preprocess", str(ws / "texts.csv"), "--out", str(c / "corpus")]  # noqa: E731
    export_out = lambda ws, c: ["export-default", "-model", str(ws / "model"), "-classifier",  # noqa: E731
                                str(ws / "classifier"), "-out", str(c / "default")]
    read_only, full = _disk(errno.EROFS), _disk(errno.ENOSPC)
    return [
        # ---- 1, 3: directories that hold what the command did not write
        Case("export-default: -out is an experiment directory", "export-default", _export_into_experiment,
             r"--out .*exp holds mlstm, which no export wrote"),
        Case("export-default: -out is its -model directory", "export-default", _export_into_its_model,
             r"--out .*model is or holds the input"),
        Case("finetune: an earlier run's outputs without a checkpoint", "finetune",
             _finetune_outputs_without_checkpoint,
             r"holds the outputs of an earlier fine-tuning run \(model, classifier\.json, results\.json\) but no "
             r"checkpoint"),
        # ---- 5: operating-system errors
        Case("classify: -output on a read-only file system", "classify", classify_out,
             r"^error: cannot write .*out\.csv: read-only file system$", during=read_only),
        Case("classify: -output on a full disk, an earlier output there", "classify", _previous_output,
             r"^error: cannot write .*out\.csv: no space left on device$", during=full),
        Case("featurize: -output on a read-only file system", "featurize", featurize_out,
             r"^error: cannot write .*f\.npy: read-only file system$", during=read_only),
        Case("featurize: -output on a full disk", "featurize", featurize_out,
             r"^error: cannot write .*f\.npy: no space left on device$", during=full),
        Case("preprocess: --out on a read-only file system", "preprocess", preprocess_out,
             r"^error: cannot write .*corpus: read-only file system$", during=read_only),
        Case("preprocess: --out on a full disk", "preprocess", preprocess_out,
             r"^error: cannot write .*corpus: no space left on device$", during=full),
        Case("train: a read-only experiment directory", "train", _train(),
             r"^error: cannot write .*exp.*: read-only file system$", during=read_only),
        Case("transfer: a read-only experiment directory", "transfer", _transfer(None, "-no_feature_cache"),
             r"^error: cannot write .*exp.*: read-only file system$", during=read_only),
        Case("transfer: the feature cache on a read-only file system", "transfer", _transfer(),
             r"^error: cannot write .*exp.*: read-only file system$", during=read_only),
        Case("export-default: a read-only -out", "export-default", export_out,
             r"^error: cannot write .*default.*: read-only file system$", during=read_only),
        Case("classify: an -input it may not read", "classify", classify_out,
             r"^error: cannot read .*texts\.csv: permission denied$", during=_unreadable_texts),
        Case("featurize: an -input it may not read", "featurize", featurize_out,
             r"^error: cannot read .*texts\.csv: permission denied$", during=_unreadable_texts),
        # ---- 6: sizes without an upper bound
        Case("train: -batch_size 1000000000", "train", _train("-batch_size", "1000000000"),
             r"on 1000000000 streams of 16 bytes needs at least .* of memory, more than the .* this machine has "
             r"free .*; lower -batch_size"),
        Case("train: -rnn_size 1000000", "train", _train("-rnn_size", "1000000"),
             r"training 5,000,\d{3},\d{3},\d{3} weights .* needs at least .* TiB of memory"),
        # ---- 7, 8, 12: values in the files a command reads, blamed on the file and key
        Case("classify: classifier.json all_neurons null", "classify",
             _classifier_edit(lambda v: v.update(all_neurons=None)),
             r"classifier\.json is incomplete or corrupt \(TypeError: all_neurons is null, not a JSON object\)"),
        Case("classify: classifier.json n_neurons null", "classify",
             _classifier_edit(lambda v: v.update(n_neurons=None)), r"n_neurons is null, not a JSON object"),
        Case("classify: classifier.json of a layer the model lacks", "classify",
             _classifier_edit(lambda v: v["model"].update(layer=5)),
             r"classifier\.json reads layer 5 \(its model\.layer\), but .* has 1 layer\(s\)"),
        Case("classify: classifier.json of an unknown pooling", "classify",
             _classifier_edit(lambda v: v["model"].update(pooling="median")),
             r"classifier\.json is incomplete or corrupt \(ValueError: model\.pooling is 'median'"),
        Case("featurize: config.json text max_length 0", "featurize",
             _config_edit(lambda v: v["text"].update(max_length=0)),
             r"config\.json: text preprocessing option max_length is 0; give a number of bytes of at least 1"),
        Case("featurize: config.json text max_length -5", "featurize",
             _config_edit(lambda v: v["text"].update(max_length=-5)), r"max_length is -5"),
        # ---- 11: inputs that hold nothing, or a column twice
        Case("preprocess: a header-only CSV", "preprocess",
             lambda ws, c: ["preprocess", str(_file("h.csv", "sentence\n")(c)), "--out", str(c / "corpus")],
             r"h\.csv: no texts to write \(0 records\); a corpus needs at least one"),
        Case("preprocess: an empty .txt", "preprocess",
             lambda ws, c: ["preprocess", str(_file("e.txt", "")(c)), "--out", str(c / "corpus")],
             r"e\.txt: no texts to write"),
        Case("preprocess: a duplicated column name", "preprocess",
             lambda ws, c: ["preprocess", str(_file("d.csv", "sentence,label,sentence\na,1,b\n")(c)), "--out",
                            str(c / "corpus")],
             r"d\.csv: the header names column 'sentence' 2 times \(columns 1, 3\); rename all but one"),
        # ---- 12: unclear or inconsistent
        Case("preprocess: a FIFO as input", "preprocess",
             lambda ws, c: ["preprocess", str(_fifo("pipe.csv")(c)), "--out", str(c / "corpus")],
             r"input .*pipe\.csv is a named pipe \(FIFO\); save what it carries to a file"),
        Case("classify: a FIFO as -input", "classify",
             lambda ws, c: ["classify", "-classifier", str(ws / "classifier"), "-input", str(_fifo("pipe.csv")(c))],
             r"is a named pipe \(FIFO\)"),
        Case("preprocess: a doubly gzipped file", "preprocess",
             lambda ws, c: ["preprocess", str(_file("t.csv.gz", gzip.compress(gzip.compress(b"sentence\na\n")))(c)),
                            "--out", str(c / "corpus")], r"t\.csv\.gz is gzip-compressed twice"),
        Case("train: -lr inf", "train", _train("-lr", "inf"), r"^error: -lr must be a finite number, not inf$"),
        Case("download: an unreachable --mirror URL", "download",
             lambda ws, c: ["download", "sst2", "--to", str(c / "data"), "--mirror",
                            f"http://127.0.0.1:{_closed_port()}/mirror"],
             r"could not download http://127\.0\.0\.1:\d+/mirror/.*\(check --mirror\)$"),
        # ---- 13: sizes without an upper bound, in visualize
        Case("visualize: -generate -seq_length 1000000000", "visualize",
             lambda ws, c: ["visualize", "-load_model", str(ws / "model"), "-neuron", "1", "-generate",
                            "-seq_length", "1000000000", "-experiment_dir", str(c)],
             r"-seq_length must be in \[1, 10000\], not 1000000000"),
        Case("visualize: -overwrite 1e39", "visualize",
             lambda ws, c: ["visualize", "-load_model", str(ws / "model"), "-neuron", "1", "-generate",
                            "-overwrite", "1e39", "-experiment_dir", str(c)],
             r"-overwrite must be in \[-1000000, 1000000\], not 1e\+39"),
    ]


def snapshot(*roots: Path) -> dict[str, bytes | str]:
    """Every file and directory under ``roots``: its bytes (or link target, or "dir")."""
    state: dict[str, bytes | str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                state[str(path)] = f"link to {os.readlink(path)}"
            elif path.is_dir():
                state[str(path)] = "dir"
            elif not path.is_file():  # a FIFO: reading it would wait for a writer
                state[str(path)] = "special file"
            else:
                state[str(path)] = path.read_bytes()
    return state


# A tqdm frame, as a captured stderr holds it: "featurize:  50%|#####     | 84.0/168 [...]".
_PROGRESS_FRAME = re.compile(r"^[\w ]+: +\d+%\|")


@dataclasses.dataclass
class Outcome:
    case: Case
    status: int
    stderr: str
    changed: list[str]  # paths created, removed or modified by the run

    @property
    def lines(self) -> list[str]:
        """The messages printed: lines of text, not a progress bar's frames (a terminal redraws those in place)."""
        return [line for line in self.stderr.strip().splitlines() if not _PROGRESS_FRAME.match(line)]


def try_case(case: Case, workspace: Path, case_dir: Path) -> Outcome:
    """Run one bad input through ``cli.main`` in this process; what it printed and what it changed."""
    case_dir.mkdir(parents=True, exist_ok=True)
    argv = case.setup(workspace, case_dir)
    before = snapshot(workspace, case_dir)
    stderr = io.StringIO()
    during = case.during(workspace, case_dir) if case.during else contextlib.nullcontext()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr), during:
        status = cli.main(argv)
    after = snapshot(workspace, case_dir)
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    return Outcome(case, status, stderr.getvalue(), changed)


def handled(outcome: Outcome) -> bool:
    lines = outcome.lines
    return (
        outcome.status == 2
        and len(lines) == 1
        and lines[0].startswith("error: ")
        and re.search(outcome.case.error, lines[0]) is not None
        and "Traceback" not in outcome.stderr
        and not outcome.changed
    )


# --------------------------------------------------------------------------- kills


TRAIN_FLAGS = dict(
    rnn_size=16, embed_size=8, batch_size=4, seq_length=16, lr=0.01, log_iters=2, verbose=0, max_iters=14,
    save_iters=3, keep_iters=2, dropout=0.1, shuffle=True,
)

FINETUNE_FLAGS = dict(
    batch_size=4, epochs=2.0, eval_every=0.5, precision="fp32", dropout=0.3, lm_loss_weight=0.5, warmup=0.2,
    decay="linear", unfreeze_every=0.5, patience=0,
)
FINETUNE_UPDATES = 12  # 24 training texts in batches of 4, for 2 epochs

# The runner: imports everything once, then forks one child per run, so a run costs no start-up.
# The plot is stubbed (matplotlib took 80 % of a run) by an atomic write of the rows it would
# draw, so each save still renames as many files. spec["command"] is "train" or "finetune".
KILL_RUNNER = r"""
import json, os, random, signal, sys, time
import torch
torch.set_num_threads(1)  # before any operation: a forked child must not inherit a busy thread pool
import tqdm.std
tqdm.std.tqdm.monitor_interval = 0  # no monitor thread: a child forked while it holds tqdm's lock would hang
from sentiment_discovery.foundation import storage; from sentiment_discovery import training
from sentiment_discovery.recipes import finetune, train

def plot(self, path):
    storage.write_json(path, self.to_dict())
training.MetricsHistory.plot = plot

spec = json.loads(sys.argv[1])
def command(name, resume):
    if spec["command"] == "train":
        return train.run(train.TrainConfig(train=spec["corpus"], experiment_dir=spec["experiment_dir"],
                                           experiment_name=name, resume=resume, **spec["flags"]))
    return finetune.run(finetune.FinetuneConfig(experiment_dir=spec["experiment_dir"], experiment_name=name,
                                                resume=resume, **spec["data"], **spec["flags"]))

def resumable(name):
    # train's --resume starts afresh where no checkpoint was saved yet; finetune's needs its checkpoint
    # (or the copy a swap cut between its renames left), else the command is run again afresh.
    if spec["command"] == "train":
        return True
    run_dir = os.path.join(spec["experiment_dir"], name, "finetune")
    return any(os.path.isfile(os.path.join(run_dir, d, "training_state.json")) for d in ("checkpoint", "checkpoint.previous"))

def child(name, resume, stop_at_rename, signal_at_update=None):
    sys.stdout = open(os.devnull, "w")  # result lines; the pipe on fd 1 carries only what is written here
    if signal_at_update is not None:  # tell the parent when this update starts; it kills a moment later
        real_step = training.Trainer.step
        def step(self, *args, **kwargs):
            if self.state.iteration + 1 == signal_at_update:
                os.write(1, b"update\n")
            return real_step(self, *args, **kwargs)
        training.Trainer.step = step
    real_replace, count = os.replace, [0]
    def replace(*args, **kwargs):
        count[0] += 1
        if count[0] == stop_at_rename:  # inside a save: tell the parent, which kills
            os.write(1, b"saving\n")
            time.sleep(60)
        return real_replace(*args, **kwargs)
    os.replace = replace
    status = command(name, resume)
    os.write(1, f"renames {count[0]}\n".encode())
    os._exit(status)

def run(name, resume, kill_at=None, stop_at_rename=None):
    # kill_at: (update, delay): SIGKILL ``delay`` seconds after that update starts.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read); os.dup2(write, 1)
        child(name, resume, stop_at_rename, kill_at[0] if kill_at else None)
    os.close(write)
    started = time.perf_counter()
    output = b""
    while chunk := os.read(read, 64):
        output += chunk
        if stop_at_rename is not None and b"saving" in output:
            os.kill(pid, signal.SIGKILL)
        if kill_at is not None and b"update" in output:
            time.sleep(kill_at[1])
            os.kill(pid, signal.SIGKILL)
            kill_at = None
    os.close(read)
    _, status = os.waitpid(pid, 0)
    renames = [int(line.split()[1]) for line in output.decode().splitlines() if line.startswith("renames")]
    return os.waitstatus_to_exitcode(status), time.perf_counter() - started, renames[0] if renames else None

# The first run is made here, in the parent: the children forked later start warm (the corpus
# cached, torch's first-call set-up done), which takes each run from 4 s to under 1 s.
assert command("straight", False) == 0
code, duration, renames = run("straight_again", False)
assert code == 0
rng = random.Random(spec["seed"])
for index in range(spec["kills"]):
    name = f"killed{index}"
    if index % 2:
        code, _, _ = run(name, False, stop_at_rename=rng.randint(1, renames))
        moment = "mid-save"
    else:
        # A random update, and a random moment within the time one update and its save take.
        update = rng.randint(1, spec["updates"] - 1)
        code, _, _ = run(name, False, kill_at=(update, rng.uniform(0, 0.5 * duration / spec["updates"])))
        moment = "random"
    again = resumable(name)
    resumed, _, _ = run(name, again)
    print(json.dumps({"name": name, "moment": moment, "killed": code == -signal.SIGKILL, "resumed": resumed,
                      "with_resume": again}), flush=True)
"""


def run_kills(root: Path, kills: int = 20, seed: int = 0, timeout: float = 600, command: str = "train") -> list[dict]:
    """A straight run, then ``kills`` runs each SIGKILLed once (half inside a save) and resumed."""
    root.mkdir(parents=True, exist_ok=True)
    spec = {"command": command, "experiment_dir": str(root / "exp"), "seed": seed, "kills": kills}
    if command == "train":
        corpus = root / "corpus.txt"
        corpus.write_text("\n".join(SENTENCES[i % 3] for i in range(36)) + "\n")
        spec.update(corpus=str(corpus), flags=TRAIN_FLAGS, updates=TRAIN_FLAGS["max_iters"])
    else:
        save_model(tiny_model(), root / "model")
        data = {"load_model": str(root / "model"), "train": str(write_csv(root / "train.csv", labelled(24))),
                "valid": str(write_csv(root / "valid.csv", labelled(8, 24)))}
        spec.update(data=data, flags=FINETUNE_FLAGS, updates=FINETUNE_UPDATES)
    # One thread, fixed: the runner forks its children, and a child forked while a parent's
    # OpenMP pool exists can hang in its first product (train would otherwise size the pool
    # by the idle cores).
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", KILL_RUNNER, json.dumps(spec)], capture_output=True, text=True,
                            timeout=timeout, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"kill runner failed: {result.stderr[-2000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def final_state(experiment: Path) -> dict:
    """What must be bit-identical between runs: the newest weights, optimizer, evaluations and loss rows."""
    from sentiment_discovery import training

    iteration, newest = training.list_checkpoints(experiment / "model")[-1]
    tensors = torch.load(newest / training.STATE_TENSORS, weights_only=True)
    optimizer = {key: {name: value.tolist() if hasattr(value, "tolist") else value for name, value in state.items()}
                 for key, state in tensors["optimizer"]["state"].items()}
    deterministic = ("iteration", "epoch", "loss", "learning_rate", "grad_norm", "skipped_updates")
    with open(experiment / "history" / "train.csv", newline="") as handle:
        train_rows = [[row[c] for c in deterministic] for row in csv.DictReader(handle)]
    return {
        "iteration": iteration,
        "checkpoint": newest.name,
        "weights": (newest / "model.safetensors").read_bytes(),
        "optimizer": optimizer,
        "checkpoints": sorted(p.name for p in (experiment / "model").iterdir()),
        "eval": (experiment / "history" / "eval.csv").read_bytes(),
        "train": train_rows,
    }


def finetune_final_state(experiment: Path) -> dict:
    """What must be bit-identical between fine-tuning runs: the model, the head, the classifier, the
    history save its wall times, the last checkpoint's weights and optimizer, and what is in the run directory."""
    from sentiment_discovery import training

    run = experiment / "finetune"
    tensors = torch.load(run / "checkpoint" / training.STATE_TENSORS, weights_only=True)
    optimizer = {key: {name: value.tolist() if hasattr(value, "tolist") else value for name, value in state.items()}
                 for key, state in tensors["optimizer"]["state"].items()}
    with open(run / "history.csv", newline="") as handle:
        history = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    return {
        "model": (run / "model" / "model.safetensors").read_bytes(),
        "head": (run / "best" / "head.safetensors").read_bytes(),
        "checkpoint_weights": (run / "checkpoint" / "weights" / "model" / "model.safetensors").read_bytes(),
        "optimizer": optimizer,
        "classifier": json.loads((run / "classifier.json").read_text()),
        "history": history,
        # A killed writer's hidden temporary stays until a later write finds it stale (storage.STALE_AFTER_S).
        "files": sorted(p.name for p in run.iterdir() if not p.name.startswith(".")),
    }


# --------------------------------------------------------------------------- concurrent writers


HOLDER = r'''
import sys, time
from sentiment_discovery.foundation import storage
with storage.output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
'''


@contextlib.contextmanager
def live_writer(target: Path):
    """Another process that holds ``target``'s lock, as a live run writing it does."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def concurrent_cases(ws: Path, case: Path) -> list[tuple[str, Path, list[str]]]:
    """(name, the output another run is writing, a command writing it too)."""
    train_args = _train()(ws, case)
    return [
        ("classify -output", case / "out.csv",
         ["classify", "-classifier", str(ws / "classifier"), "-input", str(ws / "texts.csv"), "-output",
          str(case / "out.csv")]),
        ("featurize -output", case / "f.npy",
         ["featurize", "-model", str(ws / "model"), "-input", str(ws / "texts.csv"), "-output", str(case / "f.npy")]),
        ("train experiment", case / "exp" / "mlstm", train_args),
        ("transfer results", case / "exp" / "mlstm" / ws.name / "model", _transfer()(ws, case)),
        ("preprocess --out", case / "corpus",
         ["preprocess", str(ws / "texts.csv"), "--out", str(case / "corpus")]),
    ]
