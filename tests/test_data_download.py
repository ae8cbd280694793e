import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import shutil
import tarfile
import threading

import pytest

from sentiment_discovery import cli
from sentiment_discovery.data import download as downloads
from sentiment_discovery.data.download import Archive, Dataset, OutputFile, content_sha256, convert_aclimdb, download
from sentiment_discovery.foundation.errors import UserError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(directory, URL): a server on 127.0.0.1 serving the directory, stopped after the test."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(downloads, "TIMEOUT_SECONDS", 5)
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


SST_FILES = {
    "train_binary_sent.csv": b"label,sentence\n1,A stirring tale\n0,Flat\n",
    "dev_binary_sent.csv": b"label,sentence\n0,\"Dull, slow\"\n",
    "test_binary_sent.csv": b"label,sentence\n1,Caf\xc3\xa9 charm\n",
}


def fake_sst2(base_url: str) -> dict[str, Dataset]:
    files = tuple(
        OutputFile(source.replace("_binary_sent", ""), sha256(data), source) for source, data in SST_FILES.items()
    )
    return {"sst2": Dataset("sst2", base_url, files)}


def test_sst2_from_its_source_url_then_no_op(http_root, tmp_path, log_messages):
    root, url = http_root
    for name, data in SST_FILES.items():
        (root / name).write_bytes(data)
    messages = log_messages()
    directory = download("sst2", tmp_path / "data", datasets=fake_sst2(url))
    assert directory == tmp_path / "data" / "sst2"
    assert sorted(p.name for p in directory.iterdir()) == ["dev.csv", "test.csv", "train.csv"]
    assert (directory / "dev.csv").read_bytes() == SST_FILES["dev_binary_sent.csv"]
    assert messages == [f"{directory}: train.csv, dev.csv, test.csv downloaded and verified"]
    for name in SST_FILES:
        (root / name).unlink()  # the source is gone: a second run must not need it
    download("sst2", tmp_path / "data", datasets=fake_sst2(url))
    assert messages[-1] == f"{directory}: train.csv, dev.csv, test.csv already present and verified"


def test_a_damaged_file_is_fetched_again(http_root, tmp_path, log_messages):
    root, url = http_root
    for name, data in SST_FILES.items():
        (root / name).write_bytes(data)
    directory = download("sst2", tmp_path, datasets=fake_sst2(url))
    (directory / "train.csv").write_bytes(b"label,sentence\n")
    messages = log_messages()
    download("sst2", tmp_path, datasets=fake_sst2(url))
    assert messages[0] == f"{directory / 'train.csv'} does not match its sha256: fetching it again"
    assert (directory / "train.csv").read_bytes() == SST_FILES["train_binary_sent.csv"]


def test_wrong_hash_and_missing_files_are_user_errors(http_root, tmp_path):
    root, url = http_root
    for name, data in SST_FILES.items():
        (root / name).write_bytes(data)
    tampered = b"label,sentence\n1,tampered\n"
    (root / "dev_binary_sent.csv").write_bytes(tampered)
    with pytest.raises(UserError) as error:
        download("sst2", tmp_path, datasets=fake_sst2(url))
    assert str(error.value) == (
        f"{url}/dev_binary_sent.csv has sha256 {sha256(tampered)}, "
        f"expected {sha256(SST_FILES['dev_binary_sent.csv'])}: the file is damaged or not the published one"
    )
    assert sorted(p.name for p in (tmp_path / "sst2").iterdir()) == ["train.csv"]  # no partial file left
    (root / "test_binary_sent.csv").unlink()
    (root / "dev_binary_sent.csv").write_bytes(SST_FILES["dev_binary_sent.csv"])
    with pytest.raises(UserError) as error:
        download("sst2", tmp_path, datasets=fake_sst2(url), mirror=url)
    assert str(error.value) == f"{url}/test_binary_sent.csv does not exist (check --mirror)"
    with pytest.raises(UserError, match="unknown dataset .mnist.; choose one of sst2, imdb, mr, cr, subj, mpqa"):
        download("mnist", tmp_path)


