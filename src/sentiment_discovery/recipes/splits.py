"""The labelled splits ``transfer`` and ``finetune`` read: train, valid and test files, classes, held-out validation.

Every function takes the command's data flags as one :class:`LabelledFiles` (``-train``,
``-valid``, ``-test``, ``-text_key``, ``-label_key``, ``-input_format``, ``-delim``, ``-split``,
``-drop_unlabeled``, ``-binarize_sent``, ``-multiclass``, ``-no_test_eval``, ``-seed``, finetune's
``-domain_key``), made from the command's config by :meth:`LabelledFiles.from_config`.
"""

import dataclasses

import numpy as np

from .. import transfer
from ..data.readers import parse_split, read_labeled, read_texts, split_indices
from ..foundation import log
from ..foundation.errors import UserError


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelledFiles:
    """The labelled files a command reads and how: the data flags of ``transfer`` and ``finetune``."""
    train: str
    valid: str | None
    test: str | None
    text_key: str
    label_key: str
    input_format: str | None  # None: by extension
    delim: str | None  # None: by extension
    split: float  # without -valid: the fraction of -train kept for training
    drop_unlabeled: bool
    binarize_sent: bool
    multiclass: bool
    no_test_eval: bool
    seed: int  # draws the part -split holds out
    domain_key: str | None = None  # a column of -valid (finetune's; transfer has none)

    @classmethod
    def from_config(cls, config) -> "LabelledFiles":
        """The fields of this group from a command's config (a ``TransferConfig``, a ``FinetuneConfig``)."""
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: getattr(config, name) for name in names if hasattr(config, name)})

    def path(self, name: str) -> str | None:
        """The file of split ``name`` (train, valid or test)."""
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


@dataclasses.dataclass
class Split:
    """A file's texts and labels (None: an unlabelled test file), and their features once featurized."""
    name: str
    texts: list[str]
    labels: "np.ndarray | None"
    features: "np.ndarray | None" = None
    # Each text's domain (finetune -domain_key, validation only): validation accuracy is then the mean over domains.
    domains: list[str] | None = None

    def subset(self, name: str, indices: "np.ndarray") -> "Split":
        features = None if self.features is None else self.features[indices]  # finetune featurizes none
        domains = None if self.domains is None else [self.domains[i] for i in indices]
        return Split(name, [self.texts[i] for i in indices], self.labels[indices], features, domains)


def read_labeled_split(files: LabelledFiles, name: str, path: str, label_hint: str = "") -> Split:
    # Domains are read for validation only: selection is by the mean accuracy over them.
    domain_key = files.domain_key if name == "valid" else None
    try:
        data = read_labeled(
            path, files.text_key, files.label_key, fmt=files.input_format, delim=files.delim,
            drop_unlabeled=files.drop_unlabeled, binarize_sent=files.binarize_sent, any_labels=files.multiclass,
            domain_key=domain_key,
        )
    except UserError as error:
        # The reader names the label key in every label problem (missing column, missing or odd values).
        if label_hint and repr(files.label_key) in str(error):
            raise UserError(f"{error}{label_hint}") from None
        if "are not binary" in str(error):
            raise UserError(f"{error}, or -multiclass to keep each label as a class") from None
        raise
    if not data.texts:
        raise UserError(f"{path} ({name}) holds no labelled texts")
    return Split(name, data.texts, data.labels, domains=data.domains)


def read_splits(files: LabelledFiles, cross_validating: bool = False) -> dict[str, Split]:
    """train, valid (from its file or not yet split off) and test, as given; test labels unless -no_test_eval.

    ``cross_validating`` (``transfer -cv``): no validation file or -split is needed, each fold has its own.
    """

    splits = {"train": read_labeled_split(files, "train", files.train)}
    if not files.multiclass:
        transfer.check_labels(splits["train"].labels, "the training set")  # before any featurizing
    if files.valid:
        splits["valid"] = read_labeled_split(files, "valid", files.valid)
    elif cross_validating:
        pass  # each fold's validation part comes from -train
    elif len(parse_split(files.split)) != 2:
        raise UserError("no validation set to choose C on: pass -valid FILE, or -split below 1 (e.g. 0.9)")
    if files.test and files.no_test_eval:
        texts = read_texts(files.test, files.text_key, fmt=files.input_format, delim=files.delim)
        if not texts:
            raise UserError(f"{files.test} (test) holds no texts")
        splits["test"] = Split("test", texts, None)
    elif files.test:
        hint = f" (if {files.test} has no labels, pass -no_test_eval to only classify it)"
        splits["test"] = read_labeled_split(files, "test", files.test, hint)
    elif files.no_test_eval:
        log.notice("-no_test_eval without -test does nothing")
    return splits


def encode_classes(splits: dict[str, Split], files: LabelledFiles) -> "list[int] | None":
    """-multiclass: the training labels' classes, every split's labels turned into class indices 0..K-1.

    None (and the labels left alone) without -multiclass, or when the classes are 0 and 1.
    """

    if not files.multiclass:
        return None
    classes = transfer.training_classes(splits["train"].labels, f"the training set {files.train}")
    for name, split in splits.items():
        if split.labels is not None:
            split.labels = transfer.class_indices(split.labels, classes, f"{files.path(name)} ({name})")
    classes = [int(c) for c in classes]
    return None if transfer.is_default_classes(classes) else classes


def hold_out_validation(train: Split, files: LabelledFiles) -> tuple[Split, Split]:
    kept, held_out = split_indices(len(train.texts), files.split, seed=files.seed)
    if len(kept) == 0 or len(held_out) == 0:
        raise UserError(f"-split {files.split} leaves an empty part of the {len(train.texts)} training texts; pass -valid")
    return train.subset("train", kept), train.subset("valid", held_out)
