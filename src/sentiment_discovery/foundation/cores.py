"""How many CPU cores this process may use and how many sit idle: the default of every count of
threads or worker processes (no torch, so that ``preprocess`` starts without it)."""

import os
import time

# How long the CPU is watched to count its idle cores (jiffies are 10 ms: 2 cores give 40 samples).
IDLE_WINDOW_S = 0.2


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def idle_cores(window_s: float = IDLE_WINDOW_S) -> float | None:
    """How many cores sat idle over the next ``window_s`` seconds (Linux ``/proc/stat``), else None."""

    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user ... steal

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(window_s)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    return (os.cpu_count() or 1) * (idle_after - idle_before) / (total_after - total_before)


def default_workers() -> int:
    """The cores idle right now, at least one, at most the usable ones (all usable ones if unknown).

    The same count as the default number of torch threads (``runtime.default_threads``): a
    process whose core another job holds makes the whole run wait for it.
    """
    idle = idle_cores()
    if idle is None:
        return usable_cores()
    return max(1, min(usable_cores(), round(idle)))
