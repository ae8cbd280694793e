"""``download openai-mlstm``, the model cache and model names, against a local HTTP server.

The real release is 15 files, 345 MB; here the server serves a release-layout set of small
random files made in the test, and the release's table of git blob ids is swapped for theirs
(the built-in table is pinned by its own test).
"""

import csv
import hashlib
import http.server
import json
import threading

import numpy as np
import pytest
import torch

from sentiment_discovery import UserError, cli, load_model, save_model
from sentiment_discovery.foundation import model_cache
from sentiment_discovery.data import releases
from sentiment_discovery.data.releases import OPENAI_MLSTM, ModelRelease, git_blob_id
from sentiment_discovery.importers import load_openai_weights
from sentiment_discovery.serve.service import InferenceService
from sentiment_discovery.foundation.text import OPENAI_TEXT_OPTIONS

from conftest import make_model
from test_importers import openai_params, write_release

H = 12
UNIT = 5  # the test release's "sentiment unit" (the real one, 2388, needs 4,096 units)

# The table: openai/generating-reviews-discovering-sentiment, model/ at its last commit.
PUBLISHED_BLOB_IDS = {
    "0.npy": "64046c2bfcc46b04001ecc72c523fa06ea49da26", "8.npy": "3fd585ae5e53cae155ea8b760950db24ab13424b",
    "1.npy": "48a9ce0d01b7f8394345f3587559ce8ce7e47841", "9.npy": "45d5ce521c7b10f3e6ccc702f902846e3e1d4216",
    "2.npy": "9a78f2c8f5447d0eb2c93d6f8f2632483441a072", "10.npy": "068c953b192b871251d2b67f4c3c4cf76700dbf1",
    "3.npy": "8dc8daffdd0317fe2062ce7730608f2d1ace7737", "11.npy": "4266d2a2ffde97cc74cb54707f5b6fc74b924cea",
    "4.npy": "90ff06565ee66227c075ea724d010a0dd87b76d9", "12.npy": "6116d17dec7f722b55248e632c25be47cf13b6a4",
    "5.npy": "181109eb9fbea7529d9ccbbade234365f40914ee", "13.npy": "21a442e141da569d96d1739aa9fe3277544255ef",
    "6.npy": "875fadb36c969edabffd35df7702c80de2fb895e", "14.npy": "0f452d14e0ac21f47c4c68de3b4427dee9b5ce6a",
    "7.npy": "5f946abd4eb767a0c04941eb90f8bee718ccceef",
}


def blob_id(data: bytes) -> str:
    """git's blob id, written here from its definition: SHA-1 of "blob <size>\\0" + content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- a server with Range


class ReleaseServer:
    """Serves ``files`` (path -> bytes) over HTTP on 127.0.0.1, with HEAD and byte Range requests.

    ``cut``: paths whose first GET sends only the first half of the bytes, then closes the
    connection (a download killed half-way). ``ranges`` records every Range header received.
    """

    def __init__(self, files: dict[str, bytes], cut: tuple[str, ...] = ()):
        self.files, self.cut, self.ranges = dict(files), set(cut), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body: bool):
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                requested = self.headers.get("Range")
                if requested and body:
                    server.ranges.append((self.path, requested))
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                if self.path in server.cut:
                    server.cut.discard(self.path)
                    self.wfile.write(data[start : start + len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(model_cache.CACHE_ENV, str(root))
    return root


@pytest.fixture
def release_files(tmp_path):
    """The small release's files (name -> bytes), its folder, and its ModelRelease in openai-mlstm's place."""
    folder = write_release(tmp_path / "release" / "model", openai_params(seed=4, hidden=H))
    files = {f"{i}.npy": (folder / f"{i}.npy").read_bytes() for i in range(15)}
    return files, folder


@pytest.fixture
def test_release(release_files, monkeypatch):
    files, _ = release_files
    release = ModelRelease(
        name="openai-mlstm", base_url="http://127.0.0.1:9/unused",
        files=tuple((name, blob_id(files[name])) for name in sorted(files, key=lambda n: int(n.split(".")[0]))),
        sentiment_unit=UNIT, description="a small model in the release's layout",
    )
    monkeypatch.setitem(releases.MODEL_RELEASES, "openai-mlstm", release)
    return release


@pytest.fixture
def server(release_files):
    files, _ = release_files
    running = ReleaseServer({f"/model/{name}": data for name, data in files.items()})
    yield running
    running.close()


def error_lines(err: str) -> list[str]:
    """The ``error:`` lines of stderr (the progress bars share it)."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --------------------------------------------------------------------------- the built-in table


def test_the_built_in_table_is_the_published_one():
    assert dict(OPENAI_MLSTM.files) == PUBLISHED_BLOB_IDS
    assert [name for name, _ in OPENAI_MLSTM.files] == [f"{i}.npy" for i in range(15)]  # the importer's order
    assert releases.MODEL_RELEASES["openai-mlstm"] is OPENAI_MLSTM
    assert OPENAI_MLSTM.base_url == (
        "https://raw.githubusercontent.com/openai/generating-reviews-discovering-sentiment/master/model"
    )
    assert OPENAI_MLSTM.sentiment_unit == 2388
    assert set(model_cache.DOWNLOADABLE) == set(releases.MODEL_RELEASES)


