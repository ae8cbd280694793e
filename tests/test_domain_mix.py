"""recipes/domain_mix.py: the default classifier's training, selection and report parts."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The only files the recipe may read: every test set (SST-2 test, IMDB test, MR, CR, MPQA, SUBJ) stays out.
ALLOWED = ("sst2/train.csv", "sst2/dev.csv", "imdb/train.csv.gz", "amazon/reviews.jsonl.gz")


def recipe():
    spec = importlib.util.spec_from_file_location("domain_mix", ROOT / "recipes" / "domain_mix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    # A data folder holding only the allowed files: reading any test set would fail.
    data = tmp_path_factory.mktemp("data")
    for name in ALLOWED:
        (data / name).parent.mkdir(exist_ok=True)
        (data / name).symlink_to((SHARED_DATA / name).resolve())
    out = tmp_path_factory.mktemp("mix")
    assert recipe().main(["--data", str(data), "--out", str(out)]) == 0
    return recipe(), out, data


def test_parts_share_no_text_and_read_no_test_set(mixed):
    module, out, _ = mixed
    parts = {name: read(out / f"{name}.csv") for name in ("train", "select", "report_amazon")}
    keys = {name: [module.key(row["text"]) for row in rows] for name, rows in parts.items()}
    for name, rows in parts.items():
        # Within a part a text is once per domain (an Amazon title may also be a sentence of another review).
        pairs = [(row["domain"], module.key(row["text"])) for row in rows]
        assert len(pairs) == len(set(pairs)), f"a text repeats within a domain of {name}"
    assert not set(keys["train"]) & set(keys["select"])
    assert not set(keys["train"]) & set(keys["report_amazon"])
    assert not set(keys["select"]) & set(keys["report_amazon"])
    # Every domain has a selection part; the training sizes are the documented ones, labels balanced.
    manifest = json.loads((out / "manifest.json").read_text())
    train = manifest["parts"]["train"]
    assert set(train) == set(module.DOMAINS) == set(manifest["parts"]["select"])
    for domain, size in module.TRAIN_SIZES.items():
        assert size - 5 <= train[domain]["texts"] <= size and abs(2 * train[domain]["positive"] - train[domain]["texts"]) <= 1
    assert manifest["parts"]["select"]["sst2"]["texts"] == 872  # all of SST-2 dev
    assert set(manifest["parts"]["report_amazon"]) == {"amazon_review", "amazon_summary", "amazon_sentence"}
    assert {row["label"] for rows in parts.values() for row in rows} == {"0", "1"}


def test_the_files_are_reproducible_and_the_seed_changes_them(mixed, tmp_path):
    module, out, data = mixed
    again = tmp_path / "again"
    module.main(["--data", str(data), "--out", str(again)])
    for name in ("train.csv", "select.csv", "report_amazon.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    other = tmp_path / "other"
    module.main(["--data", str(data), "--out", str(other), "--seed", "25"])
    assert (other / "train.csv").read_bytes() != (out / "train.csv").read_bytes()


def test_sentence_rule():
    module = recipe()
    review = "I bought this kettle in May. It broke.<br />Support never answered my emails. Avoid this seller at all costs!"
    assert module.sentences(review) == ["I bought this kettle in May.", "Avoid this seller at all costs!"]
    assert module.sentences("Too short. Tiny.") == []
    assert module.sentences("One sentence that is long enough to count.") == ["One sentence that is long enough to count."]
