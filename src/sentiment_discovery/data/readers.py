"""Reading texts and labels from CSV, TSV, JSON, JSON Lines and plain-text files, gzipped or not.

Everything streams: :func:`iter_records` and :func:`iter_texts` hold one record at a time,
so the corpus builder reads a 40 GB dump in constant memory. The format comes from the
extension (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.txt``, each optionally ``.gz``) unless
``fmt`` overrides it; gzip is recognised by its magic bytes. A ``.json`` file may hold a
list of objects or JSON Lines (McAuley's Amazon dumps are named ``.json`` but are JSON
Lines): the first character decides.

Bad input never disappears silently. Structural problems (a missing file, an unknown
extension, a missing column, malformed CSV or JSON) raise :class:`UserError` naming the
file and line. Row-level problems are repaired or skipped and counted in
:class:`ReadStats`: invalid UTF-8 is replaced with U+FFFD, empty texts and later records
without the text key are skipped. With ``strict`` each of those stops the read instead.

Why this module is long: one idea, streaming records out of five formats with every bad row
repaired or counted the same way. The formats share the record loop, the UTF-8 repair, the
statistics and the strict mode; split by format, each part would be a reader that cannot
stand alone.
"""

import collections
import csv
import dataclasses
import fractions
import gzip
import io
import json
import math
import os
import re
import stat
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..foundation.choices import FORMATS
from ..foundation.errors import UserError

_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_CHARS = 1 << 20

# Invalid UTF-8 is decoded with ``surrogateescape`` (fast, never raises) and each bad byte
# shows up as one lone surrogate; only the fields actually used are checked for them.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")

# Reviews longer than the csv module's 128 KiB default field limit exist; the limit only
# guards against runaway quotes, which strict parsing reports anyway.
csv.field_size_limit(2**31 - 1)

MISSING = None  # value of a key that a record lacks (JSON null reads the same)

# Reasons a row is skipped, as they appear in manifests and summaries.
EMPTY_TEXT = "empty text"
MISSING_TEXT = "missing text key"
UNLABELED = "missing label"


@dataclasses.dataclass
class ReadStats:
    """What a read saw: records, rows skipped (by reason) and rows repaired."""

    records: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    invalid_utf8_replaced: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: "ReadStats") -> None:
        self.records += other.records
        self.skipped.update(other.skipped)
        self.invalid_utf8_replaced += other.invalid_utf8_replaced

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "skipped": dict(sorted(self.skipped.items())),
            "invalid_utf8_replaced": self.invalid_utf8_replaced,
        }

    def summary(self) -> str:
        """One line such as ``25000 records, 3 skipped (2 empty text, 1 missing label)``."""
        parts = [f"{self.records} records"]
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
            parts.append(f"{self.skipped_total} skipped ({reasons})")
        if self.invalid_utf8_replaced:
            parts.append(f"{self.invalid_utf8_replaced} with invalid UTF-8 replaced by U+FFFD")
        return ", ".join(parts)

    def warn_if_lossy(self, path) -> None:
        if self.skipped or self.invalid_utf8_replaced:
            warnings.warn(f"{path}: {self.summary()}", stacklevel=3)


# --------------------------------------------------------------------------- opening files


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format name for ``path``: ``fmt`` if given, else from the extension (``.gz`` ignored)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UserError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    extension = Path(name).suffix
    if extension not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise UserError(
            f"{path}: unknown extension {extension or '(none)'!r}; expected one of {known} (optionally .gz), "
            f"or name the format with -input_format ({'/'.join(FORMATS)})"
        )
    return _EXTENSIONS[extension]


