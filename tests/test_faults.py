"""The fault suite: bad inputs to every command, training killed and resumed, concurrent writers.

Each bad input must give one ``error:`` line, exit status 2, no traceback, no output and
its inputs byte-identical; every SIGKILLed run must resume to the uninterrupted run's
weights, optimizer state and histories, bit for bit; a second writer is refused.
"""

import contextlib
import io
import re

import pytest

from sentiment_discovery import cli

import fault_catalogue as faults

CATALOGUE = faults.catalogue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return faults.make_workspace(tmp_path_factory.mktemp("faults") / "ws")


def test_the_catalogue_covers_every_command_with_over_40_cases():
    assert len(CATALOGUE) >= 40
    assert len({case.name for case in CATALOGUE}) == len(CATALOGUE)
    commands = {case.command for case in CATALOGUE}
    assert set(cli.COMMANDS) - {"download", "benchmark"} <= commands


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.name for case in CATALOGUE])
def test_bad_input_is_one_error_line_and_changes_nothing(case, workspace, tmp_path):
    outcome = faults.try_case(case, workspace, tmp_path / "case")
    assert outcome.status == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert len(outcome.lines) == 1, outcome.stderr
    assert outcome.lines[0].startswith("error: ")
    assert re.search(case.error, outcome.lines[0]), outcome.lines[0]
    assert outcome.changed == []  # no output, not even partial, and every input byte-identical


@pytest.mark.slow
def test_training_killed_at_20_moments_resumes_bit_identical(tmp_path):
    runs = faults.run_kills(tmp_path, kills=20, seed=18)
    assert len(runs) == 20
    assert all(run["killed"] for run in runs), runs
    assert all(run["resumed"] == 0 for run in runs), runs
    assert sum(run["moment"] == "mid-save" for run in runs) == 10
    straight = faults.final_state(tmp_path / "exp" / "straight")
    assert straight["iteration"] == faults.TRAIN_FLAGS["max_iters"]
    assert faults.final_state(tmp_path / "exp" / "straight_again") == straight
    for run in runs:
        assert faults.final_state(tmp_path / "exp" / run["name"]) == straight, run


@pytest.mark.parametrize("index", range(5))
def test_a_second_writer_is_refused_before_any_work(index, workspace, tmp_path):
    name, target, argv = faults.concurrent_cases(workspace, tmp_path)[index]
    with faults.live_writer(target) as pid:
        before = faults.snapshot(workspace, tmp_path)
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            status = cli.main(argv)
        after = faults.snapshot(workspace, tmp_path)
    assert status == 2, stderr.getvalue()
    assert stderr.getvalue() == (
        f"error: {target} is being written by another run (process {pid}); wait for it to finish or choose another "
        f"{ {2: '-experiment_name', 3: '-experiment_name', 4: '--out'}.get(index, 'output') }\n"
    )
    assert after == before
