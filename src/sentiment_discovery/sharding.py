"""Featurizing on many processes (``torchrun ... -m sentiment_discovery featurize|classify``).

Every process reads the whole input and cuts the same plan from it: the length-sorted batches
of a one-process run (:func:`~sentiment_discovery.data.batching.length_sorted_batches`),
grouped into *pieces* of :data:`PIECE_BATCHES` consecutive batches. Piece ``j`` is featurized
by rank ``j % world_size``: each rank's share is length-sorted, and every batch is exactly the
batch a single process would run, so the features are the same bits as a one-process run.

Each piece is written whole (``storage.atomic_file``) as ``piece-J-of-P.npy`` in a parts
directory (``<output>.parts/``) whose ``manifest.json`` names what the pieces belong to (the
input's hash and the options, as a key the caller gives, the batch size, the count of texts and
pieces). Rank 0 writes the manifest, every rank checks that it sees it (the parts directory must
be on a filesystem all machines share), then each featurizes the pieces it lacks; after a
barrier rank 0 assembles them in input order. A rerun after a crash, with the same or another
number of processes, featurizes only the pieces that are missing.
"""

import atexit
import dataclasses
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data.batching import length_sorted_batches
from .features import encode_texts, iter_pooled_cells, pooled_width
from .foundation import log, storage
from .foundation.errors import UserError
from .training.distributed import DistributedContext, init_distributed, launched_world_size, shutdown_distributed

PARTS_FORMAT = "sentiment-discovery-feature-parts"
PARTS_VERSION = 1
MANIFEST = "manifest.json"
# 32 batches of 64 texts: about 2,000 reviews a piece, a minute or two of one GPU at 4,096 units.
PIECE_BATCHES = 32


def launched_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 when it runs alone."""
    return int(os.environ.get("RANK", "0")) if launched_world_size() > 1 else 0


def join(cuda: bool) -> DistributedContext:
    """The process group torchrun started this process in (Gloo on the CPU, NCCL on GPUs), or one process.

    Under torchrun each process takes the GPU of its local rank, so ``select_device`` finds it.
    """
    if launched_world_size() <= 1:
        return DistributedContext()
    context = init_distributed(cuda)
    if shutdown_distributed not in _registered:
        atexit.register(shutdown_distributed)
        _registered.append(shutdown_distributed)
    return context


_registered: list = []


def parts_directory(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".parts")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The pieces of one input: ``pieces[j]`` is the list of its batches (index arrays)."""

    pieces: list[list[np.ndarray]]
    num_texts: int

    @classmethod
    def of(cls, lengths: Sequence[int], batch_size: int) -> "Plan":
        batches = length_sorted_batches(lengths, batch_size)
        pieces = [batches[start : start + PIECE_BATCHES] for start in range(0, len(batches), PIECE_BATCHES)]
        return cls(pieces=pieces, num_texts=len(lengths))

    def indices(self, piece: int) -> np.ndarray:
        return np.concatenate(self.pieces[piece])

    def of_rank(self, rank: int, world_size: int) -> range:
        return range(rank, len(self.pieces), world_size)


class Parts:
    """The parts directory: a manifest and one ``.npy`` per finished piece."""

    def __init__(self, directory: str | os.PathLike, description: dict):
        self.directory = Path(directory)
        self.description = description

    def piece_path(self, piece: int) -> Path:
        return self.directory / f"piece-{piece}-of-{self.description['pieces']}.npy"

    def prepare(self) -> str:
        """Rank 0: keep the pieces of the same work, clear anything else; returns the manifest's token."""
        manifest = self.directory / MANIFEST
        if self.directory.exists():
            try:
                kept = storage.read_json(manifest, PARTS_FORMAT).get("work") == self.description
            except UserError:
                kept = False
            if not kept:
                storage.remove(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f".*{storage.PARTIAL_SUFFIX}*"):  # left by a process killed mid-write
            stale.unlink()
        token = secrets.token_hex(8)
        storage.write_json(manifest, {"format": PARTS_FORMAT, "format_version": PARTS_VERSION, "token": token,
                                      "work": self.description})
        return token

    def check_shared(self, token: str) -> None:
        """Every rank: the manifest rank 0 just wrote is the one this process sees."""
        try:
            seen = storage.read_json(self.directory / MANIFEST, PARTS_FORMAT).get("token")
        except UserError:
            seen = None
        if seen != token:
            raise UserError(
                f"{self.directory} is not shared with rank 0 (this process sees another or no {MANIFEST}): "
                f"write the output to a filesystem every machine mounts"
            )

    def load(self, piece: int, rows: int, width: int) -> np.ndarray | None:
        path = self.piece_path(piece)
        if not path.is_file():
            return None
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return values if values.dtype == np.float32 and values.shape == (rows, width) else None

    def save(self, piece: int, values: np.ndarray) -> None:
        with storage.atomic_file(self.piece_path(piece), "wb") as handle:
            np.save(handle, values)

    def remove(self) -> None:
        storage.remove(self.directory)