class _HashingReader(io.RawIOBase):
    """Feeds every byte read from ``raw`` to ``digest``, so a file is hashed while it is parsed."""

    def __init__(self, raw, digest):
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._digest.update(memoryview(buffer)[:count])
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: str | os.PathLike, digest=None) -> io.BufferedIOBase:
    """``path`` opened for binary reading, decompressed if it is gzip; ``digest`` sees the raw bytes."""
    path = check_input_file(path)
    raw = open(path, "rb", buffering=0)
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as error:
        raw.close()
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    stream = io.BufferedReader(_HashingReader(raw, digest) if digest is not None else raw, 1 << 20)
    if magic == _GZIP_MAGIC:
        decompressed = gzip.GzipFile(fileobj=stream, mode="rb")
        try:
            inner = decompressed.peek(2)[:2]
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
            decompressed.close()
            raise UserError(f"{path}: corrupt or truncated gzip data ({error})") from None
        if inner == _GZIP_MAGIC:
            decompressed.close()
            raise UserError(f"{path} is gzip-compressed twice; decompress it once (gunzip -c {path} > ...) and "
                            "pass the result")
        return decompressed
    return stream


def check_input_file(path: str | os.PathLike) -> Path:
    """``path``, or the one error every command gives for a missing input or a directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input file {path} does not exist")
    if path.is_dir():
        raise UserError(f"input {path} is a directory, not a file")
    if not path.is_file():  # a FIFO cannot be read twice (hashed, then parsed) and blocks without a writer
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(path.stat().st_mode) else "not a regular file"
        raise UserError(f"input {path} is {kind}; save what it carries to a file and pass that")
    return path


def _open_text(binary, newline: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def _drain(binary) -> None:
    """Read to the end, so that a digest covers the whole file even after a JSON array's ``]``."""
    while binary.read(1 << 20):
        pass


# --------------------------------------------------------------------------- records


def iter_records(
    path: str | os.PathLike,
    keys: Sequence[str],
    *,
    fmt: str | None = None,
    delim: str | None = None,
    stats: ReadStats | None = None,
    digest=None,
) -> Iterator[tuple[int, list]]:
    """Stream ``(line number, [value of each key])`` for every record, in file order.

    A key the first record (or the CSV header) lacks is an error naming the keys that
    exist; a key missing from a later record reads as ``MISSING``. Values are returned as
    parsed (str for delimited and text files; any JSON value for JSON), with invalid
    UTF-8 still escaped: see :func:`repair_utf8`. ``txt`` files have one key, the text,
    whatever its name. ``digest`` (a hashlib object) is fed the raw file bytes.
    """
    path = check_input_file(path)
    fmt = detect_format(path, fmt)
    stats = stats if stats is not None else ReadStats()
    binary = open_binary(path, digest)
    # The text layer is kept here so that it is not collected (closing the file) before the drain.
    # csv reads its own line ends; a .txt line ends at \n, \r\n or a lone \r (old Mac files), as in csv.
    text = _open_text(binary, newline="" if fmt in ("csv", "tsv") else None if fmt == "txt" else "\n")
    try:
        if fmt in ("csv", "tsv"):
            separator = delim if delim is not None else ("\t" if fmt == "tsv" else ",")
            records = _delimited_records(path, text, keys, separator)
        elif fmt == "txt":
            if len(keys) != 1:
                raise UserError(f"{path}: a .txt file holds one text per line and no labels")
            records = _text_lines(text)
        else:
            records = _json_records(path, text, keys, lines_only=fmt == "jsonl")
        for record in records:
            stats.records += 1
            yield record
        if digest is not None:
            _drain(binary)
    except UnicodeDecodeError as error:  # only a broken gzip stream gets past surrogateescape
        raise UserError(f"{path}: cannot decode: {error}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise UserError(f"{path}: corrupt or truncated gzip data ({error})") from None
    finally:
        text.close()


def _delimited_records(path, stream, keys, separator) -> Iterator[tuple[int, list]]:
    if len(separator) != 1:
        raise UserError(f"-delim must be one character, not {separator!r}")
    # strict: an unclosed quote is an error instead of swallowing the rest of the file.
    reader = csv.reader(stream, delimiter=separator, strict=True)
    line = 0
    try:
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path} is empty: expected a header row naming the columns")
        columns = []
        for key in keys:
            if header.count(key) > 1:
                where = ", ".join(str(index + 1) for index, name in enumerate(header) if name == key)
                raise UserError(f"{path}: the header names column {key!r} {header.count(key)} times (columns "
                                f"{where}); rename all but one")
            if key not in header:
                shown = ", ".join(repr(name) for name in header)
                hint = "" if len(header) > 1 else f"; is {separator!r} the right -delim?"
                raise UserError(f"{path}: no column {key!r}; the header has {shown}{hint}")
            columns.append(header.index(key))
        width = len(header)
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row:
                continue  # a blank line holds no record
            if len(row) != width:
                raise UserError(
                    f"{path}:{start}: malformed CSV: {len(row)} fields where the header has {width} "
                    f"(check -delim {separator!r} and the quoting)"
                )
            yield start, [row[index] for index in columns]
    except csv.Error as error:
        raise UserError(f"{path}:{line + 1}: malformed CSV in the row starting here: {error}") from None


