"""Training metrics: bits per byte, the window of sums between two history rows, and the
history of rows (one CSV file per table) with its plot.

``train`` keeps two tables (``history/train.csv``, ``eval.csv``, appended as rows come) and
plots bits per byte (:func:`loss_curve`); ``finetune`` keeps one (``history.csv``, written
whole at each evaluation) and plots its train loss and validation accuracy
(:func:`learning_curve`).
"""

import csv
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

from ..foundation import storage
from ..foundation.figures import new_figure

LN_2 = math.log(2.0)


def bits_per_byte(loss_nats: float) -> float:
    return loss_nats / LN_2


TRAIN_COLUMNS = (
    "iteration",
    "epoch",
    "loss",
    "bits_per_byte",
    "learning_rate",
    "grad_norm",
    "chars_per_s",
    "skipped_updates",
    "elapsed_s",
)
EVAL_COLUMNS = ("iteration", "epoch", "split", "loss", "bits_per_byte", "bytes")


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of a history: its file (in the history's directory) and its columns."""
    file: str
    columns: tuple[str, ...]


LANGUAGE_MODEL_TABLES = {"train": Table("train.csv", TRAIN_COLUMNS), "eval": Table("eval.csv", EVAL_COLUMNS)}


class MetricWindow:
    """Sums of per-update values since the last history row (:meth:`add`), and when it began.

    Its sums are saved with a checkpoint (:meth:`to_dict`), so a run resumed in the middle of
    a window writes the row the uninterrupted run writes.
    """

    def __init__(self, sums: dict | None = None):
        self.sums: dict[str, float] = dict(sums or {})
        self.started = time.perf_counter()

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def __getitem__(self, name: str) -> float:
        return self.sums.get(name, 0)

    def reset(self) -> None:
        self.sums.clear()
        self.started = time.perf_counter()

    def to_dict(self) -> dict:
        return dict(self.sums)


def _figure(**options):
    return new_figure(figsize=(8, 4.5), dpi=100, **options)


def loss_curve(history: "MetricsHistory"):
    """``train``'s plot: bits per byte against iteration, train rows and valid/test evaluations."""
    figure = _figure()
    axes = figure.add_subplot()
    if history.train:
        axes.plot([r["iteration"] for r in history.train], [r["bits_per_byte"] for r in history.train], label="train")
    for split, marker in (("valid", "o-"), ("test", "s")):
        rows = [r for r in history.eval if r["split"] == split]
        if rows:
            axes.plot([r["iteration"] for r in rows], [r["bits_per_byte"] for r in rows], marker, label=split)
    axes.set_xlabel("iteration")
    axes.set_ylabel("bits per byte")
    axes.grid(True, alpha=0.3)
    if history.train or history.eval:
        axes.legend()
    figure.tight_layout()
    return figure


def learning_curve(history: "MetricsHistory"):
    """``finetune``'s plot: train loss and validation accuracy against updates (one ``history`` table)."""
    rows = history.rows["history"]
    figure = _figure(layout="constrained")
    loss_axes = figure.add_subplot()
    train = [r for r in rows if r["split"] == "train"]
    loss_axes.plot([r["step"] for r in train], [r["loss"] for r in train], "o-", color="tab:blue", label="train loss")
    loss_axes.set_xlabel("update")
    loss_axes.set_ylabel("train loss (nats)", color="tab:blue")
    accuracy_axes = loss_axes.twinx()
    valid = [r for r in rows if r["split"] == "valid"]
    accuracy_axes.plot([r["step"] for r in valid], [100 * r["accuracy"] for r in valid], "s-", color="tab:orange",
                       label="validation accuracy")
    accuracy_axes.set_ylabel("validation accuracy (%)", color="tab:orange")
    loss_axes.grid(True, alpha=0.3)
    loss_axes.set_title("fine-tuning: train loss and validation accuracy")
    return figure


class MetricsHistory:
    """Rows of metrics in named tables (``train``'s: one per logging window, and evaluations).

    With a ``directory`` each row is also appended to its table's CSV file as it comes;
    :meth:`rewrite` writes the files afresh (a new run, or a resumed one, whose rows after its
    checkpoint are dropped). :meth:`plot` draws ``draw(history)`` into a PNG.
    """

    def __init__(
        self,
        directory: Path | None = None,
        tables: dict[str, Table] = LANGUAGE_MODEL_TABLES,
        draw: Callable = loss_curve,
    ):
        self.directory = directory
        self.tables = dict(tables)
        self.draw = draw
        self.rows: dict[str, list[dict]] = {name: [] for name in self.tables}

    @property
    def train(self) -> list[dict]:
        return self.rows["train"]

    @property
    def eval(self) -> list[dict]:
        return self.rows["eval"]

    def add(self, table: str, **row) -> None:
        columns = self.tables[table].columns
        if set(row) != set(columns):
            raise ValueError(f"{table} row has columns {sorted(row)}, expected {list(columns)}")
        row = {column: row[column] for column in columns}
        self.rows[table].append(row)
        if self.directory is not None:
            with open(self.directory / self.tables[table].file, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=columns).writerow(row)

    def add_train(self, **row) -> None:
        self.add("train", **row)

    def add_eval(self, **row) -> None:
        self.add("eval", **row)

    def rewrite(self, directory: Path | None = None) -> None:
        """Every table's CSV file afresh, in ``directory`` (default: the history's own, if any)."""
        directory = directory or self.directory
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            with storage.atomic_file(directory / table.file, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=table.columns)
                writer.writeheader()
                writer.writerows(self.rows[name])

    def to_dict(self) -> dict:
        return {name: rows for name, rows in self.rows.items()}

    def load_dict(self, values: dict) -> None:
        self.rows = {name: [dict(row) for row in values.get(name, [])] for name in self.tables}

    def last_eval(self, split: str) -> dict | None:
        rows = [row for row in self.eval if row["split"] == split]
        return rows[-1] if rows else None

    def plot(self, path: Path) -> Path:
        """The history's figure (``draw``) as a PNG, replaced atomically."""
        figure = self.draw(self)
        with storage.atomic_file(path, "wb") as handle:
            figure.savefig(handle, format="png")
        return path