def featurize_share(model, byte_strings, plan: Plan, parts: Parts, rank: int, world_size: int, *,
                    layer: int, pooling: str, precision: str, progress: bool) -> tuple[int, int]:
    """Featurize the pieces of ``rank`` that ``parts`` lacks; returns (pieces reused, pieces featurized)."""
    width = pooled_width(model.config.rnn_size, pooling)
    reused = done = 0
    missing = []
    for piece in plan.of_rank(rank, world_size):
        if parts.load(piece, len(plan.indices(piece)), width) is not None:
            reused += 1
        else:
            missing.append(piece)
    was_training = model.training
    model.eval()
    try:
        for piece in missing:
            indices = plan.indices(piece)
            position = {int(index): row for row, index in enumerate(indices)}
            values = np.zeros((len(indices), width), dtype=np.float32)
            for batch, pooled in iter_pooled_cells(model, byte_strings, 1, layer=layer, poolings=(pooling,),
                                                   progress=progress, precision=precision, batches=plan.pieces[piece]):
                values[[position[int(index)] for index in batch]] = pooled[pooling].cpu().numpy()
            parts.save(piece, values)
            done += 1
    finally:
        model.train(was_training)
    return reused, done


def assemble(plan: Plan, parts: Parts, width: int) -> np.ndarray:
    """The pieces in input order: float32 [texts, width]."""
    features = np.zeros((plan.num_texts, width), dtype=np.float32)
    for piece in range(len(plan.pieces)):
        indices = plan.indices(piece)
        values = parts.load(piece, len(indices), width)
        if values is None:
            raise UserError(f"{parts.piece_path(piece)} is missing or damaged; run the command again to redo it")
        features[indices] = values
    return features


def featurize_across_ranks(
    model,
    texts: Sequence[str | bytes],
    context: DistributedContext,
    parts_dir: str | os.PathLike,
    key: str,
    *,
    batch_size: int = 64,
    preprocess: bool = True,
    layer: int = -1,
    pooling: str = "final",
    precision: str = "fp32",
    progress: bool = False,
) -> np.ndarray | None:
    """The features of ``texts``, each rank featurizing its pieces: the array on rank 0, None elsewhere.

    ``key`` names the input and everything the features depend on (weights, layer, pooling,
    precision, text preparation); pieces written under another key are discarded.
    """
    byte_strings = encode_texts(model, texts, preprocess)
    plan = Plan.of([len(b) for b in byte_strings], batch_size)
    width = pooled_width(model.config.rnn_size, pooling)
    description = {"key": key, "batch_size": batch_size, "texts": plan.num_texts, "width": width,
                   "pieces": len(plan.pieces)}
    parts = Parts(parts_dir, description)
    token = parts.prepare() if context.is_main else None
    token = context.gather_objects(token)[0]
    parts.check_shared(token)
    reused, done = featurize_share(model, byte_strings, plan, parts, context.rank, context.world_size, layer=layer,
                                   pooling=pooling, precision=precision, progress=progress and context.is_main)
    with log.every_rank():
        log.info(f"featurized {done} piece(s) of {len(plan.pieces)}, reused {reused} written before "
                 f"({parts.directory})")
    context.barrier()
    if not context.is_main:
        return None
    return assemble(plan, parts, width)
