"""Declared settings: the bounds every command checks, and the 2017 no-op flags' tables.

Each bounded option of each command, given a value past one of its bounds, stops the
command with one ``error:`` line that names the flag (as typed) and exit status 2; each
2017 flag in a command's ``NO_OP_FLAGS`` is accepted, in every spelling, with one notice.
"""

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from sentiment_discovery import cli
from sentiment_discovery.foundation.errors import UserError
from sentiment_discovery.foundation.model_config import ModelConfig
from sentiment_discovery.foundation.options import bounds_text, check_options, config_from_args, flag_name, no_op_flags, option, spellings
from sentiment_discovery.recipes import benchmark as benchmark_recipe
from sentiment_discovery.recipes import train as train_recipe

BOUNDS = ("minimum", "above", "maximum", "below")


def required_args(config_class) -> list[str]:
    """Placeholder values for the flags and arguments a command cannot run without."""
    hints = typing.get_type_hints(config_class)
    args = []
    for field in dataclasses.fields(config_class):
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
            continue
        choices = field.metadata.get("choices")
        value = str(choices[0]) if choices else ("1" if hints[field.name] in (int, float) else "x")
        args += [value] if field.metadata.get("positional") else [f"-{flag_name(field)}", value]
    return args


def out_of_range(meta) -> list[float]:
    """A value just past each declared bound."""
    values = []
    if meta.get("minimum") is not None:
        values.append(meta["minimum"] - 1)
    if meta.get("above") is not None:
        values.append(meta["above"])
    if meta.get("maximum") is not None:
        values.append(meta["maximum"] + 1)
    if meta.get("below") is not None:
        values.append(meta["below"])
    return values


def bounded_cases():
    cases = []
    for command, config_class in cli.config_classes().items():
        for field in dataclasses.fields(config_class):
            if field.metadata and bounds_text(field.metadata) is not None:
                for value in out_of_range(field.metadata):
                    cases.append(pytest.param(command, flag_name(field), value, id=f"{command}-{field.name}={value}"))
    return cases


CASES = bounded_cases()


def test_every_command_with_numbers_declares_bounds():
    commands = {case.values[0] for case in CASES}
    assert {"train", "transfer", "finetune", "visualize", "benchmark", "serve", "preprocess", "featurize"} <= commands
    assert len(CASES) > 60


@pytest.mark.parametrize("command, name, value", CASES)
def test_a_value_out_of_bounds_is_one_error_line_naming_the_flag(command, name, value, capsys):
    config_class = cli.config_class(command)
    status = cli.main([command, *required_args(config_class), f"-{name}", str(value)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"error: -{name} "), err
    field = {f.name: f for f in dataclasses.fields(config_class) if f.metadata and flag_name(f) == name}
    (meta,) = [f.metadata for f in field.values()]
    assert f" must {bounds_text(meta)}, not " in err, err


def test_the_error_names_the_flag_as_it_was_typed(capsys):
    assert cli.main(["train", "-train", "x", "--max_iters=-2"]) == 2
    assert capsys.readouterr().err == "error: --max-iters must be at least -1, not -2\n"
    assert cli.main(["train", "-train", "x", "-max_iters", "-2"]) == 2
    assert capsys.readouterr().err == "error: -max_iters must be at least -1, not -2\n"
    assert cli.main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err == "error: --port must be in [0, 65535], not 70000\n"


def test_the_wording_of_each_kind_of_bound():
    assert bounds_text(option(1, minimum=1).metadata) == "be at least 1"
    assert bounds_text(option(0, minimum=0).metadata) == "not be negative"
    assert bounds_text(option(1.0, above=0).metadata) == "be positive"
    assert bounds_text(option(0.0, minimum=0, below=1).metadata) == "be in [0, 1)"
    assert bounds_text(option(0.9, above=0, maximum=1).metadata) == "be in (0, 1]"
    assert bounds_text(option(1, maximum=2**32 - 1).metadata) == "be at most 4294967295"
    assert bounds_text(option(3, minimum=0, expect="a count").metadata) == "be a count"
    assert bounds_text(option("x").metadata) is None


def test_a_config_built_in_python_is_checked_the_same_way():
    with pytest.raises(UserError, match=r"^-lr must not be negative, not -1\.0$"):
        train_recipe.check_config(train_recipe.TrainConfig(train="x", lr=-1.0))
    with pytest.raises(UserError, match=r"^-dropout must be in \[0, 1\), not nan$"):
        check_options(train_recipe.TrainConfig(train="x", dropout=math.nan))
    with pytest.raises(UserError, match=r"^-rnn_type must be one of mlstm, lstm, not 'gru'$"):
        check_options(train_recipe.TrainConfig(train="x", rnn_type="gru"))
    # The architecture itself names settings, not flags (config.json keys).
    with pytest.raises(UserError, match=r"^rnn_size must be at least 1, not 0$"):
        ModelConfig(rnn_size=0)


def test_the_architecture_flags_are_modelconfigs_own():
    """Defaults, help and bounds of train's and benchmark's architecture flags come from ModelConfig."""
    model_fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    for config_class, changed in ((train_recipe.TrainConfig, {}), (benchmark_recipe.BenchmarkConfig, {"rnn_size": 256})):
        for field in dataclasses.fields(config_class):
            if field.name in model_fields:
                source = model_fields[field.name]
                assert field.default == changed.get(field.name, source.default), field.name
                assert dict(field.metadata) == dict(source.metadata), field.name
    assert train_recipe.MODEL_FLAGS == tuple(model_fields)


def no_op_cases():
    return [
        pytest.param(command, name, id=f"{command}-{name}")
        for command, config_class in cli.config_classes().items()
        for name in no_op_flags(config_class)
    ]


def test_no_op_flags_are_not_fields_so_results_do_not_record_them():
    for command, config_class in cli.config_classes().items():
        fields = {name for f in dataclasses.fields(config_class) for name in (f.name, flag_name(f))}
        assert not fields & set(no_op_flags(config_class)), command
    assert {c.values[0] for c in no_op_cases()} == {"train", "transfer", "visualize"}


@pytest.mark.parametrize("command, name", no_op_cases())
def test_every_no_op_flag_is_accepted_and_noted(command, name, capsys):
    config_class = cli.config_class(command)
    why = no_op_flags(config_class)[name]
    parser = cli.build_parser()
    for form in [*([spelling] for spelling in spellings(name)), [f"-{name}", "1"], [f"--{name}=x"]]:
        namespace = parser.parse_args([command, *required_args(config_class), *form])
        config = config_from_args(config_class, namespace, command=command)
        assert capsys.readouterr().err == f"notice: -{name} has no effect: {why}\n", form
        assert name not in dataclasses.asdict(config)


def test_no_op_flags_are_listed_in_the_flag_reference():
    text = (Path(__file__).resolve().parents[1] / "docs" / "flags.md").read_text(encoding="utf-8")
    for command, config_class in cli.config_classes().items():
        section = text.split(f"## `sentiment-discovery {command}`", 1)[1].split("\n## ", 1)[0]
        for name, why in no_op_flags(config_class).items():
            assert f"| {name} | `-{name}`" in section and why in section, (command, name)
