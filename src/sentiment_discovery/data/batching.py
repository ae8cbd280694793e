"""Batches for language-model training: the corpus as parallel byte streams ("transposed").

The epoch's bytes (every text of the corpus, concatenated in corpus order or in a
seeded per-epoch shuffle) are seen as a circle of ``N`` bytes cut into
``world_size * batch_size`` contiguous streams of ``L = batches_per_epoch * seq_length``
bytes; stream ``s`` starts at byte ``s * L``. Batch ``k`` of an epoch holds the next
``seq_length`` bytes of each stream, so the recurrent state computed on one batch is the
right starting state for the next (truncated backpropagation through time, as in the
2017 release and PyTorch's word-language-model example). Rank ``r`` of a distributed
job reads streams ``r * batch_size`` to ``(r + 1) * batch_size - 1``: the ranks' streams
are disjoint and together cover the epoch.

``wrap`` (the default; ``-no_wrap`` turns it off): ``L`` is rounded up, so the last batch
runs past its stream's end into the next stream (the last stream into the start of the
corpus) instead of being dropped, and epoch ``e`` starts every stream ``e * L`` bytes
further on: each stream simply continues where it stopped, so carried state stays
correct across epochs. Every byte is read at least once per epoch; fewer than
``world_size * batch_size * seq_length`` are read twice. Without ``wrap`` ``L`` is
rounded down, the remainder (less than one batch of bytes) is left out, every byte read
is read exactly once, and every epoch starts at the same places.

``reset[b, t]`` says to zero row ``b``'s state before it reads ``inputs[b, t]``:

* ``persist_state 0``: where a text begins;
* ``persist_state 1``: where a shard begins (see :mod:`.corpus`);
* ``persist_state -1``: never.

With 0 or 1 the first step of an epoch is also reset when a stream does not continue
from the previous epoch (the first epoch, ``-no_wrap``, or a reshuffled order).

For featurization and classification batches (texts sorted by length, results put
back in input order) use :func:`length_sorted_batches` (``featurize`` does).
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..foundation.choices import NEVER_RESET, PERSIST_STATE_CHOICES, RESET_AT_SHARD, RESET_AT_TEXT
from ..foundation.errors import UserError
from .corpus import ByteCorpus

__all__ = ["LMBatch", "TransposedBatcher", "length_sorted_batches", "PERSIST_STATE_CHOICES"]

# Settings that fix which bytes every batch holds; a saved position is only valid with the same ones.
_LAYOUT_KEYS = ("num_bytes", "num_texts", "batch_size", "seq_length", "world_size", "wrap", "shuffle", "seed")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), to waste little padding.

    Callers scatter each batch's results back to these indices, restoring input order.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, not {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class LMBatch(NamedTuple):
    """One step of every stream: ``inputs``/``targets`` int64 [B, T] (target = next byte), ``reset`` bool [B, T]."""

    inputs: torch.Tensor
    targets: torch.Tensor
    reset: torch.Tensor


class TransposedBatcher:
    """Iterates the language-model batches of one rank, epoch after epoch, resumable exactly.

    ``batch_size`` is per process. Each ``for batch in batcher`` yields the remaining
    batches of the current epoch; the next loop starts the next epoch. ``state_dict()``
    (plain JSON) records the position, ``load_state_dict()`` restores it.
    """

    def __init__(
        self,
        corpus: ByteCorpus,
        batch_size: int,
        seq_length: int,
        *,
        persist_state: int = RESET_AT_TEXT,
        wrap: bool = True,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1 or seq_length < 1:
            raise UserError(f"-batch_size and -seq_length must be at least 1, not {batch_size} and {seq_length}")
        if persist_state not in PERSIST_STATE_CHOICES:
            raise UserError(f"-persist_state must be 0 (reset per text), 1 (per shard) or -1 (never), not {persist_state}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is not in 0..{world_size - 1} (world_size {world_size})")
        name = f"the {corpus.split!r} split of {corpus.directory}" if corpus.directory else "the corpus"
        if corpus.num_bytes == 0:
            raise UserError(f"{name} is empty: nothing to train on")
        self.corpus = corpus
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.persist_state = persist_state
        self.wrap = wrap
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        streams = world_size * batch_size
        if wrap:
            self.batches_per_epoch = math.ceil(corpus.num_bytes / (streams * seq_length))
        else:
            # Every input needs its next byte as a target, so the last byte is never an input.
            self.batches_per_epoch = (corpus.num_bytes - 1) // (streams * seq_length)
            if self.batches_per_epoch == 0:
                raise UserError(
                    f"{name} has {corpus.num_bytes} bytes, fewer than one batch of world_size x batch_size x "
                    f"seq_length = {streams * seq_length} (+1) needs; drop -no_wrap or use smaller batches"
                )
        self.stream_length = self.batches_per_epoch * seq_length
        self.epoch = 0
        self.step = 0  # batches of the current epoch already yielded
        self._shard_starts = corpus.shard_starts
        self._layout_epoch: int | None = None
        self._order: np.ndarray | None = None
        self._epoch_offsets: np.ndarray = corpus.offsets

    # ----------------------------------------------------------------- iteration

    def __iter__(self):
        if self.step >= self.batches_per_epoch:
            self.epoch += 1
            self.step = 0
        while self.step < self.batches_per_epoch:
            batch = self.batch_at(self.epoch, self.step)
            self.step += 1
            yield batch

    def batch_at(self, epoch: int, step: int) -> LMBatch:
        """Batch ``step`` of ``epoch`` for this rank (what iteration yields there)."""
        if not 0 <= step < self.batches_per_epoch:
            raise IndexError(f"step {step} is outside 0..{self.batches_per_epoch - 1}")
        length = self.seq_length
        rows = np.arange(self.rank * self.batch_size, (self.rank + 1) * self.batch_size, dtype=np.int64)
        shift = epoch if self.wrap else 0
        starts = (rows + shift) * self.stream_length + step * length
        positions = (starts[:, None] + np.arange(length + 1, dtype=np.int64)[None, :]) % self.corpus.num_bytes
        self._use_layout_of(epoch)
        texts = np.searchsorted(self._epoch_offsets, positions, side="right") - 1
        if self._order is None:
            data_index = positions
        else:
            data_index = self.corpus.offsets[self._order[texts]] + (positions - self._epoch_offsets[texts])
        tokens = np.asarray(self.corpus.data[data_index], dtype=np.int64)
        reset = self._reset_mask(epoch, step, positions[:, :length], texts[:, :length])
        return LMBatch(
            inputs=torch.from_numpy(np.ascontiguousarray(tokens[:, :length])),
            targets=torch.from_numpy(np.ascontiguousarray(tokens[:, 1:])),
            reset=torch.from_numpy(reset),
        )

    def _use_layout_of(self, epoch: int) -> None:
        """Set the text order and text start offsets of ``epoch`` (the corpus's own unless shuffled)."""
        if not self.shuffle or self._layout_epoch == epoch:
            return
        order = np.random.default_rng([self.seed, epoch]).permutation(self.corpus.num_texts)
        lengths = self.corpus.lengths[order]
        self._epoch_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._order = order
        self._layout_epoch = epoch

    def _reset_mask(self, epoch: int, step: int, positions: np.ndarray, texts: np.ndarray) -> np.ndarray:
        if self.persist_state == NEVER_RESET:
            return np.zeros(positions.shape, dtype=bool)
        reset = self._epoch_offsets[texts] == positions
        if self.persist_state == RESET_AT_SHARD:
            at = np.searchsorted(self._shard_starts, texts).clip(max=len(self._shard_starts) - 1)
            reset &= self._shard_starts[at] == texts
        if step == 0 and (epoch == 0 or not self.wrap or self.shuffle):
            reset[:, 0] = True
        return reset

    # ----------------------------------------------------------------- position

    def _layout_settings(self) -> dict:
        return {
            "num_bytes": self.corpus.num_bytes,
            "num_texts": self.corpus.num_texts,
            "batch_size": self.batch_size,
            "seq_length": self.seq_length,
            "world_size": self.world_size,
            "wrap": self.wrap,
            "shuffle": self.shuffle,
            "seed": self.seed,
        }

    def state_dict(self) -> dict:
        """The position (JSON-serialisable): epoch, batches of it done, and the settings it depends on."""
        return {"epoch": self.epoch, "step": self.step, **self._layout_settings()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; the corpus and layout settings must be the same."""
        settings = self._layout_settings()
        changed = [key for key in _LAYOUT_KEYS if state.get(key) != settings[key]]
        if changed:
            details = ", ".join(f"{key} {state.get(key)!r} -> {settings[key]!r}" for key in changed)
            raise UserError(f"cannot resume the data position: {details}; resume with the same corpus and flags")
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch < 0 or not 0 <= step <= self.batches_per_epoch:
            raise UserError(f"saved data position epoch {epoch} step {step} is out of range")
        self.epoch, self.step = epoch, step
