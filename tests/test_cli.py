import dataclasses
import os
import pkgutil
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from sentiment_discovery import cli
from sentiment_discovery.foundation.options import flag_name, flag_reference_markdown, spellings

ROOT = Path(__file__).resolve().parents[1]


def test_flag_reference_is_up_to_date():
    expected = flag_reference_markdown(cli.config_classes())
    actual = (ROOT / "docs" / "flags.md").read_text()
    assert actual == expected, "docs/flags.md is stale: run `sentiment-discovery flags > docs/flags.md`"


def example_value(field, config_class) -> str:
    if field.metadata.get("choices"):
        return str(field.metadata["choices"][0])
    hint = str(typing.get_type_hints(config_class)[field.name])
    return "1" if ("int" in hint or "float" in hint) else "x"


def test_every_flag_parses_in_every_spelling():
    parser = cli.build_parser()
    for command, config_class in cli.config_classes().items():
        fields = [f for f in dataclasses.fields(config_class) if f.metadata]
        positionals = [example_value(f, config_class) for f in fields if f.metadata.get("positional") and f.default is dataclasses.MISSING]
        for field in fields:
            if field.metadata.get("positional"):
                continue
            for spelling in spellings(flag_name(field)):
                args = [command, *positionals, spelling]
                if "bool" not in str(typing.get_type_hints(config_class)[field.name]):
                    args.append(example_value(field, config_class))
                namespace, _ = parser.parse_known_args(args)
                assert hasattr(namespace, field.name), (command, spelling)


def test_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "sentiment_discovery", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command in result.stdout


# Imported on first use, never to parse flags: `--help` starts in a fraction of a second.
HEAVY_MODULES = ("torch", "numpy", "sklearn", "scipy", "matplotlib", "tqdm")


def test_help_imports_no_heavy_library():
    commands = [[], *([command] for command in cli.COMMANDS)]
    program = (
        "import sys\n"
        "from sentiment_discovery.cli import main\n"
        f"for args in {commands!r}:\n"
        "    try:\n"
        "        main(args + ['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print([name for name in {HEAVY_MODULES!r} if name in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "--rnn-size" in result.stdout and "--precision" in result.stdout


def test_mlstm_implementation_names_match_the_model():
    from sentiment_discovery.foundation.choices import MLSTM_IMPLEMENTATION_NAMES
    from sentiment_discovery.model import MLSTM_IMPLEMENTATIONS

    assert tuple(MLSTM_IMPLEMENTATIONS) == MLSTM_IMPLEMENTATION_NAMES


def test_dataset_names_match_the_downloads():
    from sentiment_discovery.foundation.choices import DATASET_NAMES
    from sentiment_discovery.data.download import DATASETS

    assert tuple(DATASETS) == DATASET_NAMES


def test_config_modules_import_no_heavy_library():
    """Each config module, imported in turn in a fresh interpreter, brings in none of HEAVY_MODULES;
    they are the ones the commands name, with the shared ``configs.common``."""
    import sentiment_discovery.configs

    package = sentiment_discovery.configs
    names = sorted(f"{package.__name__}.{module.name}" for module in pkgutil.iter_modules(package.__path__))
    assert set(names) == {command.config for command in cli.COMMANDS.values()} | {"sentiment_discovery.configs.common"}
    program = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"    print(name, [heavy for heavy in {HEAVY_MODULES!r} if heavy in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{name} []" for name in names]


def test_each_recipe_runs_its_commands_config():
    """``recipes.<command>.<Config>`` is the class the command line parses the flags into."""
    for command in cli.COMMANDS:
        config_class = cli.config_class(command)
        assert getattr(cli.recipe(command), config_class.__name__) is config_class, command


def test_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    status = cli.main(["featurize", "--model", str(tmp_path / "missing"), "--input", "x.csv", "--output", "y.npy"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().splitlines() == [f"error: model directory {tmp_path / 'missing'} does not exist"]


def test_missing_required_flag_names_it(capsys):
    status = cli.main(["featurize", "--model", "m", "--input", "x.csv"])
    assert status == 2
    assert "error: featurize needs --output" in capsys.readouterr().err


CHECK_COMMAND = """\
import sys
from sentiment_discovery import cli
from sentiment_discovery.foundation.options import config_from_args

args = cli.build_parser().parse_args(sys.argv[1:])  # an unknown flag exits 2 with one error line
config_from_args(cli.config_class(args.command), args, command=args.command)
with open(sys.argv[0] + ".log", "a") as log:
    log.write(args.command + "\\n")
"""


@pytest.mark.parametrize("script", sorted((ROOT / "recipes").glob("*.sh")), ids=lambda path: path.name)
def test_recipe_scripts_use_valid_flags(script, tmp_path):
    """Every `$SD ...` line of a recipe parses with the real CLI (nothing is run)."""
    checker = tmp_path / "check.py"
    checker.write_text(CHECK_COMMAND)
    environment = {"PATH": "/usr/bin:/bin", "DATA": str(tmp_path), "RUNS": str(tmp_path),
                   "SD": f"{sys.executable} {checker}", "PYTHON": "true"}  # data-preparing scripts: not run
    if "PYTHONPATH" in os.environ:  # the package under test, where it is not the installed one
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # A command inside a shell function runs once per call, so compare which commands ran.
    expected = set(re.findall(r"^[^#\n]*\$SD (\S+)", script.read_text(), re.MULTILINE))
    assert set((tmp_path / "check.py.log").read_text().split()) == expected