def _text_lines(stream) -> Iterator[tuple[int, list]]:
    for number, line in enumerate(stream, start=1):
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        yield number, [line]


def _json_records(path, stream, keys, lines_only: bool) -> Iterator[tuple[int, list]]:
    head = stream.read(_CHUNK_CHARS)
    first = head.lstrip()[:1]
    if first == "[" and not lines_only:
        objects = _json_array(path, stream, head)
    elif first == "{" or first == "":
        objects = _json_lines(path, stream, head)
    else:
        layout = "JSON Lines (one object per line)" if lines_only else "a JSON list of objects or JSON Lines"
        raise UserError(f"{path}: expected {layout}, but the file starts with {first!r}")
    checked = False
    for line, value in objects:
        if not isinstance(value, dict):
            raise UserError(f"{path}:{line}: expected a JSON object, found {type(value).__name__}")
        if not checked:
            for key in keys:
                if key not in value:
                    shown = ", ".join(repr(name) for name in value)
                    raise UserError(f"{path}: the first record (line {line}) has no key {key!r}; its keys are {shown}")
            checked = True
        yield line, [value.get(key) for key in keys]


def _json_lines(path, stream, head: str) -> Iterator[tuple[int, object]]:
    def lines():
        pending: list[str] = []  # pieces of a line that spans chunks
        chunk = head
        while chunk:
            *complete, rest = chunk.split("\n")
            if complete:
                complete[0] = "".join(pending) + complete[0]
                pending.clear()
                yield from complete
            pending.append(rest)
            chunk = stream.read(_CHUNK_CHARS)
        yield "".join(pending)

    for number, line in enumerate(lines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{number}: malformed JSON Lines record: {error.msg} (column {error.colno})") from None


def _json_array(path, stream, head: str) -> Iterator[tuple[int, object]]:
    """Items of a top-level JSON array, decoded one at a time from a buffer refilled as needed."""
    decoder = json.JSONDecoder()
    buffer = head
    position = head.index("[") + 1
    buffer_line = 1  # line number of buffer[0]
    items = 0

    def refill(minimum: int = 0) -> bool:
        nonlocal buffer, position, buffer_line
        more = stream.read(max(_CHUNK_CHARS, minimum))
        buffer_line += buffer.count("\n", 0, position)
        buffer, position = buffer[position:] + more, 0
        return bool(more)

    def next_char() -> str:
        """The next non-space character ('' at the end of the file), leaving position on it."""
        nonlocal position
        while True:
            position = _JSON_SPACE.match(buffer, position).end()
            if position < len(buffer) or not refill():
                return buffer[position : position + 1]

    def fail(message: str, line: int | None = None):
        line = line if line is not None else buffer_line + buffer.count("\n", 0, position)
        raise UserError(f"{path}:{line}: malformed JSON: {message}")

    while True:
        char = next_char()
        if char == "]" and items == 0:
            break
        line = buffer_line + buffer.count("\n", 0, position)
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                error_line = buffer_line + error.lineno - 1  # before refill moves the buffer
                if not refill(len(buffer)):
                    fail(error.msg, error_line)
        items += 1
        yield line, value
        position = end
        char = next_char()
        if char == "]":
            break
        if char != ",":
            fail(f"expected ',' or ']' after list item {items}, found {char or 'the end of the file'!r}")
        position += 1
    position += 1
    if next_char():
        fail("unexpected text after the closing ']'")


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


# --------------------------------------------------------------------------- texts


def repair_utf8(value: str) -> tuple[str, bool]:
    """``value`` with each byte that was not valid UTF-8 replaced by U+FFFD, and whether any was."""
    if value.isascii() or not _ESCAPED_BYTE.search(value):
        return value, False
    return _ESCAPED_BYTE.sub("\ufffd", value), True


def _text_value(path, line: int, key: str, value, strict: bool, stats: ReadStats) -> str | None:
    """The text of one record, repaired; None (counted) when the row is to be skipped."""
    if value is MISSING:
        if strict:
            raise UserError(f"{path}:{line}: record has no {key!r} (-strict stops here; without it the row is skipped)")
        stats.skipped[MISSING_TEXT] += 1
        return None
    if not isinstance(value, str):
        if isinstance(value, (dict, list)):
            raise UserError(f"{path}:{line}: {key!r} holds a JSON {type(value).__name__}, not text")
        value = str(value)
    value, repaired = repair_utf8(value)
    if repaired:
        if strict:
            raise UserError(f"{path}:{line}: invalid UTF-8 in {key!r} (without -strict it is replaced and counted)")
        stats.invalid_utf8_replaced += 1
    if not value.strip():
        if strict:
            raise UserError(f"{path}:{line}: empty text in {key!r} (-strict stops here; without it the row is skipped)")
        stats.skipped[EMPTY_TEXT] += 1
        return None
    return value


def iter_numbered_texts(
    path: str | os.PathLike,
    text_key: str,
    *,
    fmt: str | None = None,
    delim: str | None = None,
    strict: bool = False,
    stats: ReadStats | None = None,
    digest=None,
) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` in file order, skipping (and counting in ``stats``) empty texts."""
    stats = stats if stats is not None else ReadStats()
    for line, (value,) in iter_records(path, [text_key], fmt=fmt, delim=delim, stats=stats, digest=digest):
        text = _text_value(path, line, text_key, value, strict, stats)
        if text is not None:
            yield line, text


def iter_texts(path: str | os.PathLike, text_key: str, **options) -> Iterator[str]:
    """Stream the texts of ``path`` in file order (options as :func:`iter_numbered_texts`)."""
    for _, text in iter_numbered_texts(path, text_key, **options):
        yield text


def read_texts(
    path: str | os.PathLike,
    text_key: str,
    *,
    fmt: str | None = None,
    delim: str | None = None,
    strict: bool = False,
    stats: ReadStats | None = None,
) -> list[str]:
    """All texts of ``path`` in file order; skipped rows are counted in ``stats`` and warned about."""
    stats = stats if stats is not None else ReadStats()
    texts = list(iter_texts(path, text_key, fmt=fmt, delim=delim, strict=strict, stats=stats))
    stats.warn_if_lossy(path)
    return texts


# --------------------------------------------------------------------------- labels


@dataclasses.dataclass
class LabeledTexts:
    """Texts and their 0/1 labels (any integers with ``any_labels``) in file order, with what was skipped to get them."""

    texts: list[str]
    labels: np.ndarray  # int64, 0 or 1 (any integers with any_labels)
    stats: ReadStats
    # Ratings exactly at the middle of their range, which -binarize_sent counts as 0.
    binarized_ties: int = 0
    # Each text's domain (``domain_key``), None when no domain column was read.
    domains: list[str] | None = None

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self.stats.skipped)

    def __len__(self) -> int:
        return len(self.texts)


def _label_value(path, line: int, key: str, value, label_map: dict | None = None) -> float | None:
    """A label as a number (through ``label_map`` first, if given); None when the row has none."""
    if label_map is not None and isinstance(value, str) and value.strip() in label_map:
        return float(label_map[value.strip()])
    if value is MISSING or isinstance(value, bool):
        return None if value is MISSING else float(value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            number = float(value)
        except ValueError:
            known = f" or one of {', '.join(map(repr, label_map))}" if label_map else ""
            raise UserError(
                f"{path}:{line}: label {value[:40]!r} in {key!r} is not a number{known}; labels must be 0/1 "
                f"(or numeric ratings with -binarize_sent)"
            ) from None
    else:
        raise UserError(f"{path}:{line}: label in {key!r} is a JSON {type(value).__name__}, not a number")
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise UserError(f"{path}:{line}: label {value!r} in {key!r} is not a finite number")
    return number


def binarize_labels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Ratings split at the middle of their observed range: the lower half 0, the upper half 1.

    A rating exactly at the middle counts as 0 (as the 2017 release did); the number of
    such ties is returned with the labels.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.astype(np.int64), 0
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise UserError(f"cannot binarize labels: every label is {low:g}")
    middle = (low + high) / 2
    return (values > middle).astype(np.int64), int(np.count_nonzero(values == middle))


def read_labeled(
    path: str | os.PathLike,
    text_key: str,
    label_key: str,
    *,
    fmt: str | None = None,
    delim: str | None = None,
    drop_unlabeled: bool = False,
    binarize_sent: bool = False,
    strict: bool = False,
    label_map: dict[str, float] | None = None,
    any_labels: bool = False,
    domain_key: str | None = None,
) -> LabeledTexts:
    """Texts and binary labels of a labelled file, in file order.

    Labels must be 0 or 1 unless ``binarize_sent`` (ratings split at the middle of their
    range) or ``any_labels`` (any whole numbers, such as star ratings 1-5, kept as they are:
    the classes of ``-multiclass``). ``label_map`` turns label names into numbers first (``{"neg": 0, "pos": 1}``).
    A row without a label is an error unless ``drop_unlabeled`` skips it; every skipped
    row is counted in the result's ``stats`` and warned about. ``domain_key`` names a column
    of domain names (such as ``sst2`` or ``amazon_summary``), kept beside each text in ``domains``.
    """
    stats = ReadStats()
    texts, values, lines, domains = [], [], [], []
    keys = [text_key, label_key] + ([domain_key] if domain_key else [])
    for line, (text_value, label_value, *domain_value) in iter_records(path, keys, fmt=fmt, delim=delim, stats=stats):
        label = _label_value(path, line, label_key, label_value, label_map)
        if label is None:
            if not drop_unlabeled:
                raise UserError(f"{path}:{line}: no label in {label_key!r}; pass -drop_unlabeled to skip unlabeled rows")
            stats.skipped[UNLABELED] += 1
            continue
        text = _text_value(path, line, text_key, text_value, strict, stats)
        if text is None:
            continue
        if domain_key:
            domain = domain_value[0]
            if not isinstance(domain, str) or not domain.strip():
                raise UserError(f"{path}:{line}: no domain in {domain_key!r}")
            domains.append(domain.strip())
        texts.append(text)
        values.append(label)
        lines.append(line)
    values = np.asarray(values, dtype=np.float64)
    ties = 0
    found = np.unique(values)
    if any_labels:
        if binarize_sent:
            raise UserError("-binarize_sent makes two classes of ratings and -multiclass keeps every label a class: "
                            "pass one of them")
        fractional = found[found != np.round(found)]
        if fractional.size:
            line = lines[int(np.flatnonzero(values == fractional[0])[0])]
            raise UserError(f"{path}:{line}: label {fractional[0]:g} in {label_key!r} is not a whole number; "
                            f"-multiclass labels are integers such as star ratings")
        labels = values.astype(np.int64)
    elif not np.isin(found, (0.0, 1.0)).all():
        if not binarize_sent:
            shown = ", ".join(f"{v:g}" for v in found[:8]) + (", ..." if found.size > 8 else "")
            raise UserError(
                f"{path}: labels in {label_key!r} are not binary (found {shown}); "
                f"pass -binarize_sent to split them at the middle of their range"
            )
        labels, ties = binarize_labels(values)
    else:
        labels = values.astype(np.int64)
    stats.warn_if_lossy(path)
    return LabeledTexts(texts=texts, labels=labels, stats=stats, binarized_ties=ties,
                        domains=domains if domain_key else None)


# --------------------------------------------------------------------------- splits

SPLIT_NAMES = ("train", "valid", "test")


def parse_split(split: str | float | Sequence[float]) -> tuple[float, ...]:
    """Split proportions: ``"1000,1,1"`` as given, a single fraction ``0.9`` as ``(0.9, 0.1)``.

    At most three parts (train, validation, test); each at least 0, train above 0.
    """
    if isinstance(split, str):
        try:
            parts = tuple(float(part) for part in split.replace(" ", "").split(","))
        except ValueError:
            raise UserError(f"-split {split!r}: expected numbers like 1000,1,1 or a fraction like 0.9") from None
    elif isinstance(split, (int, float)):
        parts = (float(split),)
    else:
        parts = tuple(float(part) for part in split)
    if len(parts) == 1:
        fraction = parts[0]
        if not 0 < fraction <= 1:
            raise UserError(f"-split {fraction:g}: a single value is the training fraction, in (0, 1]")
        parts = (fraction, 1.0 - fraction) if fraction < 1 else (1.0,)
    if len(parts) > 3:
        raise UserError(f"-split {split!r}: at most three parts (train, validation, test)")
    if any(not math.isfinite(part) or part < 0 for part in parts) or parts[0] <= 0:
        raise UserError(f"-split {split!r}: proportions must be finite, at least 0, and train above 0")
    return parts


def split_counts(split: str | float | Sequence[float]) -> tuple[int, ...]:
    """The split as whole numbers in the same ratio: ``1000,1,1`` stays, ``0.9`` is ``(9, 1)``.

    Fractions are rounded to a thousandth of the total first.
    """
    parts = parse_split(split)
    if all(part.is_integer() for part in parts) and sum(parts) <= 1_000_000:
        return tuple(int(part) for part in parts)
    total = sum(parts)
    ratios = [fractions.Fraction(part / total).limit_denominator(1000) for part in parts]
    denominator = math.lcm(*(ratio.denominator for ratio in ratios))
    counts = [int(ratio * denominator) for ratio in ratios]
    divisor = math.gcd(*counts)
    return tuple(count // divisor for count in counts)


def apportion(total: int, parts: Sequence[float]) -> np.ndarray:
    """``total`` divided in proportion to ``parts`` (largest remainder), at least 1 per non-zero part if possible."""
    parts = np.asarray(parts, dtype=np.float64)
    exact = parts / parts.sum() * total
    sizes = np.floor(exact).astype(np.int64)
    for index in np.argsort(-(exact - sizes), kind="stable")[: total - int(sizes.sum())]:
        sizes[index] += 1
    for index in np.flatnonzero((sizes == 0) & (parts > 0)):
        donor = int(np.argmax(sizes))
        if sizes[donor] > 1:
            sizes[donor] -= 1
            sizes[index] += 1
    return sizes


def split_indices(n: int, split: str | float | Sequence[float], *, seed: int | None = 0) -> list[np.ndarray]:
    """Indices 0..n-1 divided into the parts of ``split`` in proportion, shuffled with ``seed``.

    ``seed=None`` keeps file order. Sizes follow :func:`apportion`, so they sum to ``n``
    and every non-zero part gets an index when there are enough.
    """
    sizes = apportion(n, parse_split(split))
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return np.split(order, np.cumsum(sizes)[:-1])
