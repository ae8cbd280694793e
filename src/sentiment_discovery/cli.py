"""``sentiment-discovery``: one sub-command per job, each a thin layer over a recipe.

A command has a config module (``configs/<command>.py``: ``COMMAND_CONFIG``, a dataclass whose
fields are the flags, see ``options.option``), which imports no torch, and a recipe module
(``recipes/<command>.py``: ``run(config)``), imported only to run the command. The CLI builds its
parser from the configs alone, turns the flags into the chosen command's config and calls its run;
a :class:`UserError` becomes one ``error:`` line and exit status 2, and so does an
operating-system error on a file (a full or read-only disk, a permission denied), here and
nowhere else: ``error: cannot write out.csv: no space left on device``.
"""

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import NamedTuple

from . import __version__
from .foundation import log, storage
from .foundation.errors import UserError
from .foundation.options import (
    add_config_arguments,
    check_options,
    config_from_args,
    flag_reference_markdown,
    spelled_flags,
)


class Command(NamedTuple):
    config: str  # the module of its flags (COMMAND_CONFIG): torch-free, read to build the parser
    recipe: str  # the module of its run(config): imported only to run it
    description: str  # one line, for --help


def _command(name: str, description: str) -> Command:
    return Command(f"sentiment_discovery.configs.{name}", f"sentiment_discovery.recipes.{name}", description)


COMMANDS: dict[str, Command] = {
    "train": _command("train", "train the byte-level language model on a corpus (resumable, mixed precision, DDP)"),
    "featurize": _command("featurize", "write the features (final cell states) of a text file to .npy"),
    "import-openai": _command("importers", "convert OpenAI's released weights (model/0.npy ... 14.npy) into a model directory"),
    "import-pytorch": _command("importers", "convert a 2017 PyTorch reproduction checkpoint (.pt) into a model directory"),
    "preprocess": _command("preprocess", "clean review dumps into an on-disk byte corpus (train/valid/test)"),
    "download": _command("download", "fetch SST-2, IMDB, MR, CR, SUBJ or MPQA (verified by sha256), or OpenAI's mLSTM into the model cache"),
    "visualize": _command("visualize", "heatmap of one unit over a text, and generation steered by it"),
    "transfer": _command("transfer", "sentiment transfer: L1 logistic regression on the features, the sentiment neuron"),
    "classify": _command("classify", "label new texts with a classifier saved by transfer"),
    "calibrate": _command("calibrate", "fit a classifier's temperature (and, with -ngrams, an n-gram part) on held-out texts"),
    "finetune": _command("finetune", "train the language model and a classifier head together on labelled texts"),
    "export-default": _command("export_default", "install a model and its classifier as the default model shipped in the package"),
    "benchmark": _command("benchmark", "training and featurizing speed of the mLSTM on this machine"),
    "serve": _command("serve", "a live page (heatmap, P(positive), steered writing) and a JSON API over a model loaded once"),
    "models": _command("models", "list the models installed in the model cache and those `download` fetches"),
}


# Commands that run without torch.
LIGHT_COMMANDS = ("download", "models")


def config_class(command: str) -> type:
    """The config dataclass of ``command``, whose fields are its flags (imports no torch)."""
    return importlib.import_module(COMMANDS[command].config).COMMAND_CONFIG


def config_classes() -> dict[str, type]:
    return {command: config_class(command) for command in COMMANDS}


def recipe(command: str):
    """The module that runs ``command`` (``run(config)``); it may import torch at its top."""
    return importlib.import_module(COMMANDS[command].recipe)


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported like every other error: one
    ``error:`` line and exit status 2 (not the usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sentiment-discovery",
        description="Byte-level mLSTM language models and the sentiment neuron.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, (_, _, description) in COMMANDS.items():
        command_parser = sub.add_parser(command, help=description, description=description, allow_abbrev=False)
        add_config_arguments(command_parser, config_class(command))
    sub.add_parser("flags", help="print the flag reference of every command (docs/flags.md)")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings on one line, as every other message: ``warning: ...`` (no source line)."""
    if file is None or file is sys.stderr:
        log.warning(str(message))
    else:
        print(f"warning: {message}", file=file)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a Ctrl-C at any point, start-up included, is one line and exit status 130.

    Messages go through :mod:`sentiment_discovery.foundation.log`, whose one-line stderr handler is
    installed here, for this command only."""
    with log.cli_output():
        try:
            with warnings.catch_warnings():  # the one-line format, for this command only
                warnings.showwarning = _show_warning
                return _main(argv)
        except KeyboardInterrupt:
            log.info("interrupted")
            return 130


@contextlib.contextmanager
def _interrupts_held():
    """Hold a Ctrl-C that comes while the configs or a recipe are imported and raise it once they are.

    A KeyboardInterrupt inside an import can leave a half-initialised module (torch) whose
    next use fails with an unrelated error and a traceback; waiting the few seconds the
    imports take gives the one ``interrupted`` line instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _main(argv: list[str] | None) -> int:
    with _interrupts_held():
        parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as stop:  # --help (0), or a bad flag value, already reported in one line (2)
        return stop.code if isinstance(stop.code, int) else 2
    if unknown:
        where = f"{parser.prog} {args.command}" if args.command else parser.prog
        log.error(f"unrecognized arguments: {' '.join(unknown)} (see `{where} --help`)")
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "flags":
        sys.stdout.write(flag_reference_markdown(config_classes()))
        return 0
    # The recipe, and torch with it, imported under the same hold: a Ctrl-C inside torch's import
    # can abort the interpreter from C++ instead of raising KeyboardInterrupt. (torch is imported
    # here even for a recipe that imports it on first use; the light commands run without it.)
    with _interrupts_held():
        module = recipe(args.command)
        if args.command not in LIGHT_COMMANDS:
            importlib.import_module("torch")
    try:
        config = config_from_args(config_class(args.command), args, command=args.command)
        check_options(config, spelled_flags(args))  # the declared bounds, the flag named as typed
        status = module.run(config)
    except UserError as error:
        log.error(str(error))
        return 2
    except OSError as error:  # the writers leave nothing partial (storage.py): what remains is the reason
        log.error(storage.os_error_message(error))
        return 2
    return int(status or 0)


def program() -> None:
    """The ``sentiment-discovery`` program (and ``python -m sentiment_discovery``): :func:`main`, then exit."""
    status = main()
    if status == 130:
        # A Ctrl-C that lands while CPython runs code through its PyRun API (some imports do)
        # is marked "unhandled" although main caught it, and the interpreter would then end
        # itself by SIGINT at exit instead of with status 130: leave at once, streams flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    program()
