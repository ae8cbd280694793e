"""The package's messages: one :mod:`logging` logger, and the handler the CLI installs.

Every module reports through ``logging.getLogger("sentiment_discovery")`` (the helpers
:func:`info`, :func:`notice`, :func:`warning`, :func:`error` here). Used as a library the
package adds no handler: what shows is what the application's logging setup shows
(Python's default prints warnings and errors, bare). Results a command prints (labels,
tables, generated text) are not messages: they go to stdout with ``print``.

``sentiment-discovery`` installs :class:`CLIHandler` for the length of one command
(:func:`cli_output`). It writes one line per message to stderr, the level as a prefix:
``notice: ...`` (:data:`NOTICE`, between INFO and WARNING: worth knowing, nothing wrong),
``warning: ...``, ``error: ...``; INFO (``wrote x.csv``) has none. Lines go through
``tqdm.write`` so that a progress bar on the terminal is redrawn below them instead of
being torn. Under DDP (``WORLD_SIZE`` > 1) only rank 0 speaks: another rank's warnings
and errors still show, prefixed ``[rank N]``, its notices and info do not. Within
:func:`every_rank` (``train -verbose 2``) every rank says everything, each line prefixed
with its rank, rank 0's too; within :func:`quiet` (``train -verbose 0``, and the ranks but the
first at ``-verbose 1``) only errors show.
"""

import contextlib
import logging
import os
import sys

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

logger = logging.getLogger("sentiment_discovery")

PREFIXES = {NOTICE: "notice: ", logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}


def info(message: str) -> None:
    logger.info(message)


def notice(message: str) -> None:
    logger.log(NOTICE, message)


def warning(message: str) -> None:
    logger.warning(message)


def error(message: str) -> None:
    logger.error(message)


def say(message: str) -> None:
    """Log a message that carries its prefix (``"notice: ..."``), as the ``say`` callbacks of
    training and the default-model export pass them: the prefix picks the level."""
    for level, prefix in ((NOTICE, "notice: "), (logging.WARNING, "warning: "), (logging.ERROR, "error: ")):
        if message.startswith(prefix):
            logger.log(level, message[len(prefix):])
            return
    logger.info(message)


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "0"))
    except ValueError:
        return 0


def process_rank() -> int:
    """This process's rank under DDP (torchrun's ``RANK``), 0 when not distributed."""
    try:
        if _world_size() > 1:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        pass
    return 0


_every_rank = False


@contextlib.contextmanager
def every_rank(speaks: bool = True):
    """For the ``with`` block (when ``speaks``), :class:`CLIHandler` shows every rank's messages,
    not only rank 0's, each line prefixed ``[rank N]`` under DDP: ``train -verbose 2``."""
    global _every_rank
    previous = _every_rank
    _every_rank = _every_rank or speaks
    try:
        yield
    finally:
        _every_rank = previous


@contextlib.contextmanager
def quiet(silent: bool = True):
    """For the ``with`` block (when ``silent``), the package logger passes errors only: its level
    is raised to ERROR and put back after. ``train -verbose 0``, and ``-verbose 1`` on every rank
    but the first."""
    if not silent:
        yield
        return
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


class CLIHandler(logging.Handler):
    """One prefixed line per message on stderr, through ``tqdm.write``; rank 0 only, save
    another rank's warnings and errors (prefixed ``[rank N]``), or every rank within
    :func:`every_rank`."""

    def filter(self, record: logging.LogRecord) -> bool:
        shown = record.levelno >= logging.WARNING or process_rank() == 0 or _every_rank
        return super().filter(record) and shown

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rank = process_rank()
            labelled = rank != 0 or (_every_rank and _world_size() > 1)
            line = (f"[rank {rank}] " if labelled else "") + PREFIXES.get(record.levelno, "") + record.getMessage()
            from tqdm import tqdm  # lazy: a message is rare; `--help` should not import tqdm

            tqdm.write(line, file=sys.stderr)
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def cli_installed() -> bool:
    return any(isinstance(handler, CLIHandler) for handler in logger.handlers)


@contextlib.contextmanager
def cli_output():
    """The CLI's handler on the package logger, at level INFO, for the ``with`` block. Nested
    use (a command run from inside another, the tests) adds no second handler."""
    if cli_installed():
        yield
        return
    handler = CLIHandler()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def install_cli_output() -> None:
    """:func:`cli_output` for the rest of the process (a worker process started by the CLI)."""
    if not cli_installed():
        logger.addHandler(CLIHandler())
        logger.setLevel(logging.INFO)
