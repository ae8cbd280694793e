"""``sentiment-discovery``: one sub-command per job, each a thin layer over a recipe.

A recipe module defines ``COMMAND_CONFIG`` (a dataclass whose fields are the flags, see
``options.option``) and ``run(config)``. The CLI turns flags into that config and calls it;
a :class:`UserError` becomes one ``error:`` line and exit status 2.
"""

import argparse
import importlib
import sys

from .errors import UserError
from .options import add_config_arguments, config_from_args, flag_reference_markdown

# command -> (recipe module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sentiment_discovery.recipes.train", "train the byte-level language model on a corpus (resumable, mixed precision, DDP)"),
    "featurize": ("sentiment_discovery.recipes.featurize", "write the features (final cell states) of a text file to .npy"),
    "import-openai": ("sentiment_discovery.recipes.importers", "convert OpenAI's released weights (model/0.npy ... 14.npy) into a model directory"),
    "import-pytorch": ("sentiment_discovery.recipes.importers", "convert a 2017 PyTorch reproduction checkpoint (.pt) into a model directory"),
    "preprocess": ("sentiment_discovery.recipes.preprocess", "clean review dumps into an on-disk byte corpus (train/valid/test)"),
    "download": ("sentiment_discovery.recipes.download", "fetch SST-2, IMDB, MR, CR, SUBJ or MPQA from their canonical sources, verified by sha256"),
    "visualize": ("sentiment_discovery.recipes.visualize", "heatmap of one unit over a text, and generation steered by it"),
    "transfer": ("sentiment_discovery.recipes.transfer", "sentiment transfer: L1 logistic regression on the features, the sentiment neuron"),
    "classify": ("sentiment_discovery.recipes.classify", "label new texts with a classifier saved by transfer"),
    "export-default": ("sentiment_discovery.recipes.export_default", "install a model and its classifier as the default model shipped in the package"),
    "benchmark": ("sentiment_discovery.recipes.benchmark", "training and featurizing speed of the mLSTM on this machine"),
}


def recipe(command: str):
    return importlib.import_module(COMMANDS[command][0])


def config_classes() -> dict[str, type]:
    return {command: recipe(command).COMMAND_CONFIG for command in COMMANDS}


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, (_, description) in COMMANDS.items():
        command_parser = sub.add_parser(command, help=description, description=description, allow_abbrev=False)
        add_config_arguments(command_parser, recipe(command).COMMAND_CONFIG)
    sub.add_parser("flags", help="print the flag reference of every command (docs/flags.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as stop:  # --help (0), or a bad flag value, already reported in one line (2)
        return stop.code if isinstance(stop.code, int) else 2
    if unknown:
        where = f"{parser.prog} {args.command}" if args.command else parser.prog
        print(f"error: unrecognized arguments: {' '.join(unknown)} (see `{where} --help`)", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "flags":
        sys.stdout.write(flag_reference_markdown(config_classes()))
        return 0
    module = recipe(args.command)
    try:
        config = config_from_args(module.COMMAND_CONFIG, args, command=args.command)
        status = module.run(config)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
