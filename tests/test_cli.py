import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from sentiment_discovery import cli
from sentiment_discovery.options import flag_reference_markdown, spellings

ROOT = Path(__file__).resolve().parents[1]


def test_flag_reference_is_up_to_date():
    expected = flag_reference_markdown(cli.config_classes())
    actual = (ROOT / "docs" / "flags.md").read_text()
    assert actual == expected, "docs/flags.md is stale: run `sentiment-discovery flags > docs/flags.md`"


def test_every_flag_parses_in_every_spelling():
    parser = cli.build_parser()
    for command, config_class in cli.config_classes().items():
        for field in dataclasses.fields(config_class):
            if not field.metadata or field.metadata.get("positional"):
                continue
            for spelling in spellings(field.name):
                args = [command, spelling]
                hint = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
                if field.metadata.get("choices"):
                    args.append(str(field.metadata["choices"][0]))
                elif "bool" not in str(hint):
                    args.append("1" if any(t in str(hint) for t in ("int", "float")) else "x")
                namespace, _ = parser.parse_known_args(args)
                assert hasattr(namespace, field.name), (command, spelling)


def test_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "sentiment_discovery", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command in result.stdout


def test_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    status = cli.main(["featurize", "--model", str(tmp_path / "missing"), "--input", "x.csv", "--output", "y.npy"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().splitlines() == [f"error: model directory {tmp_path / 'missing'} does not exist"]


def test_missing_required_flag_names_it(capsys):
    status = cli.main(["featurize", "--input", "x.csv", "--output", "y.npy"])
    assert status == 2
    assert "error: featurize needs --model" in capsys.readouterr().err
