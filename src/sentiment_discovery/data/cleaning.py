"""Cleaning texts on several processes: one process reads the input, ``workers`` clean it.

``preprocess -workers N``: the reading process (the one that parses the input, hashes it and
writes the corpus) sends the texts in chunks to ``N`` processes of a
:class:`concurrent.futures.ProcessPoolExecutor`, which run :func:`~sentiment_discovery.foundation.text.preprocess_text`
on them, and takes the results back in the order it sent them, so the corpus is byte for byte
the one a single process writes. At most :data:`IN_FLIGHT_PER_WORKER` chunks per worker are
out at any time: memory stays constant however large the input.

Why one reader rather than a byte range per worker: a CSV field may hold a quoted newline, so
no offset in a CSV file can be known to start a record without reading everything before it,
and a gzipped input cannot be entered in the middle at all. Reading (decompressing, parsing,
hashing) is the smaller part of the work: on IMDB train 0.8 s against 1.4 s of cleaning on one
core (docs/data.md, "Throughput").
"""

import collections
import concurrent.futures
import multiprocessing
import signal
from collections.abc import Iterable, Iterator

from ..foundation.errors import UserError
from ..foundation.text import TextOptions, preprocess_text

# A chunk holds about this many characters of text (or CHUNK_TEXTS texts, whichever comes first).
CHUNK_CHARS = 1 << 18
CHUNK_TEXTS = 2048
IN_FLIGHT_PER_WORKER = 4


def clean_chunk(texts: list[str], options: TextOptions) -> list[bytes]:
    """What a worker runs: each text cleaned (``preprocess_text``)."""
    return [preprocess_text(text, options) for text in texts]


def _started() -> None:
    """A task that only makes the pool start one more worker."""


def _ignore_sigint() -> None:
    # Ctrl-C reaches every process of the terminal's group: the reading process stops the
    # run (and removes what it wrote); a worker printing its own KeyboardInterrupt would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Cleaners:
    """``workers`` processes that clean texts, between :meth:`start` and :meth:`close` (or a ``with`` block).

    With one worker the reading process cleans the texts itself: no pool, no copies.
    """

    def __init__(self, options: TextOptions, workers: int = 1):
        if workers < 1:
            raise UserError(f"-workers must be at least 1, not {workers}")
        self.options = options
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.workers > 1 and self._pool is None:
            # spawn, not fork: a fresh interpreter per worker, whatever threads this process runs.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
            )
            # Every worker is started now, not on demand: a worker that dies while the pool would
            # still start another can leave that one unstopped, and the pool waiting for it forever.
            for _ in range(self.workers):
                self._pool.submit(_started)

    def close(self) -> None:
        """Stop the workers: chunks not yet started are dropped, running ones finish (milliseconds)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Cleaners":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def clean(self, numbered: Iterable[tuple[int, str]]) -> Iterator[tuple[int, bytes]]:
        """``(line, cleaned bytes)`` for each ``(line, text)``, in the same order."""
        if self._pool is None:
            for line, text in numbered:
                yield line, preprocess_text(text, self.options)
            return
        pending: collections.deque = collections.deque()
        try:
            for lines, texts in _chunks(numbered):
                pending.append((lines, self._pool.submit(clean_chunk, texts, self.options)))
                if len(pending) >= self.workers * IN_FLIGHT_PER_WORKER:
                    yield from _results(pending.popleft())
            while pending:
                yield from _results(pending.popleft())
        except concurrent.futures.process.BrokenProcessPool:
            raise UserError(
                "a preprocess worker process died before it finished (killed, or out of memory?); "
                "nothing was written: run preprocess again (with fewer -workers if memory ran out)"
            ) from None
        finally:
            for _, future in pending:
                future.cancel()


def _chunks(numbered: Iterable[tuple[int, str]]) -> Iterator[tuple[list[int], list[str]]]:
    lines: list[int] = []
    texts: list[str] = []
    chars = 0
    for line, text in numbered:
        lines.append(line)
        texts.append(text)
        chars += len(text)
        if chars >= CHUNK_CHARS or len(texts) >= CHUNK_TEXTS:
            yield lines, texts
            lines, texts, chars = [], [], 0
    if texts:
        yield lines, texts


def _results(item) -> Iterator[tuple[int, bytes]]:
    lines, future = item
    yield from zip(lines, future.result())
