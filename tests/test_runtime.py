"""The default CPU thread count: the cores idle at start, unless told otherwise."""

import os

import pytest
import torch

from sentiment_discovery import runtime


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("idle", "usable", "expected"), [(1.9, 2, 2), (1.2, 2, 1), (0.1, 2, 1), (7.6, 4, 4)])
def test_default_threads_are_the_idle_cores(monkeypatch, idle, usable, expected):
    monkeypatch.setattr(runtime, "idle_cores", lambda: idle)
    monkeypatch.setattr(runtime, "usable_cores", lambda: usable)
    assert runtime.default_threads() == expected


def test_default_threads_without_proc_stat_keep_torchs_choice(monkeypatch):
    monkeypatch.setattr(runtime, "idle_cores", lambda: None)
    assert runtime.default_threads() == torch.get_num_threads()


def test_idle_cores_is_measured_within_the_machine():
    idle = runtime.idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9


def test_configure_threads_prefers_the_flag_then_omp_num_threads(monkeypatch):
    monkeypatch.setattr(runtime, "default_threads", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.configure_threads() == 1
    assert runtime.configure_threads(2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.configure_threads() == 2  # left as it is (the stubbed default would give 1)
    assert runtime.configure_threads(1) == 1