def test_git_blob_id_is_gits(tmp_path):
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    # `git hash-object` of these two files
    assert git_blob_id(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_id(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


# --------------------------------------------------------------------------- download


def test_download_installs_a_named_model_every_command_uses(
    cache, test_release, server, release_files, tmp_path, capsys
):
    files, folder = release_files
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 0
    installed = cache / "models" / "openai-mlstm"
    assert files_under(cache) == ["models/openai-mlstm/config.json", "models/openai-mlstm/model.safetensors"]
    model = load_model("openai-mlstm")
    reference = load_openai_weights(folder)
    assert model.state_dict().keys() == reference.state_dict().keys()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert model.text_options == OPENAI_TEXT_OPTIONS
    metadata = model.metadata
    assert metadata["sentiment_unit"] == UNIT and metadata["release"] == "openai-mlstm"
    assert metadata["files"] == dict(test_release.files) and metadata["source_url"] == f"{server.url}/model"
    assert f"installed openai-mlstm ({H} units, sentiment unit {UNIT}) in {installed}" in capsys.readouterr().err

    # models: the installed one (name, units, size, source, sentiment unit), and what can be fetched.
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    size = sum(p.stat().st_size for p in installed.iterdir())
    row = next(line for line in out if line.strip().startswith("openai-mlstm "))
    assert row.split() == ["openai-mlstm", str(H), f"{size / 1e3:.1f}", "kB", "openai-mlstm", str(UNIT)]
    assert f"  openai-mlstm (installed): {model_cache.DOWNLOADABLE['openai-mlstm']}" in out

    # featurize --model NAME
    texts = tmp_path / "texts.txt"
    texts.write_text("a wonderful film\nawful, just awful\n", encoding="utf-8")
    assert cli.main(["featurize", "--model", "openai-mlstm", "-input", str(texts), "-output", str(tmp_path / "f.npy"),
                     "-precision", "fp32"]) == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "f.npy"), reference.featurize(["a wonderful film", "awful, just awful"], precision="fp32")
    )

    # transfer -load_model NAME, then classify with the classifier it saved
    data = tmp_path / "toy"
    data.mkdir()
    words = ["good", "great", "lovely", "bad", "awful", "dull"]
    for split, count in (("train", 24), ("dev", 8), ("test", 8)):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "sentence"])
            for i in range(count):
                writer.writerow([int(i % 6 < 3), f"{words[i % 6]} film number {i}"])
    experiment = tmp_path / "exp"
    assert cli.main([
        "transfer", "-experiment_dir", str(experiment), "-load_model", "openai-mlstm", "-train", str(data / "train.csv"),
        "-valid", str(data / "dev.csv"), "-test", str(data / "test.csv"), "-c_grid", "0.5", "8", "-no_data_efficiency",
    ]) == 0
    results = experiment / "mlstm" / "toy" / "openai-mlstm"
    results_json = json.loads((results / "results.json").read_text())
    assert results_json["texts"] == {"train": 24, "valid": 8, "test": 8}
    # The recorded sentiment unit's histogram is drawn beside the top units' (the paper's figure 3).
    histograms = {f"neuron_{u}_histogram.png" for u in {*results_json["top_units"], UNIT}}
    assert {p.name for p in results.glob("neuron_*_histogram.png")} == histograms
    capsys.readouterr()
    assert cli.main(["classify", "--classifier", str(results), "--text", "a lovely film", "--model", "openai-mlstm",
                     "-no_feature_cache"]) == 0
    assert capsys.readouterr().out.rstrip("\n").endswith("\ta lovely film")

    # visualize -load_model NAME: the recorded sentiment unit, without -neuron
    assert cli.main(["visualize", "-experiment_dir", str(experiment), "-load_model", "openai-mlstm",
                     "-text", "what a film"]) == 0
    assert sorted(p.name for p in (experiment / "mlstm" / "heatmaps").iterdir()) == ["what a film.html", "what a film.png"]

    # serve --model NAME: the service shows the recorded unit
    service = InferenceService.load("openai-mlstm")
    try:
        assert service.info()["unit"]["unit"] == UNIT and service.info()["model"]["name"] == "openai-mlstm"
    finally:
        service.close()

    # A second download is a no-op: nothing fetched.
    server.files.clear()
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 0
    assert "already installed" in capsys.readouterr().err


def test_a_wrong_byte_is_one_line_and_leaves_nothing(cache, test_release, server, capsys):
    damaged = bytearray(server.files["/model/7.npy"])
    damaged[-3] ^= 0x01
    server.files["/model/7.npy"] = bytes(damaged)
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 2
    expected = dict(test_release.files)["7.npy"]
    assert error_lines(capsys.readouterr().err) == [
        f"error: {server.url}/model/7.npy has git blob id {blob_id(bytes(damaged))}, expected {expected}: "
        "the file is damaged or not the published one; nothing was installed"
    ]
    assert files_under(cache) == []
    assert not (cache / "models" / "openai-mlstm").exists()
    with pytest.raises(UserError, match="no model 'openai-mlstm'"):
        load_model("openai-mlstm")


