import csv
import logging
import os
from pathlib import Path

import pytest
import torch

from sentiment_discovery import ByteLM, ModelConfig, precision
from sentiment_discovery.foundation import log

SHARED_DATA = Path(os.environ.get("SENTIMENT_DISCOVERY_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(autouse=True)
def auto_precision_is_fp32(monkeypatch):
    """``-precision auto`` depends on the CPU; in the tests (in this process) it is taken as
    already decided, for fp32, as on a CPU without native bf16. The tests then check the
    same numbers on every machine, and print no notice; tests/test_precision.py checks the
    decision itself, and tests that want bf16 ask for it."""
    monkeypatch.setattr(precision, "_auto_choices", {"cpu": "fp32"})
    monkeypatch.setattr(precision, "_warned", set())


@pytest.fixture(autouse=True)
def cli_messages():
    """The CLI's message handler (sentiment_discovery.foundation.log), as ``sentiment-discovery`` installs
    it: tests that call a recipe or a library function in this process see the same
    ``notice:`` / ``warning:`` lines on stderr as the command would print. Removed after each
    test, so that no test inherits another's handler."""
    with log.cli_output():
        yield


class _Collected(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages():
    """``log_messages()``: a list of the package's messages (INFO and up, without the CLI's
    prefixes) logged from the call to the end of the test."""
    handlers = []

    def start() -> list[str]:
        handler = _Collected()
        log.logger.addHandler(handler)
        handlers.append(handler)
        return handler.messages

    previous = log.logger.level
    log.logger.setLevel(min(previous or logging.INFO, logging.INFO))
    yield start
    for handler in handlers:
        log.logger.removeHandler(handler)
    log.logger.setLevel(previous)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    return SHARED_DATA.resolve()


def make_model(seed: int = 0, **overrides) -> ByteLM:
    torch.manual_seed(seed)
    values = dict(rnn_type="mlstm", embed_size=8, rnn_size=16, layers=1)
    values.update(overrides)
    model = ByteLM(ModelConfig(**values))
    # Random gains and biases so that weight norm and bias paths really matter.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("_g") or name.endswith(".b"):
                parameter.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def small_model() -> ByteLM:
    return make_model()


POSITIVE = ["a wonderful, moving film", "great fun and warm", "I loved it", "superb acting", "a delight"]
NEGATIVE = ["a dull, tedious mess", "boring and long", "I hated it", "awful script", "a chore"]


def write_csv(path: Path, rows: list[tuple], header=("label", "sentence")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def labelled(count: int, offset: int = 0) -> list[tuple]:
    """``count`` toy (label, sentence) rows, labels alternating, sentences made unique."""
    rows = []
    for index in range(count):
        label = (index + offset) % 2
        pool = POSITIVE if label else NEGATIVE
        rows.append((label, f"{pool[(index + offset) % 5]} #{index + offset}"))
    return rows
