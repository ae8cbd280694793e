"""Command-line flags generated from the recipes' config dataclasses.

Defaults, help text and allowed values live once, in the dataclass fields (:func:`option`);
this module turns them into argparse flags that accept both the 2017 spellings
(``-rnn_size``, ``--optimizer_type=Adam``) and modern ones (``--rnn-size``), checks a
config against the declared bounds (:func:`check_options`), and renders the flag reference
in the docs. The 2017 flags that no longer do anything are not fields: each command config
lists them in its ``NO_OP_FLAGS`` table (flag name -> why it has no effect), which the
parser accepts and the reference lists.
"""

import argparse
import dataclasses
import math
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
    positional: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    default_factory: Any = MISSING,
    repeatable: bool = False,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    expect: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag.

    aliases: extra names (without dashes) that set the same field, e.g. ``load_model``
      for ``model``; each gets the same seed and modern spellings.
    flag: the flag's name where it cannot be the field's (a field named like a method).
    repeatable: for a list field, one value per flag, the flag given as often as needed
      (``--text a --text b``) instead of several values after one flag.
    minimum, above, maximum, below: the values allowed (>=, >, <=, <; for a list, each of its
      values), checked by :func:`check_options` for every command; a bounded number must also
      be finite. ``None`` (an optional flag not given) is always allowed.
    expect: the allowed values in words, where the bounds alone say too little
      (``-cv must be a number of folds (10 is the usual), or 0 ...``).
    """
    metadata = {
        "help": help,
        "choices": choices,
        "aliases": tuple(aliases),
        "positional": positional,
        "flag": flag,
        "metavar": metavar,
        "repeatable": repeatable,
        "minimum": minimum,
        "above": above,
        "maximum": maximum,
        "below": below,
        "expect": expect,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_like(config_class: type, name: str, **changes: Any) -> Any:
    """The field ``name`` of ``config_class`` declared again, as a flag of another config.

    A command config takes settings declared elsewhere (``ModelConfig``'s architecture) this
    way, so that their defaults, help and allowed values are written once; ``changes``
    overrides any of ``option``'s arguments (another default, say).
    """
    field = {f.name: f for f in dataclasses.fields(config_class)}[name]
    arguments = dict(field.metadata)
    if field.default_factory is not MISSING:
        arguments["default_factory"] = field.default_factory
    else:
        arguments["default"] = field.default
    if "default" in changes:
        arguments.pop("default_factory", None)
    arguments.update(changes)
    return option(**arguments)


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


SPELLED = "_spelled_flags"  # namespace attribute: field name -> the flag as it was typed


class _Store(argparse.Action):
    """argparse's ``store``, which also notes how the flag was spelled, so that an error names
    it as the user typed it (``-seq_length`` or ``--seq-length``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        if option_string:
            spelled = dict(getattr(namespace, SPELLED, {}))
            spelled[self.dest] = option_string
            setattr(namespace, SPELLED, spelled)


def _field_kwargs(field: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    meta = field.metadata
    base, _ = _unwrap_optional(annotation)
    kwargs: dict[str, Any] = {"help": meta.get("help", "")}
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
            kwargs["action"] = _Store
        kwargs["type"] = item
    else:
        kwargs["type"] = base
        kwargs["action"] = _Store
    if meta.get("choices") is not None:
        kwargs["choices"] = list(meta["choices"])
    return kwargs


NO_OP_DEST = "no_op:"  # namespace attribute of a no-op flag given: this prefix and its name


def no_op_flags(config_class: type) -> dict[str, str]:
    """The command's 2017 flags kept as no-ops: flag name -> why it has no effect.

    Each is accepted in every spelling, with or without a value (it is ignored either way),
    and giving it prints ``notice: -flag has no effect: WHY`` (one line per reason, naming
    every such flag given).
    """
    return dict(getattr(config_class, "NO_OP_FLAGS", {}))


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Add one flag per field of ``config_class`` (a dataclass) to ``parser``, and its no-op flags."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if not field.metadata:
            continue
        kwargs = _field_kwargs(field, hints[field.name])
        if field.metadata.get("positional"):
            kwargs.pop("action", None)  # (a positional's value is not a flag's: nothing to note)
            if field.default is MISSING and field.default_factory is MISSING:
                parser.add_argument(field.name, **kwargs)
            else:
                parser.add_argument(field.name, nargs="?", default=argparse.SUPPRESS, **kwargs)
            continue
        names = spellings(flag_name(field))
        for alias in field.metadata.get("aliases", ()):
            names += spellings(alias)
        parser.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, **kwargs)
    for name in no_op_flags(config_class):
        # accepted, but not worth a line in --help (docs/flags.md lists them)
        parser.add_argument(
            *spellings(name), dest=NO_OP_DEST + name, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def config_from_args(config_class: type, namespace: argparse.Namespace, *, command: str = "") -> Any:
    """Build the config from parsed flags; flags not given keep the dataclass defaults."""
    values = {
        field.name: getattr(namespace, field.name)
        for field in dataclasses.fields(config_class)
        if hasattr(namespace, field.name)
    }
    ignored: dict[str, list[str]] = {}  # reason -> the no-op flags given for it
    for name, reason in no_op_flags(config_class).items():
        if hasattr(namespace, NO_OP_DEST + name):
            ignored.setdefault(reason, []).append(f"-{name}")
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


def spelled_flags(namespace: argparse.Namespace) -> dict[str, str]:
    """Field name -> the flag as typed on the command line (for :func:`check_options`)."""
    return dict(getattr(namespace, SPELLED, {}))


def bounds_text(meta: typing.Mapping[str, Any]) -> str | None:
    """What a flag's declared bounds ask, after "must": ``be positive``, ``be in [0, 1)``; None: unbounded."""
    if meta.get("expect"):
        return "be " + meta["expect"]
    low = ("[", meta["minimum"]) if meta.get("minimum") is not None else ("(", meta.get("above"))
    high = ("]", meta["maximum"]) if meta.get("maximum") is not None else (")", meta.get("below"))
    if low[1] is None and high[1] is None:
        return None
    if low[1] is not None and high[1] is not None:
        return f"be in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if high[1] is not None:
        return f"be at most {_number(high[1])}" if high[0] == "]" else f"be below {_number(high[1])}"
    if low == ("[", 0):
        return "not be negative"
    if low == ("(", 0):
        return "be positive"
    return f"be at least {_number(low[1])}" if low[0] == "[" else f"be above {_number(low[1])}"


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _within(meta: typing.Mapping[str, Any], value: Any) -> bool:
    try:
        return math.isfinite(value) and not (
            (meta.get("minimum") is not None and value < meta["minimum"])
            or (meta.get("above") is not None and value <= meta["above"])
            or (meta.get("maximum") is not None and value > meta["maximum"])
            or (meta.get("below") is not None and value >= meta["below"])
        )
    except TypeError:  # not a number
        return False


def _shown_flag(field: dataclasses.Field, spelled: typing.Mapping[str, str], prefix: str) -> str:
    typed = spelled.get(field.name)
    if typed is None:
        return prefix + flag_name(field)
    if typed.startswith("--"):
        return typed.replace("_", "-")
    return typed


def check_options(config: Any, spelled: typing.Mapping[str, str] | None = None, *, prefix: str = "-") -> None:
    """Every field of ``config`` within its declared choices and bounds (see :func:`option`), or
    one :class:`UserError` naming the flag: ``-lr must be positive, not -1.0``.

    spelled: field name -> the flag as typed (:func:`spelled_flags`); a flag not typed is named
    ``prefix`` + its name (``-lr``; ``prefix=""`` for a config that is not flags, ``ModelConfig``).
    """
    spelled = spelled or {}
    for field in dataclasses.fields(config):
        meta = field.metadata
        value = getattr(config, field.name)
        if not meta or value is None:
            continue
        flag = _shown_flag(field, spelled, prefix)
        choices = meta.get("choices")
        if choices is not None:
            values = value if isinstance(value, list) else [value]
            if any(v not in choices for v in values):
                raise UserError(f"{flag} must be one of {', '.join(map(str, choices))}, not {value!r}")
        allowed = bounds_text(meta)
        if allowed is None:
            continue
        if isinstance(value, list):
            if not value or not all(_within(meta, v) for v in value):
                shown = " ".join(map(str, value)) or "none"
                raise UserError(f"{flag} values must {allowed}, not {shown}")
        elif not _within(meta, value):
            if isinstance(value, float) and math.isinf(value):  # "must not be negative, not inf" reads as a riddle
                raise UserError(f"{flag} must be a finite number, not {value}")
            raise UserError(f"{flag} must {allowed}, not {value}")


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
        "Generated from the config dataclasses by `sentiment-discovery flags`;",
        "a test checks it against the parser. Every flag is accepted in the 2017 spelling",
        "(`-rnn_size 4096`, `--optimizer_type=Adam`) and the modern one (`--rnn-size 4096`).",
        "Flags of the 2017 scripts that no longer do anything are still accepted, so that 2017",
        "command lines run unchanged: each command lists them after its own flags, and giving one",
        "prints a one-line notice (see [seed.md](seed.md)).",
    ]
    for command, config_class in commands.items():
        lines += ["", f"## `sentiment-discovery {command}`", ""]
        lines += ["| flag | spellings | default | meaning |", "|---|---|---|---|"]
        hints = typing.get_type_hints(config_class)
        for field in dataclasses.fields(config_class):
            if not field.metadata:
                continue
            meta = field.metadata
            meaning = meta.get("help", "")
            if meta.get("choices") is not None:
                meaning += " Choices: " + ", ".join(f"`{c}`" for c in meta["choices"]) + "."
            allowed = bounds_text(meta)
            if allowed is not None:
                is_list = typing.get_origin(_unwrap_optional(hints[field.name])[0]) is list
                meaning += f" Each value must {allowed}." if is_list else f" Must {allowed}."
            if meta.get("repeatable"):
                meaning += " Repeatable."
            lines.append(
                f"| {flag_name(field)} | {_spelled(field)} | {_default_text(field)} | {meaning.replace('|', '/')} |"
            )
        no_ops = no_op_flags(config_class)
        if no_ops:
            lines += ["", "2017 flags accepted as no-ops:", ""]
            lines += ["| flag | spellings | why it has no effect |", "|---|---|---|"]
            for name, why in no_ops.items():
                spelled = ", ".join(f"`{n}`" for n in spellings(name))
                lines.append(f"| {name} | {spelled} | {why.replace('|', '/')} |")
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
