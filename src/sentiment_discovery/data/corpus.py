"""The on-disk byte corpus: preprocessed texts as one flat ``uint8`` file per split, memory-mapped.

A corpus directory holds, for each split (``train``, ``valid``, ``test``)::

    <split>.bytes     every text after preprocessing, concatenated (uint8)
    <split>.offsets   int64 little-endian, num_texts + 1 entries: text i is bytes[offsets[i]:offsets[i+1]]
    manifest.json     sources (path, size, sha256), options, counts of texts, bytes and skipped rows

:func:`build_corpus` streams its inputs once, in constant memory, into the corpus that a
:class:`CorpusOptions` describes (recorded in the manifest: unchanged, no rebuild). ``split`` deals the
texts as the 2017 release did: with ``1000,1,1``, of every run of 1002 texts 1000 go to
``train``, one to ``valid`` and one to ``test`` (the run's first text to train, its second
to valid, its third to test, so even a tiny input fills every split; ``shuffle`` deals each
run in a random, seeded order instead). Within a split texts keep their input order.
Each split is cut into shards, equal runs of consecutive texts: ``num_shards`` (1002, as
in the release) shared in proportion to the split, so ``1000,1,1`` gives 1000 training
shards, one validation and one test shard. ``persist_state 1`` resets the recurrent
state where a shard begins.

:class:`ByteCorpus` memory-maps a split (``numpy.memmap``), so a 40 GB corpus is trained
on without being read into memory (the release's ``-lazy``).
"""

import array
import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..foundation import log, storage
from ..foundation.choices import DEFAULT_NUM_SHARDS
from ..foundation.errors import UserError
from ..foundation.text import PAPER_TEXT_OPTIONS, TextOptions, preprocess_text, recorded_text_options
from .cleaning import Cleaners
from .readers import (
    EMPTY_TEXT,
    SPLIT_NAMES,
    ReadStats,
    apportion,
    check_input_file,
    detect_format,
    iter_numbered_texts,
    split_counts,
)

FORMAT_NAME = "sentiment-discovery-corpus"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
DEFAULT_SEED = 1234
_OFFSETS_DTYPE = np.dtype("<i8")
_OFFSETS_PER_FLUSH = 1 << 16
_WRITE_BUFFER = 8 << 20


def data_file(split: str) -> str:
    return f"{split}.bytes"


