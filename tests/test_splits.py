"""recipes/splits.py: the labelled files of ``transfer`` and ``finetune`` as one option group, and their splits."""

import dataclasses

import numpy as np
import pytest

from sentiment_discovery.data.readers import split_indices
from sentiment_discovery.foundation.errors import UserError
from sentiment_discovery.recipes.finetune import FinetuneConfig
from sentiment_discovery.recipes.splits import LabelledFiles, encode_classes, hold_out_validation, read_splits
from sentiment_discovery.recipes.transfer import TransferConfig

# A value other than the default for every flag of the group.
FLAGS = dict(
    train="train.tsv", valid="valid.tsv", test="test.tsv", text_key="review", label_key="stars", input_format="csv",
    delim=";", split=0.75, drop_unlabeled=True, binarize_sent=True, multiclass=True, no_test_eval=True, seed=7,
)


def test_the_group_is_built_from_the_transfer_and_finetune_flags():
    files = LabelledFiles.from_config(TransferConfig(**FLAGS, load_model="model"))
    assert dataclasses.asdict(files) == {**FLAGS, "domain_key": None}  # transfer has no -domain_key
    tuned = LabelledFiles.from_config(FinetuneConfig(**FLAGS, domain_key="domain"))
    assert dataclasses.asdict(tuned) == {**FLAGS, "domain_key": "domain"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        files.split = 0.5
    # Every field but -domain_key is a flag both commands declare: none is filled in behind their back.
    shared = {field.name for field in dataclasses.fields(LabelledFiles)} - {"domain_key"}
    for config_class in (TransferConfig, FinetuneConfig):
        assert shared <= {field.name for field in dataclasses.fields(config_class)}


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_splits_reads_each_file_as_the_group_says(tmp_path):
    rows = "".join(f"{i % 5 + 1};text {i}\n" for i in range(10))
    train = write(tmp_path / "train.txt", "stars;review\n" + rows)  # the extension says nothing: -input_format csv
    valid = write(tmp_path / "valid.txt", "stars;review;domain\n1;bad;a\n;unlabelled;a\n5;good;b\n")
    test = write(tmp_path / "test.txt", "review\nno label here\n")
    files = LabelledFiles(
        train=train, valid=valid, test=test, text_key="review", label_key="stars", input_format="csv", delim=";",
        split=0.8, drop_unlabeled=True, binarize_sent=True, multiclass=False, no_test_eval=True, seed=3,
        domain_key="domain",
    )
    with pytest.warns(UserWarning, match=r"valid.txt: 3 records, 1 skipped \(1 missing label\)"):  # -drop_unlabeled
        splits = read_splits(files)
    assert splits["train"].texts == [f"text {i}" for i in range(10)]
    assert splits["train"].labels.tolist() == [0, 0, 0, 1, 1] * 2  # ratings 1-5 split at the middle
    assert splits["train"].domains is None  # domains are read for validation only
    assert (splits["valid"].texts, splits["valid"].labels.tolist()) == (["bad", "good"], [0, 1])
    assert splits["valid"].domains == ["a", "b"]
    assert (splits["test"].texts, splits["test"].labels) == (["no label here"], None)  # -no_test_eval
    with pytest.raises(UserError, match=r"no label in 'stars'; pass -drop_unlabeled"):
        read_splits(dataclasses.replace(files, drop_unlabeled=False))
    with pytest.raises(UserError, match=r"pass -no_test_eval to only classify it"), pytest.warns(UserWarning):
        read_splits(dataclasses.replace(files, no_test_eval=False))


def test_classes_and_the_held_out_part_follow_the_group(tmp_path):
    train = write(tmp_path / "train.csv", "label,sentence\n" + "".join(f"{i % 3 + 1},text {i}\n" for i in range(20)))
    valid = write(tmp_path / "valid.csv", "label,sentence\n1,a\n7,b\n")
    files = LabelledFiles(
        train=train, valid=None, test=None, text_key="sentence", label_key="label", input_format=None, delim=None,
        split=0.7, drop_unlabeled=False, binarize_sent=False, multiclass=True, no_test_eval=False, seed=11,
    )
    splits = read_splits(files)
    assert encode_classes(splits, files) == [1, 2, 3]
    assert splits["train"].labels.tolist() == [i % 3 for i in range(20)]
    kept, held_out = hold_out_validation(splits["train"], files)
    expected_kept, expected_held_out = split_indices(20, 0.7, seed=11)
    assert kept.texts == [f"text {i}" for i in expected_kept] and len(kept.texts) == 14
    assert held_out.texts == [f"text {i}" for i in expected_held_out]
    assert not np.array_equal(expected_held_out, split_indices(20, 0.7, seed=12)[1])  # the seed matters
    with_valid = dataclasses.replace(files, valid=valid)
    with pytest.raises(UserError, match=f"{valid}"):  # the error names the file its class came from
        encode_classes(read_splits(with_valid), with_valid)
    assert encode_classes(read_splits(files), dataclasses.replace(files, multiclass=False)) is None
