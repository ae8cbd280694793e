"""The fault tour: every bad input of the catalogue, SIGKILLed training runs, concurrent writers.

Prints the table of docs/reliability.md and writes the details as JSON:

    python benchmarks/fault_tour.py --out /tmp/fault_tour.json [--kills 20]

The cases are those of tests/test_faults.py (tests/fault_catalogue.py), on tiny models; the
tour takes about a minute of CPU time. Full and read-only disks and unreadable inputs are
simulated in-process (fault_catalogue.failing_disk, unreadable), so the tour needs no root.
"""

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fault_catalogue as faults  # noqa: E402

from sentiment_discovery import cli  # noqa: E402


def tour(root: Path, kills: int, seed: int) -> dict:
    workspace = faults.make_workspace(root / "ws")
    before = faults.snapshot(workspace)
    cases = []
    for index, case in enumerate(faults.catalogue()):
        outcome = faults.try_case(case, workspace, root / "cases" / str(index))
        cases.append({
            "name": case.name, "command": case.command, "status": outcome.status, "stderr": outcome.stderr,
            "changed": outcome.changed, "handled": faults.handled(outcome), "disk": case.during is not None,
        })
    after = faults.snapshot(workspace)
    lost = sum(len(value) for path, value in before.items() if after.get(path) != value)

    concurrent = []
    for index in range(len(faults.concurrent_cases(workspace, root / "probe"))):
        case_dir = root / "concurrent" / str(index)
        case_dir.mkdir(parents=True)
        name, target, argv = faults.concurrent_cases(workspace, case_dir)[index]
        with faults.live_writer(target):
            stderr = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
                status = cli.main(argv)
        concurrent.append({"name": name, "status": status, "stderr": stderr.getvalue(),
                           "refused": status == 2 and "is being written by another run" in stderr.getvalue()})

    started = time.perf_counter()
    runs = faults.run_kills(root / "kills", kills=kills, seed=seed)
    straight = faults.final_state(root / "kills" / "exp" / "straight")
    for run in runs:
        run["bit_identical"] = faults.final_state(root / "kills" / "exp" / run["name"]) == straight
    kill_seconds = time.perf_counter() - started
    return {
        "bad_inputs": cases,
        "input_bytes_lost": lost,
        "concurrent": concurrent,
        "kills": runs,
        "kill_tour_seconds": round(kill_seconds, 1),
    }


def table(result: dict) -> str:
    cases, runs, concurrent = result["bad_inputs"], result["kills"], result["concurrent"]
    survived = sum(run["killed"] and run["resumed"] == 0 and run["bit_identical"] for run in runs)
    mid_save = [run for run in runs if run["moment"] == "mid-save"]
    rows = [
        ("bad inputs tried / handled (one error line, status 2, nothing written or changed)",
         f"{len(cases)} / {sum(case['handled'] for case in cases)}"),
        ("... of which a read-only or full disk, or an input it may not read",
         f"{sum(case['disk'] for case in cases)} / {sum(case['handled'] for case in cases if case['disk'])}"),
        ("commands covered (and the parser)",
         f"{len({case['command'] for case in cases} & set(cli.COMMANDS))} of {len(cli.COMMANDS)}"),
        ("SIGKILLs survived (resumed bit-identical) / tried",
         f"{survived} / {len(runs)} ({sum(r['bit_identical'] for r in mid_save)} / {len(mid_save)} inside a save)"),
        ("concurrent writers refused / tried", f"{sum(c['refused'] for c in concurrent)} / {len(concurrent)}"),
        ("bytes of inputs lost", str(result["input_bytes_lost"])),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'check'.ljust(width)} | result |", f"| {'-' * width} | --- |"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file for the details")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        result = tour(Path(root), args.kills, args.seed)
    print(table(result))
    for case in result["bad_inputs"]:
        if not case["handled"]:
            print(f"NOT HANDLED: {case['name']}: status {case['status']}: {case['stderr'].strip()}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