def offsets_file(split: str) -> str:
    return f"{split}.offsets"


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True, eq=False)
class ByteCorpus:
    """One split of a corpus: ``data`` (uint8) and ``offsets`` (int64, ``num_texts + 1``).

    Opened from disk both are read-only ``numpy.memmap`` arrays; :meth:`from_texts` builds
    an in-memory one (for tests and small jobs).
    """

    data: np.ndarray
    offsets: np.ndarray
    num_shards: int = 1
    directory: Path | None = None
    split: str = "train"

    @classmethod
    def open(cls, directory: str | os.PathLike, split: str = "train") -> "ByteCorpus":
        directory = Path(directory)
        manifest = read_manifest(directory)
        splits = manifest["splits"]
        if split not in splits:
            raise UserError(f"corpus {directory} has no {split!r} split; it has {', '.join(splits)}")
        entry = splits[split]
        data_path, offsets_path = directory / entry["data"], directory / entry["offsets"]
        for path, size in ((data_path, entry["bytes"]), (offsets_path, (entry["texts"] + 1) * 8)):
            if not path.is_file() or path.stat().st_size != size:
                raise UserError(
                    f"corpus {directory} is damaged: {path.name} should hold {size} bytes; rebuild it with "
                    f"`sentiment-discovery preprocess`"
                )
        offsets = np.memmap(offsets_path, dtype=_OFFSETS_DTYPE, mode="r")
        # An empty file cannot be memory-mapped; an empty split has no bytes to map anyway.
        data = np.memmap(data_path, dtype=np.uint8, mode="r") if entry["bytes"] else np.zeros(0, np.uint8)
        if offsets[0] != 0 or offsets[-1] != entry["bytes"]:
            raise UserError(f"corpus {directory} is damaged: {offsets_path.name} does not match {data_path.name}")
        return cls(data=data, offsets=offsets, num_shards=entry["shards"], directory=directory, split=split)

    @classmethod
    def from_texts(cls, texts: Sequence[bytes], num_shards: int = 1) -> "ByteCorpus":
        """An in-memory corpus of already prepared byte strings (none may be empty)."""
        for index, text in enumerate(texts):
            if not text:
                raise UserError(f"text {index} is empty; a corpus holds no empty texts")
        lengths = np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = np.frombuffer(b"".join(texts), dtype=np.uint8)
        return cls(data=data, offsets=offsets, num_shards=max(1, num_shards))

    @property
    def num_texts(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_bytes(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def shard_starts(self) -> np.ndarray:
        """Index of the first text of each shard (shards are equal runs of consecutive texts)."""
        return shard_starts(self.num_texts, self.num_shards)

    def text(self, index: int) -> bytes:
        return bytes(self.data[self.offsets[index] : self.offsets[index + 1]])

    def __len__(self) -> int:
        return self.num_texts


def shard_starts(num_texts: int, num_shards: int) -> np.ndarray:
    """First text index of each of ``num_shards`` near-equal runs of ``num_texts`` texts (no duplicates)."""
    if num_texts == 0:
        return np.zeros(0, dtype=np.int64)
    if num_shards >= num_texts:  # every text starts a shard (and no index of num_shards entries is made)
        return np.arange(num_texts, dtype=np.int64)
    return np.unique(np.arange(num_shards, dtype=np.int64) * num_texts // num_shards)


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST_FILE
    if not Path(directory).is_dir():
        raise UserError(f"corpus directory {directory} does not exist")
    if not path.is_file():
        raise UserError(f"{directory} is not a corpus (no {MANIFEST_FILE}); build one with `sentiment-discovery preprocess`")
    manifest = storage.read_json(path, FORMAT_NAME, hint="; rebuild the corpus", what="manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path} has format version {manifest.get('format_version')}, this version reads {FORMAT_VERSION}; "
            f"rebuild the corpus"
        )
    return manifest


def is_corpus(directory: str | os.PathLike) -> bool:
    return (Path(directory) / MANIFEST_FILE).is_file()


# --------------------------------------------------------------------------- building


def deal_order(counts: Sequence[int]) -> np.ndarray:
    """The split of each text in one run of ``sum(counts)`` texts: one to each split first, then the rest."""
    firsts = [index for index, count in enumerate(counts) if count > 0]
    rest = [index for index, count in enumerate(counts) for _ in range(count - (1 if count > 0 else 0))]
    return np.asarray(firsts + rest, dtype=np.int64)


class _SplitWriter:
    """Appends texts to ``<split>.bytes`` and their end offsets to ``<split>.offsets``."""

    def __init__(self, directory: Path, split: str):
        self.split = split
        self.texts = 0
        self.bytes = 0
        self._data = open(directory / data_file(split), "wb", buffering=_WRITE_BUFFER)
        self._offsets = open(directory / offsets_file(split), "wb")
        self._pending = array.array("q", [0])

    def append(self, text: bytes) -> None:
        self._data.write(text)
        self.bytes += len(text)
        self.texts += 1
        self._pending.append(self.bytes)
        if len(self._pending) >= _OFFSETS_PER_FLUSH:
            self._flush_offsets()

    def _flush_offsets(self) -> None:
        self._offsets.write(np.asarray(self._pending, dtype=_OFFSETS_DTYPE).tobytes())
        del self._pending[:]

    def close(self) -> None:
        self._flush_offsets()
        for handle in (self._data, self._offsets):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()


class _Meter:
    """Stands in for a hashlib object: hashes the raw input and moves the progress bar."""

    def __init__(self, bar):
        self.sha256 = hashlib.sha256()
        self._bar = bar

    def update(self, data) -> None:
        self.sha256.update(data)
        self._bar.update(len(data))


def _source_entry(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
    """What makes a corpus out of its inputs: the key of the text, the split, the shards, the
    cleaning and the reading. :meth:`recorded` is the manifest's ``"options"``, the corpus's
    cache key: a corpus whose inputs and recorded options are unchanged is not built again.

    How it is built (``progress``, ``workers``, ``wait``) is not an option of the corpus: the
    same bytes come out either way.
    """

    # Column or key of the text; comma-separated for one key per input (IMDB's ``text``, Amazon's ``reviewText``).
    text_key: str
    split: str | float | Sequence[float] = (1.0,)
    num_shards: int = DEFAULT_NUM_SHARDS
    shuffle: bool = False
    seed: int = DEFAULT_SEED  # only with ``shuffle``
    text_options: TextOptions = PAPER_TEXT_OPTIONS
    fmt: str | None = None  # None: by extension
    delim: str | None = None  # None: by extension
    strict: bool = False

    def recorded(self) -> dict:
        """The options as the manifest records them (checked: a bad value is a ``UserError``)."""
        if not isinstance(self.text_options, TextOptions):
            raise UserError(f"text_options must be a TextOptions, not {type(self.text_options).__name__}")
        if self.num_shards < 1:
            raise UserError(f"-num_shards must be at least 1, not {self.num_shards}")
        counts = split_counts(self.split)
        return {
            "text_key": self.text_key,
            "split": list(counts),
            "num_shards": int(self.num_shards),
            "shuffle": bool(self.shuffle),
            # The seed only matters when dealing is shuffled; other seeds are the same corpus.
            "seed": int(self.seed) if self.shuffle else None,
            "text_options": recorded_text_options(self.text_options),
            "fmt": self.fmt,
            "delim": self.delim,
            "strict": bool(self.strict),
        }


def _resolve_inputs(inputs) -> list[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(path).resolve() for path in inputs]
    if not paths:
        raise UserError("preprocess needs at least one input file")
    for path in paths:
        check_input_file(path)
    return paths


def _text_keys_per_source(text_key: str, sources: list[Path]) -> list[str]:
    """One key for every input, or a comma-separated key per input (IMDB's ``text``, Amazon's ``reviewText``)."""
    keys = [key.strip() for key in str(text_key).split(",")]
    if len(keys) == 1:
        return keys * len(sources)
    if len(keys) != len(sources) or not all(keys):
        raise UserError(
            f"-text_key {text_key!r} names {len(keys)} keys for {len(sources)} inputs: give one key, or one per input"
        )
    return keys


def _up_to_date(out_dir: Path, sources: list[Path], options: dict) -> bool:
    """Whether ``out_dir`` already holds the corpus these sources and options make."""
    if not is_corpus(out_dir):
        return False
    try:
        manifest = read_manifest(out_dir)
    except UserError:
        return False
    if manifest.get("options") != options or [entry["path"] for entry in manifest["sources"]] != list(map(str, sources)):
        return False
    for entry, path in zip(manifest["sources"], sources):
        if path.stat().st_size != entry["bytes"]:
            return False
        # Always hashed: an edit that keeps the size (and, copied or restored, the mtime) is still a change.
        if storage.file_sha256(path) != entry["sha256"]:
            return False
    return True


def build_corpus(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: CorpusOptions,
    *,
    progress: bool = False,
    wait: bool = False,
    workers: int = 1,
) -> Path:
    """Preprocess ``inputs`` (read in order, as one stream of texts) into a corpus at ``out_dir``.

    A no-op when ``out_dir`` already holds the corpus of these unchanged inputs and
    options; otherwise it is rebuilt (atomically: a crash leaves the old corpus or none).
    The no-op and the summary are logged (``log.info``). Another live build of ``out_dir``
    is refused, or with ``wait`` waited for. ``workers`` processes clean the texts while
    this one reads and writes (:mod:`.cleaning`); the corpus is the same byte for byte
    whatever their number.
    """
    out_dir = Path(out_dir)
    sources = _resolve_inputs(inputs)
    for source in sources:
        detect_format(source, options.fmt)  # an unknown extension fails before anything is written
    text_keys = _text_keys_per_source(options.text_key, sources)
    recorded = options.recorded()
    with storage.output_lock(out_dir, what="--out", wait=wait):
        try:
            return _build_corpus(sources, out_dir, text_keys, options, recorded, progress, workers)
        except BaseException as error:  # a full disk, a Ctrl-C, a bad row: no <out>.partial is left behind
            shutil.rmtree(storage.partial_directory(out_dir), ignore_errors=True)
            if isinstance(error, OSError) and error.filename is None:  # a full disk names no file of its own
                raise OSError(error.errno, error.strerror, str(out_dir)) from error
            raise


def _build_corpus(sources, out_dir, text_keys, options: CorpusOptions, recorded: dict, progress, workers) -> Path:
    if _up_to_date(out_dir, sources, recorded):
        log.info(f"{out_dir} is up to date with its inputs and options: nothing to do")
        return out_dir
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_corpus(out_dir))):
        raise UserError(f"{out_dir} exists and is not a corpus; choose another --out or remove it")

    partial = storage.partial_directory(out_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    counts = recorded["split"]
    shards = apportion(options.num_shards, counts)
    names = [SPLIT_NAMES[index] for index, count in enumerate(counts) if count > 0]
    writers = {index: _SplitWriter(partial, SPLIT_NAMES[index]) for index, count in enumerate(counts) if count > 0}
    order = deal_order(counts)
    rng = np.random.default_rng(options.seed) if options.shuffle else None
    pad_length = len(preprocess_text("", options.text_options))
    source_entries, per_source = [], []
    total = ReadStats()
    bar = tqdm(
        total=sum(path.stat().st_size for path in sources),
        unit="B",
        unit_scale=True,
        disable=not progress,
        desc="preprocess",
        delay=1.0,  # quick builds and early errors print no bar
    )
    dealt = 0
    finished = False
    cleaners = Cleaners(options.text_options, workers)
    try:
        cleaners.start()
        for path, source_key in zip(sources, text_keys):
            entry = _source_entry(path)
            stats = ReadStats()
            meter = _Meter(bar)
            texts = iter_numbered_texts(
                path, source_key, fmt=options.fmt, delim=options.delim, strict=options.strict, stats=stats, digest=meter
            )
            for line, prepared in cleaners.clean(texts):
                if len(prepared) <= pad_length:  # nothing left once markup and spaces are gone
                    if options.strict:
                        raise UserError(f"{path}:{line}: the text is empty after preprocessing (-strict stops here)")
                    stats.skipped[EMPTY_TEXT] += 1
                    continue
                slot = dealt % len(order)
                if slot == 0 and rng is not None:
                    order = rng.permutation(order)
                writers[int(order[slot])].append(prepared)
                dealt += 1
            entry["sha256"] = meter.sha256.hexdigest()
            source_entries.append(entry)
            per_source.append(stats.to_dict())
            total.add(stats)
        finished = True
    finally:
        cleaners.close()
        bar.close()
        for writer in writers.values():
            writer.close()
        if not finished:
            shutil.rmtree(partial, ignore_errors=True)
    if dealt == 0:
        shutil.rmtree(partial, ignore_errors=True)
        shown = ", ".join(str(path) for path in sources)
        raise UserError(f"{shown}: no texts to write ({total.summary()}); a corpus needs at least one")

    splits = {}
    for index, writer in writers.items():
        name = SPLIT_NAMES[index]
        splits[name] = {
            "data": data_file(name),
            "offsets": offsets_file(name),
            "texts": writer.texts,
            "bytes": writer.bytes,
            "shards": int(shards[index]),
        }
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sources": source_entries,
        "options": recorded,
        "splits": splits,
        "read": total.to_dict(),
        "read_per_source": per_source,
        "build_seconds": round(time.monotonic() - started, 3),
    }
    (partial / MANIFEST_FILE).write_text(storage.json_text(manifest), encoding="utf-8")
    storage.swap_in(partial, out_dir)
    texts = ", ".join(f"{name} {splits[name]['texts']} texts / {splits[name]['bytes']} bytes" for name in names)
    log.info(f"{out_dir}: {texts}; read {total.summary()}")
    return out_dir


def ensure_corpus(
    source: str | os.PathLike, cache_dir: str | os.PathLike, options: CorpusOptions, *, progress: bool = False
) -> Path:
    """A corpus directory for ``source``: itself if it is one, else built once under ``cache_dir``.

    A raw file gets ``<cache_dir>/<file name>.<hash of its path>.corpus``, rebuilt only when
    the file or the options change. Under DistributedDataParallel call it on one rank and
    wait at a barrier before the others open the result.
    """
    source = Path(source)
    if source.is_dir():
        read_manifest(source)  # a directory must already be a corpus
        return source
    if not source.exists():
        raise UserError(f"input file {source} does not exist")
    key = hashlib.sha256(str(source.resolve()).encode("utf-8")).hexdigest()[:12]
    out_dir = Path(cache_dir) / f"{source.name}.{key}.corpus"
    # wait: two runs that need one cached corpus: the second waits, then finds it built
    return build_corpus([source], out_dir, options, progress=progress, wait=True)
