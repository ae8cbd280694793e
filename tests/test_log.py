"""The CLI's message handler (sentiment_discovery.foundation.log): prefixes, ranks, tqdm, and the
package staying silent as a library."""

import logging
import sys

import pytest
from tqdm import tqdm

from sentiment_discovery import cli
from sentiment_discovery.foundation import log
from sentiment_discovery.foundation.text import escape_control


@pytest.fixture
def single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)


def test_each_level_has_its_prefix(single_process, capsys):
    log.info("wrote out.csv")
    log.notice("-lazy has no effect")
    log.warning("-cuda was given but no GPU is available")
    log.error("no model 'x'")
    assert capsys.readouterr() == (
        "",
        "wrote out.csv\nnotice: -lazy has no effect\nwarning: -cuda was given but no GPU is available\nerror: no model 'x'\n",
    )


def test_say_takes_the_level_from_the_prefix(single_process, capsys):
    for message in ("notice: a", "warning: b", "error: c", "step 3 loss 1.2"):
        log.say(message)
    assert capsys.readouterr().err == "notice: a\nwarning: b\nerror: c\nstep 3 loss 1.2\n"


def test_notice_sits_between_info_and_warning():
    assert logging.INFO < log.NOTICE < logging.WARNING
    assert logging.getLevelName(log.NOTICE) == "NOTICE"


def test_rank_0_says_everything_other_ranks_only_warnings(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    log.notice("from rank 0")
    log.warning("also from rank 0")
    monkeypatch.setenv("RANK", "2")
    log.info("progress of rank 2")
    log.notice("notice of rank 2")
    log.warning("rank 2 is unwell")
    log.error("rank 2 failed")
    assert capsys.readouterr().err == (
        "notice: from rank 0\nwarning: also from rank 0\n[rank 2] warning: rank 2 is unwell\n[rank 2] error: rank 2 failed\n"
    )


def test_every_rank_says_everything_each_line_named_by_its_rank(monkeypatch, capsys):
    """``train -verbose 2``: every process prints, rank 0 too, each line prefixed with its rank."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    with log.every_rank():
        monkeypatch.setenv("RANK", "0")
        log.info("resumed at iteration 3")
        monkeypatch.setenv("RANK", "2")
        log.info("saved iter6")
        log.notice("-benchmark has no effect on the CPU")
        log.warning("rank 2 is unwell")
    with log.every_rank(False):  # -verbose 0 or 1: rank 0 only, as outside the block
        log.notice("not shown")
    log.notice("nor this")
    assert capsys.readouterr().err == (
        "[rank 0] resumed at iteration 3\n[rank 2] saved iter6\n[rank 2] notice: -benchmark has no effect on the CPU\n"
        "[rank 2] warning: rank 2 is unwell\n"
    )


def test_every_rank_in_one_process_has_no_prefix(single_process, capsys):
    with log.every_rank():
        log.notice("alone")
    assert capsys.readouterr().err == "notice: alone\n"


def test_one_process_world_has_no_rank_prefix(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "3")  # stale, from a launcher: one process is rank 0
    log.notice("alone")
    assert capsys.readouterr().err == "notice: alone\n"


def test_lines_go_through_tqdm_write(single_process, monkeypatch):
    written = []
    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, file=None, **kw: written.append((s, file))))
    log.notice("between two bars")
    assert written == [("notice: between two bars", sys.stderr)]


def test_a_progress_bar_is_not_torn(single_process, capsys):
    with tqdm(total=3, file=sys.stderr, ascii=True, mininterval=0) as bar:
        bar.update(1)
        log.warning("half way")
        bar.update(2)
    err = capsys.readouterr().err
    # The bar is wiped, the message takes its own line, and the bar is drawn again below it.
    assert "\rwarning: half way\n\r 33%|" in err
    assert err.count("warning: half way") == 1


def test_the_cli_installs_one_handler_for_the_command_only(capsys):
    logger = logging.getLogger("sentiment_discovery")
    # The test fixture holds one already (tests/conftest.py); the CLI adds no second one.
    assert sum(isinstance(h, log.CLIHandler) for h in logger.handlers) == 1
    assert cli.main(["classify", "-no_such_flag"]) == 2
    assert capsys.readouterr().err.count("error: unrecognized arguments") == 1
    assert sum(isinstance(h, log.CLIHandler) for h in logger.handlers) == 1


def test_library_use_adds_no_handler(tmp_path):
    """Imported as a library, the package is silent but for Python's default (warnings, bare)."""
    import subprocess

    script = (
        "import logging, sys\n"
        "from sentiment_discovery.foundation import log\n"
        "assert not log.logger.handlers\n"
        "log.notice('a notice')\n"
        "log.warning('a warning')\n"
        "with log.cli_output():\n"
        "    log.notice('inside the CLI')\n"
        "assert not log.logger.handlers\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stderr == "a warning\nnotice: inside the CLI\n"


@pytest.mark.parametrize(
    "text, keep, shown",
    [
        ("good\x1b[2J film", "", "good\\x1b[2J film"),
        ("line one\nline two\tend", "", "line one\\nline two\\tend"),
        ("line one\nline two\tend", "\n\t", "line one\nline two\tend"),
        ("caf\u00e9 \ufffd \u2028", "", "caf\u00e9 \ufffd \u2028"),  # printable, and not Cc: kept
    ],
)
def test_escape_control(text, keep, shown):
    assert escape_control(text, keep) == shown
