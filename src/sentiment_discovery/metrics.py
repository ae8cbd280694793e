"""Training metrics: bits per byte, and the history of training and evaluation rows
(``history/train.csv``, ``eval.csv``) with its loss-curve plot."""

import csv
import dataclasses
import math
from pathlib import Path

from . import storage

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
HISTORY_FILES = {"train": "train.csv", "eval": "eval.csv"}


@dataclasses.dataclass
class MetricsHistory:
    """Rows of training metrics (one per logging window) and of evaluations.

    With a ``directory`` each row is also appended to ``<directory>/train.csv`` or
    ``eval.csv`` as it comes; :meth:`rewrite` writes the files afresh (a new run, or a
    resumed one, whose rows after its checkpoint are dropped).
    """

    train: list[dict] = dataclasses.field(default_factory=list)
    eval: list[dict] = dataclasses.field(default_factory=list)
    directory: Path | None = None

    def add_train(self, **row) -> None:
        self._add("train", TRAIN_COLUMNS, row)

    def add_eval(self, **row) -> None:
        self._add("eval", EVAL_COLUMNS, row)

    def _add(self, kind: str, columns: tuple[str, ...], row: dict) -> None:
        if set(row) != set(columns):
            raise ValueError(f"{kind} row has columns {sorted(row)}, expected {list(columns)}")
        row = {column: row[column] for column in columns}
        getattr(self, kind).append(row)
        if self.directory is not None:
            with open(self.directory / HISTORY_FILES[kind], "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=columns).writerow(row)

    def rewrite(self) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for kind, columns in (("train", TRAIN_COLUMNS), ("eval", EVAL_COLUMNS)):
            path = self.directory / HISTORY_FILES[kind]
            with storage.atomic_file(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(getattr(self, kind))

    def to_dict(self) -> dict:
        return {"train": self.train, "eval": self.eval}

    def load_dict(self, values: dict) -> None:
        self.train = [dict(row) for row in values.get("train", [])]
        self.eval = [dict(row) for row in values.get("eval", [])]

    def last_eval(self, split: str) -> dict | None:
        rows = [row for row in self.eval if row["split"] == split]
        return rows[-1] if rows else None

    def plot(self, path: Path) -> None:
        """The loss curve (bits per byte against iteration) as a PNG, replaced atomically."""
        import matplotlib  # lazy: only plotting needs it (start-up time)

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 4.5), dpi=100)
        axes = figure.add_subplot()
        if self.train:
            axes.plot([r["iteration"] for r in self.train], [r["bits_per_byte"] for r in self.train], label="train")
        for split, marker in (("valid", "o-"), ("test", "s")):
            rows = [r for r in self.eval if r["split"] == split]
            if rows:
                axes.plot([r["iteration"] for r in rows], [r["bits_per_byte"] for r in rows], marker, label=split)
        axes.set_xlabel("iteration")
        axes.set_ylabel("bits per byte")
        axes.grid(True, alpha=0.3)
        if self.train or self.eval:
            axes.legend()
        figure.tight_layout()
        with storage.atomic_file(path, "wb") as handle:
            figure.savefig(handle, format="png")