def test_a_download_killed_half_way_resumes_and_ends_identical(
    cache, test_release, server, release_files, tmp_path, monkeypatch, capsys
):
    files, _ = release_files
    server.cut = {"/model/13.npy"}  # 13.npy: the output weights, 12 x 256 floats
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 2
    (err,) = error_lines(capsys.readouterr().err)
    half = len(files["13.npy"]) // 2
    assert err == (
        f"error: download of {server.url}/model/13.npy was cut off after {half:,} of {len(files['13.npy']):,} bytes; "
        "run the command again to resume it"
    )
    staged = cache / "downloads" / "openai-mlstm"
    assert (staged / "13.npy.partial").read_bytes() == files["13.npy"][:half]
    assert sorted(p.name for p in staged.iterdir()) == sorted([f"{i}.npy" for i in range(13)] + ["13.npy.partial"])
    assert not (cache / "models" / "openai-mlstm").exists()

    served = list(server.ranges)
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 0
    # Only the missing bytes were asked for, and only of the cut file.
    assert server.ranges[len(served):] == [("/model/13.npy", f"bytes={half}-")]
    assert not (cache / "downloads").exists()
    resumed = (cache / "models" / "openai-mlstm" / "model.safetensors").read_bytes()

    clean_cache = tmp_path / "clean"
    monkeypatch.setenv(model_cache.CACHE_ENV, str(clean_cache))
    assert cli.main(["download", "openai-mlstm", "--mirror", server.url]) == 0
    assert (clean_cache / "models" / "openai-mlstm" / "model.safetensors").read_bytes() == resumed


def test_mirror_directory_in_the_repository_layout(cache, test_release, release_files):
    _, folder = release_files
    assert cli.main(["download", "openai-mlstm", "--mirror", str(folder.parent)]) == 0  # <mirror>/model/N.npy
    assert load_model("openai-mlstm").metadata["source_url"] == str(folder)


def test_mirror_without_the_files_is_one_line(cache, test_release, tmp_path, capsys):
    assert cli.main(["download", "openai-mlstm", "--mirror", str(tmp_path)]) == 2
    assert error_lines(capsys.readouterr().err) == [
        f"error: mirror {tmp_path} holds no 0.npy of openai-mlstm (looked in openai-mlstm/, model/ and itself)"
    ]
    assert files_under(cache) == []


# --------------------------------------------------------------------------- names


def test_an_unknown_name_lists_the_names_and_how_to_fetch_one(cache, release_files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    expected = (
        f"no model 'no-such-model': not a model directory, nor an installed model (no model is installed in "
        f"{cache / 'models'}); fetch one with `sentiment-discovery download openai-mlstm`, list them with "
        "`sentiment-discovery models`"
    )
    with pytest.raises(UserError) as raised:
        load_model("no-such-model")
    assert str(raised.value) == expected
    _, folder = release_files
    assert cli.main(["import-openai", str(folder), "--name", "mine"]) == 0
    with pytest.raises(UserError, match=r"nor an installed model \(installed: mine\); fetch one with"):
        load_model("no-such-model")
    capsys.readouterr()
    assert cli.main(["featurize", "--model", "other", "-input", "x.txt", "-output", "o.npy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model 'other': not a model directory, nor an installed model (installed: mine)")
    assert err.count("\n") == 1


def test_import_installs_by_name_and_a_directory_of_that_name_wins(cache, release_files, tmp_path, monkeypatch, capsys):
    _, folder = release_files
    assert cli.main(["import-openai", str(folder), "--name", "mine"]) == 0
    assert (cache / "models" / "mine" / "config.json").is_file()
    assert load_model("mine").config.rnn_size == H
    assert cli.main(["import-openai", str(folder), "--name", "mine"]) == 2
    assert "a model called mine is already installed" in capsys.readouterr().err
    assert cli.main(["import-openai", str(folder), "--name", "mine", "--overwrite"]) == 0
    assert cli.main(["import-openai", str(folder), "--name", "../escape"]) == 2
    assert "cannot name a model" in capsys.readouterr().err
    assert cli.main(["import-openai", str(folder)]) == 2
    assert capsys.readouterr().err == (
        "error: give DEST (a model directory to write) or --name NAME (install it in the model cache)\n"
    )
    # A model directory called "mine" where the command runs is that directory, not the installed model.
    monkeypatch.chdir(tmp_path)
    save_model(make_model(rnn_size=16), tmp_path / "mine")
    assert load_model("mine").config.rnn_size == 16


def test_cache_location(tmp_path, monkeypatch):
    monkeypatch.delenv(model_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(model_cache.sys, "platform", "linux")
    assert model_cache.models_root() == tmp_path / "xdg" / "sentiment-discovery" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_cache.cache_root() == tmp_path / "home" / ".cache" / "sentiment-discovery"
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert model_cache.models_root() == tmp_path / "mine" / "models"


def test_version(capsys):
    from sentiment_discovery import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"sentiment-discovery {__version__}\n"
