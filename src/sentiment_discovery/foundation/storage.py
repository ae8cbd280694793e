"""Files on disk: written whole or not at all, read with one clear error, guarded against a second writer.

Every file or directory a command writes goes through here:

- :func:`atomic_file` / :func:`write_text` / :func:`write_json`: a temporary file in the
  same directory, flushed and fsynced, then renamed over the target (``os.replace`` is
  atomic on POSIX), so a reader or a crash sees the old file or the new one, never half;
- :func:`replace_directory`: a directory built beside its target (``<name>.partial``) and
  swapped in with two renames; ``<name>.previous`` exists only between them, and
  :func:`recover_directory` puts it back if a crash fell there;
- :func:`read_json`: a versioned JSON file (``format``, ``format_version``) or one
  :class:`UserError` naming the file and what is wrong;
- :func:`file_sha256`;
- :func:`output_lock`: an advisory lock per output (and per experiment) held for the
  run, so that a second run writing the same place is refused before it does any work;
- :func:`check_output`: an output that names an input or a directory is refused up front;
- :func:`os_error_message`: an operating-system error on a file as the one line a user reads
  (``cannot write out.csv: no space left on device``), the staging name taken back to its target.
"""

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .errors import UserError

# One indent for every JSON file the package writes.
JSON_INDENT = 2
PARTIAL_SUFFIX = ".partial"
PREVIOUS_SUFFIX = ".previous"
LOCK_SUFFIX = ".lock"
# The staging name of earlier versions (and of finetune's saves before they used ``.partial``).
SAVING_SUFFIX = ".saving"
# A temporary of a dead writer untouched this long is removed by the next write of its file.
STALE_AFTER_S = 60.0
# Errors that say a write failed, whatever the path: the file system is full or read-only.
WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# --------------------------------------------------------------------------- files


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (the directory entry itself is data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def temporary_name(path: str | os.PathLike, pid: int | None = None) -> Path:
    """A name beside ``path`` that no other process picks (the pid) and that ends like ``path`` does."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}{PARTIAL_SUFFIX}{path.suffix}")


_TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)" + re.escape(PARTIAL_SUFFIX) + r"(?P<suffix>\.[^.]*)?$")


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left beside it (their process is gone).

    A temporary of a live process, this one's included, is another write in flight: left alone;
    so is one written to in the last ``STALE_AFTER_S`` seconds (its writer may be alive in
    another process namespace sharing the folder).
    """
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}.*{PARTIAL_SUFFIX}{glob_escape(path.suffix)}"))
    except OSError:
        return removed
    for candidate in candidates:
        match = _TEMPORARY_NAME.match(candidate.name)
        if not match or match["name"] != path.name or (match["suffix"] or "") != path.suffix:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or process_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            if time.time() - candidate.stat().st_mtime < STALE_AFTER_S:
                continue
            candidate.unlink()
            removed.append(candidate)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_args) -> Iterator:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` whole.

    On an exception ``path`` is untouched and the temporary file is removed. A kill leaves
    it, under a hidden name holding the writer's pid: the next write of ``path`` removes the
    temporaries of writers that are no longer alive. An operating-system error names ``path``
    (a full disk reports none of its own).
    """
    path = Path(path)
    temporary = temporary_name(path)
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        with open(temporary, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename in (None, str(temporary), temporary):
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    fsync_directory(path.parent)


def write_text(path: str | os.PathLike, text: str, **open_args) -> Path:
    with atomic_file(path, "w", **open_args) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def json_text(values, sort_keys: bool = False) -> str:
    return json.dumps(values, indent=JSON_INDENT, sort_keys=sort_keys) + "\n"


def write_json(path: str | os.PathLike, values, sort_keys: bool = False) -> Path:
    return write_text(path, json_text(values, sort_keys))


def read_json(
    path: str | os.PathLike,
    format_name: str | None = None,
    max_version: int | None = None,
    hint: str = "",
    what: str = "file",
) -> dict:
    """A JSON object from ``path``, checked to be ``format_name`` of a version this code reads.

    ``hint`` ends the error about an unreadable file (e.g. "; rebuild the corpus").
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}){hint}") from None
    except OSError as error:
        raise UserError(f"{path} is unreadable ({error.strerror})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} does not hold a JSON object{hint}")
    if format_name is not None and values.get("format") != format_name:
        raise UserError(f"{path} is not a {format_name} {what} (its 'format' is {values.get('format')!r}){hint}")
    version = values.get("format_version", 0)
    if max_version is not None and (not isinstance(version, int) or version > max_version):
        raise UserError(f"{path} has format_version {version!r}; this version reads up to {max_version}")
    return values


def update_json(path: str | os.PathLike, change: Callable[[dict], None], sort_keys: bool = False) -> Path:
    """Read the JSON object at ``path``, let ``change`` edit it, write it back atomically."""
    values = read_json(path)
    change(values)
    return write_json(path, values, sort_keys=sort_keys)


def dataclass_from_dict(cls, values, noun: str, require_all: bool = False):
    """``cls(**values)`` for a dict read from JSON, or one error naming the unknown, missing or mistyped key.

    ``noun`` names a key in the errors ("model config key"); ``require_all``: a missing key is
    an error rather than its default (an architecture must be stated, not guessed).
    """
    if not isinstance(values, dict):
        raise UserError(f"the {noun}s are not a JSON object but {type(values).__name__}")
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"unknown {noun}(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    missing = [name for name in names if name not in values]
    if require_all and missing:
        raise UserError(f"missing {noun}(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        expected = _allowed_types(hints[name])
        if expected and not any(_is_instance(value, kind) for kind in expected):
            wanted = " or ".join("null" if kind is type(None) else kind.__name__ for kind in expected)
            raise UserError(f"{noun} {name} is {value!r}, not {wanted}")
    return cls(**values)


def _allowed_types(annotation) -> tuple:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = typing.get_args(annotation)
    else:
        kinds = (annotation,)
    # Only plain JSON scalars are checked; anything richer is left to the class itself.
    return kinds if all(kind in (bool, int, float, str, type(None)) for kind in kinds) else ()


def _is_instance(value, kind) -> bool:
    if kind is float:  # JSON writes 1.0 as 1 in some writers
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- directories


def partial_directory(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    return directory.with_name(directory.name + PARTIAL_SUFFIX)


def previous_directory(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    return directory.with_name(directory.name + PREVIOUS_SUFFIX)


def swap_in(staging: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """Put the finished ``staging`` directory at ``directory``, replacing what was there.

    Every file is fsynced first; ``<directory>.previous`` holds the old one only between
    the two renames (see :func:`recover_directory`).
    """
    staging, directory = Path(staging), Path(directory)
    for path in staging.rglob("*"):
        if path.is_file():
            fsync_file(path)
    previous = previous_directory(directory)
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(directory, previous)
    os.replace(staging, directory)
    fsync_directory(directory.parent)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def remove(path: str | os.PathLike) -> None:
    """Delete the file or directory tree at ``path``, if there is one."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextlib.contextmanager
def replace_directory(directory: str | os.PathLike, staging: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield an empty staging directory beside ``directory``; a clean exit swaps it in whole.

    On an exception the staging directory is removed and ``directory`` is untouched.
    """
    directory = Path(directory)
    staging = Path(staging) if staging is not None else partial_directory(directory)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        swap_in(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def recover_directory(directory: str | os.PathLike) -> str | None:
    """Tidy what a killed :func:`replace_directory` left beside ``directory``; says what it did.

    A ``.previous`` without its directory is the only copy (the kill fell between the two
    renames): it is renamed back. A ``.previous`` beside its directory, and any
    ``.partial`` (or ``.saving``, the staging name of earlier versions), are unfinished work:
    removed. Call it only while holding the output's lock.
    """
    directory = Path(directory)
    previous = previous_directory(directory)
    done = []
    if previous.is_dir():
        if directory.exists():
            shutil.rmtree(previous)
            done.append(f"removed {previous}")
        else:
            os.replace(previous, directory)
            done.append(f"restored {directory} from {previous}")
    for partial in (partial_directory(directory), directory.with_name(directory.name + SAVING_SUFFIX)):
        if partial.is_dir():
            shutil.rmtree(partial)
            done.append(f"removed the unfinished {partial}")
    return "; ".join(done) or None


# --------------------------------------------------------------------------- outputs and locks


def lock_file(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().split()[0]
    except (OSError, IndexError):
        return "another run"
    return f"another run (process {pid})"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, what: str = "output", wait: bool = False) -> Iterator[Path]:
    """Hold the advisory lock of ``target`` (a file or directory to be written) for the ``with`` block.

    A second holder is refused at once with a :class:`UserError` naming the live process
    (``wait``: it waits its turn instead, for shared outputs such as a cached corpus).
    The lock is ``flock`` on a hidden file beside the target (``.<name>.lock``, holding the
    holder's pid): written by hand rather than with ``filelock`` because the refusal must be
    immediate and name the holder, and the file must go away afterwards. The kernel drops
    an ``flock`` when its process dies, however it dies, so a lock file left by a killed run
    is stale by construction and is simply taken over: no pid guessing, no pid reuse trap.
    """
    path = lock_file(target)
    # The folders made only to hold the lock go again with it, so a refused run leaves nothing.
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            handle.close()
            _remove_empty(created)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(
                f"{target} is being written by {_holder(path)}; wait for it to finish or choose another {what}"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the file
        # that is at the path now, or two runs would each hold a lock on a different file.
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()
        _remove_empty(created)


@contextlib.contextmanager
def new_folder(path: str | os.PathLike) -> Iterator[Path]:
    """``mkdir -p path`` for the ``with`` block; on an exception the folders it made go again if still empty."""
    path = Path(path)
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first
        try:
            folder.rmdir()
        except OSError:  # not empty (the run wrote there) or already gone
            return


def check_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike | None] = (), flag: str = "-output") -> Path:
    """Refuse, before any work, an output that is a directory or that names one of ``inputs``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; name a file in it")
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"{flag} {path}: {path.parent} is a file, not a directory")
    for source in inputs:
        if source is None:
            continue
        if same_path(path, source):
            raise UserError(f"{flag} {path} is also an input ({source}); write the results to another file")
    return path


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one file (through links too), or would be once created."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


# --------------------------------------------------------------------------- operating-system errors


def output_name(path: str | os.PathLike) -> Path:
    """The output a staging path belongs to: ``.out.csv.123.partial.csv`` and ``.out.csv.lock`` are
    ``out.csv``, ``d.partial/x`` is ``d/x``."""
    parts = []
    for part in Path(path).parts:
        match = _TEMPORARY_NAME.match(part)
        if match:
            part = match["name"]
        elif part.startswith(".") and part.endswith(LOCK_SUFFIX) and len(part) > len(LOCK_SUFFIX) + 1:
            part = part[1 : -len(LOCK_SUFFIX)]
        elif part.endswith((PARTIAL_SUFFIX, SAVING_SUFFIX)) and part not in (PARTIAL_SUFFIX, SAVING_SUFFIX):
            part = part.removesuffix(PARTIAL_SUFFIX).removesuffix(SAVING_SUFFIX)
        parts.append(part)
    return Path(*parts) if parts else Path(path)


def os_error_message(error: OSError) -> str:
    """One line for an operating-system error on a file: what could not be done to which file, and why.

    ``cannot write out.csv: read-only file system``, ``cannot read in.csv: permission denied``:
    a full or read-only file system, or a staging file, is always a write; otherwise a path that
    exists was being read (or listed), one that does not yet exist written.
    """
    reason = (error.strerror or (os.strerror(error.errno) if error.errno else str(error)) or "unknown error")
    reason = reason[:1].lower() + reason[1:]
    if error.filename is None:
        return f"an operating-system error: {reason}"
    path = Path(os.fsdecode(error.filename))
    target = output_name(path)
    if error.errno in WRITE_ERRNOS or target != path:
        verb = "write"
    elif error.errno == errno.ENOENT:
        verb = "open"
    else:
        verb = "read" if path.exists() else "write"
    shown = target
    if error.filename2 is not None and verb == "write":
        shown = output_name(os.fsdecode(error.filename2))
    return f"cannot {verb} {shown}: {reason}"
