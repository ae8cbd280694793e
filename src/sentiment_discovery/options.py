"""Command-line flags generated from the recipes' config dataclasses.

Defaults and help text live once, in the dataclass fields; this module turns them into
argparse flags that accept both the 2017 spellings (``-rnn_size``, ``--optimizer_type=Adam``)
and modern ones (``--rnn-size``), and renders the flag reference in the docs.
"""

import argparse
import dataclasses
import types
import typing
from typing import Any

from . import log
from .errors import UserError

MISSING = dataclasses.MISSING


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    choices: typing.Sequence[Any] | None = None,
    aliases: typing.Sequence[str] = (),
    no_op: str | None = None,
    positional: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    default_factory: Any = MISSING,
    repeatable: bool = False,
) -> Any:
    """A dataclass field that is also a command-line flag.

    aliases: extra names (without dashes) that set the same field, e.g. ``load_model``
      for ``model``; each gets the same seed and modern spellings.
    flag: the flag's name where it cannot be the field's (a field named like a method).
    no_op: for flags kept only so that 2017 command lines still run; the text says why the
      flag does nothing, printed as ``notice: -flag has no effect: TEXT`` when it is given
      (one line per reason, naming every such flag given).
    repeatable: for a list field, one value per flag, the flag given as often as needed
      (``--text a --text b``) instead of several values after one flag.
    """
    metadata = {
        "help": help,
        "choices": choices,
        "aliases": tuple(aliases),
        "no_op": no_op,
        "positional": positional,
        "flag": flag,
        "metavar": metavar,
        "repeatable": repeatable,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """The name a field's flags are spelled from: the field's, unless ``option(flag=...)`` says otherwise."""
    return field.metadata.get("flag") or field.name


def spellings(name: str) -> list[str]:
    """Every accepted spelling of a flag: ``-a_b``, ``--a_b``, ``--a-b``."""
    forms = [f"-{name}", f"--{name}", f"--{name.replace('_', '-')}"]
    return list(dict.fromkeys(forms))


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _field_kwargs(field: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    meta = field.metadata
    base, _ = _unwrap_optional(annotation)
    kwargs: dict[str, Any] = {"help": meta.get("help", "")}
    if meta.get("no_op"):
        kwargs["help"] = argparse.SUPPRESS  # accepted, but not worth a line in --help (docs/flags.md lists them)
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    if base is bool:
        kwargs["action"] = "store_true"
        kwargs.pop("metavar", None)
        return kwargs
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        if meta.get("repeatable"):
            kwargs["action"] = "append"
        else:
            kwargs["nargs"] = "+"
        kwargs["type"] = item
    else:
        kwargs["type"] = base
    if meta.get("choices") is not None:
        kwargs["choices"] = list(meta["choices"])
    return kwargs


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Add one flag per field of ``config_class`` (a dataclass) to ``parser``."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if not field.metadata:
            continue
        kwargs = _field_kwargs(field, hints[field.name])
        if field.metadata.get("positional"):
            kwargs.pop("action", None)
            if field.default is MISSING and field.default_factory is MISSING:
                parser.add_argument(field.name, **kwargs)
            else:
                parser.add_argument(field.name, nargs="?", default=argparse.SUPPRESS, **kwargs)
            continue
        names = spellings(flag_name(field))
        for alias in field.metadata.get("aliases", ()):
            names += spellings(alias)
        parser.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, **kwargs)


def config_from_args(config_class: type, namespace: argparse.Namespace, *, command: str = "") -> Any:
    """Build the config from parsed flags; flags not given keep the dataclass defaults."""
    values = {}
    ignored: dict[str, list[str]] = {}  # reason -> the no-op flags given for it
    for field in dataclasses.fields(config_class):
        if hasattr(namespace, field.name):
            values[field.name] = getattr(namespace, field.name)
            reason = field.metadata.get("no_op") if field.metadata else None
            if reason:
                ignored.setdefault(reason, []).append(f"-{flag_name(field)}")
    for reason, flags in ignored.items():
        log.notice(f"{', '.join(flags)} {'has' if len(flags) == 1 else 'have'} no effect: {reason}")
    missing = [
        f.name
        for f in dataclasses.fields(config_class)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if missing:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise UserError(f"{command or 'this command'} needs {flags}")
    return config_class(**values)


def _default_text(field: dataclasses.Field) -> str:
    if field.default_factory is not MISSING:
        value = field.default_factory()
    elif field.default is MISSING:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, bool):
        return "off" if not value else "on"
    if value is None:
        return "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return f"`{value}`"


def flag_reference_markdown(commands: dict[str, type]) -> str:
    """The flag reference in ``docs/flags.md``: every flag, both spellings, default, meaning."""
    lines = [
        "# Flag reference",
        "",
        "Generated from the config dataclasses by `python -m sentiment_discovery.cli flags`;",
        "a test checks it against the parser. Every flag is accepted in the 2017 spelling",
        "(`-rnn_size 4096`, `--optimizer_type=Adam`) and the modern one (`--rnn-size 4096`).",
        "Flags of the 2017 scripts that no longer do anything are still accepted, so that 2017",
        "command lines run unchanged: each command lists them after its own flags, and giving one",
        "prints a one-line notice (see [seed.md](seed.md)).",
    ]
    for command, config_class in commands.items():
        lines += ["", f"## `sentiment-discovery {command}`", ""]
        lines += ["| flag | spellings | default | meaning |", "|---|---|---|---|"]
        no_ops = []
        for field in dataclasses.fields(config_class):
            if not field.metadata:
                continue
            meta = field.metadata
            if meta.get("no_op"):
                no_ops.append(field)
                continue
            meaning = meta.get("help", "")
            if meta.get("choices") is not None:
                meaning += " Choices: " + ", ".join(f"`{c}`" for c in meta["choices"]) + "."
            if meta.get("repeatable"):
                meaning += " Repeatable."
            lines.append(
                f"| {flag_name(field)} | {_spelled(field)} | {_default_text(field)} | {meaning.replace('|', '/')} |"
            )
        if no_ops:
            lines += ["", "2017 flags accepted as no-ops:", ""]
            lines += ["| flag | spellings | why it has no effect |", "|---|---|---|"]
            for field in no_ops:
                lines.append(f"| {flag_name(field)} | {_spelled(field)} | {field.metadata['no_op'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _spelled(field: dataclasses.Field) -> str:
    """The flag's spellings for the reference table (a positional argument: its name in capitals)."""
    meta = field.metadata
    if meta.get("positional"):
        return f"`{field.name.upper()}`"
    names = spellings(flag_name(field))
    for alias in meta.get("aliases", ()):
        names += spellings(alias)
    return ", ".join(f"`{n}`" for n in names)