def test_unreachable_source_suggests_a_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "TIMEOUT_SECONDS", 2)
    with pytest.raises(UserError) as error:
        download("sst2", tmp_path, datasets=fake_sst2("http://127.0.0.1:9"))
    assert str(error.value).startswith("could not download http://127.0.0.1:9/train_binary_sent.csv: ")
    assert str(error.value).endswith("; without internet access use --mirror DIR")


def test_mirror_directory_with_original_names(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in SST_FILES.items():
        (mirror / name).write_bytes(data)
    directory = download("sst2", tmp_path / "out", datasets=fake_sst2("http://unused.invalid"), mirror=str(mirror))
    assert (directory / "test.csv").read_bytes() == SST_FILES["test_binary_sent.csv"]


# A tiny aclImdb archive and, written out by hand, the CSV files it converts to.
ACLIMDB_MEMBERS = {
    "aclImdb/README": b"readme",
    "aclImdb/train/pos/10_9.txt": b"Great, \"truly\" great.<br /><br />Loved it",
    "aclImdb/train/pos/2_7.txt": "Caf\u00e9 scene".encode(),
    "aclImdb/train/neg/0_3.txt": b"Bad. ",
    "aclImdb/train/unsup/0_0.txt": b"unlabeled, ignored",
    "aclImdb/train/urls_pos.txt": b"http://example.invalid\n",
    "aclImdb/test/neg/1_1.txt": b"Awful",
    "aclImdb/test/pos/3_10.txt": b"Superb",
}
ACLIMDB_TRAIN_CSV = (
    "id,rating,label,text\r\n"
    "0,3,0,Bad. \r\n"
    "2,7,1,Caf\u00e9 scene\r\n"
    '10,9,1,"Great, ""truly"" great.<br /><br />Loved it"\r\n'
).encode()
ACLIMDB_TEST_CSV = b"id,rating,label,text\r\n1,1,0,Awful\r\n3,10,1,Superb\r\n"


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_imdb(base_url: str, archive: bytes) -> dict[str, Dataset]:
    files = (OutputFile("train.csv.gz", sha256(ACLIMDB_TRAIN_CSV)), OutputFile("test.csv.gz", sha256(ACLIMDB_TEST_CSV)))
    return {"imdb": Dataset("imdb", base_url, files, Archive("aclImdb_v1.tar.gz", sha256(archive), convert_aclimdb))}


def test_imdb_archive_is_downloaded_verified_and_converted(http_root, tmp_path):
    root, url = http_root
    archive = tar_gz(ACLIMDB_MEMBERS)
    (root / "aclImdb_v1.tar.gz").write_bytes(archive)
    directory = download("imdb", tmp_path, datasets=fake_imdb(url, archive))
    assert sorted(p.name for p in directory.iterdir()) == ["test.csv.gz", "train.csv.gz"]
    assert gzip.decompress((directory / "train.csv.gz").read_bytes()) == ACLIMDB_TRAIN_CSV
    assert gzip.decompress((directory / "test.csv.gz").read_bytes()) == ACLIMDB_TEST_CSV
    (root / "aclImdb_v1.tar.gz").write_bytes(archive[:-10])
    with pytest.raises(UserError, match="damaged or not the published archive"):
        download("imdb", tmp_path / "again", datasets=fake_imdb(url, archive))
    assert not (tmp_path / "again" / "imdb").exists()  # nothing left behind, not even the folder


def test_imdb_conversion_reproduces_the_staged_csv(shared_data, tmp_path):
    """Rebuild part of the aclImdb tree from the staged CSV: converting it must give back the same lines."""
    staged = gzip.decompress((shared_data / "imdb" / "train.csv.gz").read_bytes())
    lines = staged.split(b"\r\n")
    header, rows = lines[0], lines[1:-1]
    chosen = rows[:40] + rows[12500:12540]  # ids 0-39 of neg, then of pos
    members = {}
    for line in chosen:
        review_id, rating, label, _ = line.decode("utf-8").split(",", 3)
        polarity = "pos" if label == "1" else "neg"
        text = staged_text(line)
        members[f"aclImdb/train/{polarity}/{review_id}_{rating}.txt"] = text.encode("utf-8")
    members["aclImdb/test/neg/0_1.txt"] = b"x"
    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(tar_gz(members))
    convert_aclimdb(archive, tmp_path)
    converted = gzip.decompress((tmp_path / "train.csv.gz.partial").read_bytes())
    assert converted == b"\r\n".join([header, *chosen]) + b"\r\n"


def staged_text(line: bytes) -> str:
    import csv

    return next(csv.reader([line.decode("utf-8")]))[3]


def test_cli_fetches_the_real_sst2_through_a_mirror_url(shared_data, http_root, tmp_path, capsys):
    root, url = http_root
    for split in ("train", "dev", "test"):
        shutil.copy(shared_data / "sst2" / f"{split}.csv", root / f"{split}_binary_sent.csv")
    assert cli.main(["download", "sst2", "--to", str(tmp_path), "--mirror", url]) == 0
    for split in ("train", "dev", "test"):
        assert (tmp_path / "sst2" / f"{split}.csv").read_bytes() == (shared_data / "sst2" / f"{split}.csv").read_bytes()
    assert capsys.readouterr().err.strip().endswith("train.csv, dev.csv, test.csv downloaded and verified")


def test_cli_takes_finished_files_from_a_mirror_and_is_a_no_op_on_them(shared_data, tmp_path, capsys):
    assert cli.main(["download", "imdb", "--to", str(tmp_path), "--mirror", str(shared_data)]) == 0
    assert content_sha256(tmp_path / "imdb" / "test.csv.gz") == downloads.IMDB.files[1].sha256
    assert cli.main(["download", "sst2", "-to", str(shared_data)]) == 0
    assert cli.main(["download", "imdb", "-to", str(shared_data)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{tmp_path / 'imdb'}: copied train.csv.gz, test.csv.gz from {shared_data}",
        f"{shared_data / 'sst2'}: train.csv, dev.csv, test.csv already present and verified",
        f"{shared_data / 'imdb'}: train.csv.gz, test.csv.gz already present and verified",
    ]


def test_published_hashes_are_the_shared_data_readme_values(shared_data):
    readme = (shared_data / "README.md").read_text()
    for file in downloads.SST2.files:
        assert f"{file.sha256}  sst2/{file.name}" in readme
    assert downloads.IMDB.archive.sha256 == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
    for file in downloads.IMDB.files:
        assert content_sha256(shared_data / "imdb" / file.name) == file.sha256


# --------------------------------------------------------------------------- MR, CR, SUBJ, MPQA


def staged_sentences(csv_path) -> tuple[list[str], list[str]]:
    import csv

    with open(csv_path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["sentence"] for r in rows if r["label"] == "1"], [r["sentence"] for r in rows if r["label"] == "0"]


def original_file(lines: list[str], blank_at: tuple[int, ...] = ()) -> bytes:
    """Lines as the original distribution stores them: Windows-1252, one per line, some blank lines between."""
    out = []
    for index, line in enumerate(lines):
        if index in blank_at:
            out.append(b"")
        out.append(line.encode("cp1252"))
    return b"\n".join(out) + b"\n"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def original_archives(shared_data) -> dict[str, bytes]:
    """The four sets' original archives, in their published layouts, rebuilt from the staged CSVs."""
    mr_pos, mr_neg = staged_sentences(shared_data / "mr" / "mr.csv")
    subj, plot = staged_sentences(shared_data / "subj" / "subj.csv")
    cr_pos, cr_neg = staged_sentences(shared_data / "cr" / "cr.csv")
    mpqa_pos, mpqa_neg = staged_sentences(shared_data / "mpqa" / "mpqa.csv")
    return {
        "rt-polaritydata.tar.gz": tar_gz({
            "rt-polaritydata.README.1.0.txt": b"readme",
            "rt-polaritydata/rt-polarity.neg": original_file(mr_neg),
            "rt-polaritydata/rt-polarity.pos": original_file(mr_pos),
        }),
        "rotten_imdb.tar.gz": tar_gz({
            "subjdata.README.1.0": b"readme",
            "plot.tok.gt9.5000": original_file(plot),
            "quote.tok.gt9.5000": original_file(subj),
        }),
        # The source's blank lines (4 in CR, 3 in MPQA) are put back: the conversion drops them.
        "datasmall_NB_ACL12.zip": zip_bytes({
            "data/customerr/custrev.pos": original_file(cr_pos, blank_at=(10, 500)),
            "data/customerr/custrev.neg": original_file(cr_neg, blank_at=(0, 7)),
            "data/mpqa/mpqa.pos": original_file(mpqa_pos, blank_at=(3,)),
            "data/mpqa/mpqa.neg": original_file(mpqa_neg, blank_at=(100, 101)),
            "data/rt10662/rt-polarity.pos": b"not used\n",
        }),
    }


def test_sentence_sets_from_their_original_archives_reproduce_the_staged_csvs(shared_data, http_root, tmp_path):
    root, url = http_root
    archives = original_archives(shared_data)
    for name, data in archives.items():
        (root / name).write_bytes(data)
    sources = {name: dataclasses.replace(dataset, base_url=url) for name, dataset in downloads.DATASETS.items()}
    # The published MR archive has its own checksum; this rebuilt one differs in its tar/gzip framing.
    sources["mr"] = dataclasses.replace(
        sources["mr"], archive=dataclasses.replace(sources["mr"].archive, sha256=sha256(archives["rt-polaritydata.tar.gz"]))
    )
    for name in ("mr", "cr", "subj", "mpqa"):
        directory = download(name, tmp_path, datasets=sources)
        assert [p.name for p in directory.iterdir()] == [f"{name}.csv"]
        assert (directory / f"{name}.csv").read_bytes() == (shared_data / name / f"{name}.csv").read_bytes()


def test_sentence_set_errors_name_the_archive_problem(http_root, tmp_path):
    root, url = http_root
    csv_bytes = b'label,sentence\n1,"good "\n1,"caf\xc3\xa9 \xe2\x80\xa6"\n0,"bad"\n'
    archive = tar_gz({"rt-polaritydata/rt-polarity.pos": b"good \r\n\ncaf\xe9 \x85\n", "rt-polaritydata/rt-polarity.neg": b"bad"})
    (root / "rt-polaritydata.tar.gz").write_bytes(archive)
    dataset = dataclasses.replace(
        downloads.MR, base_url=url, files=(OutputFile("mr.csv", sha256(csv_bytes)),),
        archive=dataclasses.replace(downloads.MR.archive, sha256=sha256(archive)),
    )
    directory = download("mr", tmp_path, datasets={"mr": dataset})
    assert (directory / "mr.csv").read_bytes() == csv_bytes  # CRLF, blank line, cp1252 and no final newline handled
    (root / "rt-polaritydata.tar.gz").write_bytes(tar_gz({"rt-polaritydata/rt-polarity.pos": b"x\n"}))
    unverified = dataclasses.replace(dataset, archive=dataclasses.replace(dataset.archive, sha256=None))
    with pytest.raises(UserError) as error:
        download("mr", tmp_path / "again", datasets={"mr": unverified})
    assert str(error.value).endswith("holds no rt-polarity.neg: not the published archive")
    assert not (tmp_path / "again").exists()  # a failed first download leaves no folder behind
    other = b'label,sentence\n1,"x"\n0,"y"\n'
    (root / "rt-polaritydata.tar.gz").write_bytes(
        tar_gz({"rt-polaritydata/rt-polarity.pos": b"x\n", "rt-polaritydata/rt-polarity.neg": b"y\n"})
    )
    with pytest.raises(UserError) as error:
        download("mr", tmp_path / "again", datasets={"mr": unverified})
    assert str(error.value) == (
        f"mr.csv converted from rt-polaritydata.tar.gz has sha256 {sha256(other)}, expected {sha256(csv_bytes)}: "
        "the file is damaged or not the published one"
    )


def test_sentence_set_hashes_are_the_shared_data_readme_values(shared_data):
    readme = (shared_data / "README.md").read_text()
    for name in ("mr", "cr", "subj", "mpqa"):
        (file,) = downloads.DATASETS[name].files
        assert f"{file.sha256}  {name}/{file.name}" in readme
    assert cli.main(["download", "cr", "-to", str(shared_data)]) == 0
