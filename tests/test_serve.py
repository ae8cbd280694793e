"""The serve API through FastAPI's test client: every endpoint against the package's own
computations, every kind of bad request, and concurrent callers batched together."""

import dataclasses
import json
import re
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from sentiment_discovery import cli, defaults, load_model, save_model, transfer, visualize  # noqa: E402
from sentiment_discovery.features import encode_texts  # noqa: E402
from sentiment_discovery.serve.app import create_app  # noqa: E402
from sentiment_discovery.serve.service import (  # noqa: E402
    InferenceService,
    Limits,
    ShownUnit,
    _complete_prefix_length,
)

from conftest import labelled, make_model  # noqa: E402

REVIEWS = ["I loved this film, it was wonderful.", "A boring, tedious mess.", "Caf\u00e9 au lait \u2615 was fine."]


@pytest.fixture(scope="module")
def shipped():
    # fp32 products, as the tests' "auto" (conftest): a module fixture is made before that patch applies.
    service = InferenceService.load(featurize_precision="fp32")
    with TestClient(create_app(service)) as client:
        yield service, client


@pytest.fixture(scope="module")
def shipped_classifier():
    return transfer.SentimentClassifier.load()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return fit_tiny(tmp_path_factory.mktemp("tiny"))


def fit_tiny(root):
    """A 16-unit model (``root/model``) and an L1 classifier fitted on its mean-pooled features (``root/classifier``)."""
    model = make_model()
    save_model(model, root / "model")
    identity = transfer.ModelIdentity.of(model, root / "model", pooling="mean")
    rows = labelled(40)
    texts, labels = [text for _, text in rows], np.array([label for label, _ in rows])
    features = model.featurize(texts, pooling="mean")
    fit = transfer.fit_sentiment_classifier(
        features[:30], labels[:30], features[30:], labels[30:], identity, standardize=True, progress=False
    )
    fit.classifier.save(root / "classifier")
    return root


class TracingClassifier(transfer.SentimentClassifier):
    """A classifier with ``probability_trace``: P(positive) of every prefix of the prepared text."""

    def probability_trace(self, text: str) -> np.ndarray:
        data = encode_texts(self.language_model, [text], preprocess=self.model.preprocess)[0]
        return self.predict_proba([data[: end + 1] for end in range(len(data))])[:, 1]


class UntracedClassifier(transfer.SentimentClassifier):
    """A classifier without ``probability_trace``, whether or not the real one has it."""

    probability_trace = None


def tracing_service(tiny, kind: type = TracingClassifier, **options) -> InferenceService:
    loaded = transfer.SentimentClassifier.load(tiny / "classifier")
    fields = {field.name: getattr(loaded, field.name) for field in dataclasses.fields(loaded) if field.init}
    classifier = kind(**fields)
    classifier.attach_model(tiny / "model")
    return InferenceService(classifier.language_model, classifier, unit=ShownUnit(3, 0), **options)


# ---- every endpoint against the package's own computations


def test_info_names_the_shipped_model_classifier_and_unit(shipped):
    _, client = shipped
    assert client.get("/health").json() == {"status": "ok", "queued": 0}
    info = client.get("/info").json()
    unit = defaults.sentiment_unit()
    assert info["unit"] == {"unit": unit.unit, "layer": unit.layer, "sign": unit.sign}
    saved = json.loads((defaults.classifier_directory() / "classifier.json").read_text())
    assert info["model"]["weights_sha256"] == saved["model"]["weights_sha256"]
    assert info["model"]["rnn_size"] == saved["model"]["rnn_size"]
    classifier = info["classifier"]
    assert (classifier["pooling"], classifier["precision"]) == (saved["model"]["pooling"], saved["model"]["precision"])
    # The recorded precision is a record; classification runs in this machine's "auto" choice.
    assert info["precision"] == {"classify": "fp32", "featurize": "fp32", "unit_values": "fp32", "generate": "fp32"}
    assert classifier["top_units"] == saved["top_units"]
    assert classifier["probability_trace"] is callable(getattr(transfer.SentimentClassifier, "probability_trace", None))
    assert info["limits"]["texts"] == Limits().texts and len(info["colour_scale"]) == 11
    assert info["colour_scale"][0] == "#a50026" and info["colour_scale"][-1] == "#006837"  # RdYlGn's ends


def test_classify_gives_the_classifiers_probabilities_and_labels(shipped, shipped_classifier, capsys):
    _, client = shipped
    answer = client.post("/classify", json={"texts": REVIEWS}).json()
    expected = shipped_classifier.predict_proba(REVIEWS)[:, 1]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-6)
    labels = shipped_classifier.predict(REVIEWS)
    assert answer["labels"] == [("negative", "positive")[label] for label in labels]
    assert set(answer) == {"probabilities", "labels"}
    # The same lines as the CLI prints for the same texts.
    assert cli.main(["classify", "--text", REVIEWS[0], "--text", REVIEWS[1]]) == 0
    printed = [line.split("\t")[:2] for line in capsys.readouterr().out.splitlines()]
    pair = client.post("/classify", json={"texts": REVIEWS[:2]}).json()
    assert printed == [[f"{p:.4f}", label] for p, label in zip(pair["probabilities"], pair["labels"])]


@pytest.mark.parametrize("options", [{}, {"pooling": "mean"}, {"preprocess": False, "precision": "bf16"}])
def test_featurize_gives_the_models_features(shipped, options):
    service, client = shipped
    answer = client.post("/featurize", json={"texts": REVIEWS, **options}).json()
    expected = service.model.featurize(
        REVIEWS, pooling=options.get("pooling", "final"), preprocess=options.get("preprocess", True),
        precision=options.get("precision", "fp32"),
    )
    assert answer["shape"] == [3, 1024]
    np.testing.assert_allclose(answer["features"], expected, rtol=0, atol=1e-6)


def test_unit_values_are_the_visualize_trace(shipped):
    service, client = shipped
    text = "Not bad at all, caf\u00e9 \u2615."
    answer = client.post("/unit_values", json={"text": text}).json()
    unit = defaults.sentiment_unit()
    trace = visualize.unit_values(service.model, text, unit.unit, layer=unit.layer)
    assert (answer["unit"], answer["layer"], answer["negate"], answer["bytes"]) == (unit.unit, 0, unit.negate, len(trace.data))
    np.testing.assert_allclose(answer["values"], trace.values, rtol=0, atol=1e-6)
    cells = visualize.character_cells(trace, unit.negate)  # coloured as visualize draws the unit
    assert [cell["character"] for cell in answer["characters"]] == [cell.character for cell in cells]
    assert "".join(cell["character"] for cell in answer["characters"]) == trace.text
    assert [cell["background"] for cell in answer["characters"]] == [cell.background for cell in cells]
    # Another unit, negated: the colours of the negated values.
    other = client.post("/unit_values", json={"text": text, "unit": 5, "negate": True}).json()
    trace = visualize.unit_values(service.model, text, 5)
    assert [c["background"] for c in other["characters"]] == [c.background for c in visualize.character_cells(trace, True)]


def read_stream(response) -> list[dict]:
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.parametrize("hold", [1.0, -1.0, None])
def test_generate_streams_the_steered_generation(shipped, hold):
    service, client = shipped
    request = {"prompt": "This movie was", "new_bytes": 29, "hold": hold, "temperature": 0.4, "seed": 3}
    events = read_stream(client.post("/generate", json=request))
    assert events[0]["event"] == "prompt" and events[-1]["event"] == "done"
    assert [event["event"] for event in events[1:-1]] == ["text"] * 4  # 8 + 8 + 8 + 5 bytes
    unit = defaults.sentiment_unit()
    # hold +1 steers towards positive: a unit that fires low on positive text is held at -1 (as visualize -overwrite).
    held = None if hold is None else (-hold if unit.negate else hold)
    expected = visualize.generate(
        service.model, "This movie was", unit.unit, 29, layer=unit.layer, temperature=0.4, overwrite=held, seed=3
    )
    written = [cell for event in events[1:-1] for cell in event["characters"]]
    assert "".join(cell["character"] for cell in events[0]["characters"] + written) == expected.text
    assert events[-1]["text"] == expected.generated_text and events[-1]["bytes"] == 29
    assert all(cell["generated"] for cell in written) and not any(c["generated"] for c in events[0]["characters"])
    values = [cell["value"] for cell in written]
    np.testing.assert_allclose(values, expected.character_values()[-len(written):], rtol=0, atol=1e-6)
    if hold is not None:
        assert values == [held] * len(written)  # the raw unit value, held


def test_generate_holds_a_negative_unit_the_other_way(tiny):
    model_only = InferenceService.load(model=str(tiny / "model"), unit=2)
    with TestClient(create_app(model_only)) as client:
        events = read_stream(client.post("/generate", json={"prompt": "ok", "new_bytes": 5, "hold": 1, "negate": True}))
        assert events[0]["hold"] == -1.0
        assert {cell["value"] for event in events[1:-1] for cell in event["characters"]} == {-1.0}
        # Shown negated: -1 is drawn as +1, green.
        assert {cell["background"] for event in events[1:-1] for cell in event["characters"]} == {"#006837"}


def test_characters_are_streamed_whole():
    assert _complete_prefix_length(b"ab\xe2\x82") == 2  # a euro sign still coming
    assert _complete_prefix_length(b"ab\xe2\x82\xac") == 5
    assert _complete_prefix_length(b"a\xff") == 2  # an invalid byte is a character of its own
    assert _complete_prefix_length(b"") == 0


def test_a_model_without_classifier_serves_all_but_classify(tiny):
    service = InferenceService.load(model=str(tiny / "model"), unit=3)
    with TestClient(create_app(service)) as client:
        info = client.get("/info").json()
        assert info["classifier"] is None and info["unit"] == {"unit": 3, "layer": 0, "sign": 1}
        answer = client.post("/classify", json={"texts": ["good"]})
        assert answer.status_code == 422
        assert answer.json() == {"error": "no classifier is loaded; start the server with --classifier DIR to classify"}
        assert client.post("/unit_values", json={"text": "good"}).status_code == 200


def test_a_model_that_records_no_unit_needs_one(tiny):
    with pytest.raises(transfer.UserError, match=r"records no sentiment unit and no classifier was given; pass --unit N"):
        InferenceService.load(model=str(tiny / "model"))


def test_a_classifier_serves_with_its_model_and_top_unit(tiny):
    service = InferenceService.load(classifier=str(tiny / "classifier"))
    fitted = transfer.SentimentClassifier.load(tiny / "classifier")
    assert (service.unit.unit, service.unit.sign) == (fitted.top_units[0], fitted.top_unit_signs[0])
    texts = [text for _, text in labelled(6)]
    with TestClient(create_app(service)) as client:
        answer = client.post("/classify", json={"texts": texts}).json()
    np.testing.assert_allclose(answer["probabilities"], fitted.predict_proba(texts)[:, 1], rtol=0, atol=1e-6)


def test_the_probability_trace_where_the_classifier_has_one(tiny):
    service = tracing_service(tiny)
    text = "great fun \u2615"
    with TestClient(create_app(service)) as client:
        assert client.get("/info").json()["classifier"]["probability_trace"] is True
        answer = client.post("/classify", json={"texts": [text, "dull"], "trace": True}).json()
    expected = service.classifier.probability_trace(text)
    trace = answer["traces"][0]
    np.testing.assert_allclose(trace["probabilities"], expected, rtol=0, atol=1e-6)
    data = encode_texts(service.model, [text])[0]
    assert len(trace["probabilities"]) == len(data)
    characters = visualize.utf8_characters(data)
    assert [cell["character"] for cell in trace["characters"]] == [character for character, _ in characters]
    assert [cell["probability"] for cell in trace["characters"]] == pytest.approx(
        [float(expected[last]) for _, last in characters], abs=1e-6
    )
    # The whole text's probability is the trace's last value.
    assert answer["probabilities"][0] == pytest.approx(float(expected[-1]), abs=1e-6)


def test_no_trace_from_a_classifier_without_one(tiny):
    with TestClient(create_app(tracing_service(tiny, UntracedClassifier))) as client:
        assert client.get("/info").json()["classifier"]["probability_trace"] is False
        answer = client.post("/classify", json={"texts": ["good"], "trace": True})
        assert answer.status_code == 422
        assert answer.json()["error"] == "this classifier has no per-character probability trace; ask without trace"
        assert set(client.post("/classify", json={"texts": ["good"]}).json()) == {"probabilities", "labels"}


# ---- bad requests: one clear error, and the server goes on serving

BAD_REQUESTS = [
    ("/classify", {"texts": []}, 422, "texts is empty; send at least one text"),
    ("/classify", {"texts": "one text"}, 422, "texts: Input should be a valid list"),
    ("/classify", {"texts": [1, 2]}, 422, "texts.0: Input should be a valid string"),
    ("/classify", {"text": ["a"]}, 422, "texts: Field required"),
    ("/classify", {"texts": ["a"], "trace": "yes"}, 422, "trace: Input should be a valid boolean"),
    ("/classify", {"texts": ["a"], "extra": 1}, 422, "extra: Extra inputs are not permitted"),
    ("/classify", {"texts": ["a" * 10_001]}, 413, "text 0 has 10001 characters; this server takes at most 10000"),
    ("/classify", {"texts": ["a"] * 257}, 413, "257 texts in one request; this server takes at most 256"),
    ("/featurize", {"texts": ["a"], "pooling": "median"}, 422, "pooling must be one of final, mean, max, concat, not 'median'"),
    ("/featurize", {"texts": ["a"], "precision": "fp8"}, 422, "precision must be one of auto, fp32, bf16, fp16, not 'fp8'"),
    ("/featurize", {"texts": ["a"], "layer": 1}, 422,
     "layer 1 does not exist: the model has 1 layer(s) (0..0, or -1 for the top)"),
    ("/featurize", {"texts": [""], "preprocess": False}, 422,
     "text 0 is empty; remove it or turn preprocessing on (it pads every text)"),
    ("/featurize", {"texts": ["b"] * 300}, 413, "300 texts in one request; this server takes at most 256"),
    ("/unit_values", {"text": "a", "unit": 1024}, 422, "unit 1024 does not exist: the model has 1024 units (0..1023)"),
    ("/unit_values", {"text": "a", "unit": "5"}, 422, "unit: Input should be a valid integer"),
    ("/unit_values", {}, 422, "text: Field required"),
    ("/unit_values", {"text": "\u00e9" * 10_001}, 413, "the text has 10001 characters; this server takes at most 10000"),
    ("/generate", {"prompt": "a", "new_bytes": 2001}, 413, "new_bytes 2001; this server writes at most 2000"),
    ("/generate", {"prompt": "a", "new_bytes": 0}, 422, "new_bytes must be at least 1, not 0"),
    ("/generate", {"prompt": "a", "temperature": -1}, 422, "temperature must be 0 (greedy) or more, not -1.0"),
    ("/generate", {"prompt": "a", "seed": -1}, 422, "seed: Input should be greater than or equal to 0"),
    ("/generate", {"prompt": "a", "hold": "up"}, 422, "hold: Input should be a valid number"),
    ("/generate", {"prompt": "a", "unit": -1}, 422, "unit -1 does not exist: the model has 1024 units (0..1023)"),
]


@pytest.mark.parametrize("path, body, status, error", BAD_REQUESTS)
def test_bad_requests_get_one_clear_error(shipped, path, body, status, error):
    _, client = shipped
    answer = client.post(path, json=body)
    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_bad_bodies_and_methods(shipped):
    _, client = shipped
    broken = client.post("/classify", content=b'{"texts": [', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"].startswith("the request body is not valid JSON")
    nan = client.post("/generate", content=b'{"prompt": "a", "hold": NaN}', headers={"content-type": "application/json"})
    assert nan.status_code == 422 and nan.json()["error"] == "hold: Input should be a finite number"
    assert client.get("/classify").status_code == 405
    assert client.get("/nothing").json() == {"error": "Not Found"}
    assert client.post("/classify", json={"texts": ["still serving"]}).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_bodies_over_the_limit_are_refused_before_they_are_read(tiny):
    service = InferenceService.load(model=str(tiny / "model"), unit=0, limits=Limits(text_chars=10, texts=2))
    assert service.limits.body_bytes == 2 * 10 * 6 + 65_536
    with TestClient(create_app(service)) as client:
        body = json.dumps({"texts": ["x" * 70_000]}).encode()
        declared = client.post("/featurize", content=body, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        assert declared.json() == {"error": f"the request body has {len(body)} bytes; this server takes at most 65656"}
        # Sent in chunks, without a declared length: counted as it arrives.
        chunked = client.post("/featurize", content=iter([body[:40_000], body[40_000:]]),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert chunked.json() == {"error": "the request body is over 65656 bytes, the most this server takes"}
        assert client.post("/featurize", json={"texts": ["ok"]}).status_code == 200


def test_a_fault_is_a_500_and_the_server_goes_on(tiny):
    service = tracing_service(tiny)

    def broken(text):
        raise RuntimeError("trace broke")

    service.classifier.probability_trace = broken
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        answer = client.post("/classify", json={"texts": ["good"], "trace": True})
        assert answer.status_code == 500 and answer.json() == {"error": "internal error: RuntimeError: trace broke"}
        assert client.post("/classify", json={"texts": ["good"]}).status_code == 200


# ---- concurrent callers


def test_waiting_requests_are_merged_into_one_batch_with_the_same_results(tiny):
    service = tracing_service(tiny)
    texts = [text for _, text in labelled(12)]
    alone = service.classifier.predict_proba(texts)[:, 1]
    with TestClient(create_app(service)) as client:
        # Hold the worker while six callers queue their requests, then let it go.
        release = threading.Event()
        held = service.call(lambda: release.wait(60))
        answers = [None] * 6

        def ask(index: int) -> None:
            answers[index] = client.post("/classify", json={"texts": texts[2 * index : 2 * index + 2]}).json()

        callers = [threading.Thread(target=ask, args=(index,)) for index in range(6)]
        try:
            for caller in callers:
                caller.start()
            deadline = time.monotonic() + 30
            while service.queued() < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert held.running() and service.queued() == 6
        finally:
            release.set()
            for caller in callers:
                caller.join(60)
        merged = [p for answer in answers for p in answer["probabilities"]]
        np.testing.assert_allclose(merged, alone, rtol=0, atol=1e-6)
        assert vars(service.stats) == {"batches": 1, "requests": 6, "texts": 12, "largest_batch_requests": 6}
        # Requests with other feature options are not merged with these.
        assert client.get("/info").json()["batching"]["batches"] == 1


def test_concurrent_clients_of_every_endpoint(shipped, shipped_classifier):
    service, client = shipped
    results, errors = {}, []

    def work(index: int) -> None:
        try:
            text = REVIEWS[index % 3]
            if index % 4 == 0:
                results[index] = client.post("/classify", json={"texts": [text]}).json()["probabilities"][0]
            elif index % 4 == 1:
                results[index] = client.post("/unit_values", json={"text": text}).json()["bytes"]
            elif index % 4 == 2:
                events = read_stream(client.post("/generate", json={"prompt": text, "new_bytes": 12, "temperature": 0}))
                results[index] = events[-1]["text"]
            else:
                results[index] = client.post("/featurize", json={"texts": [text]}).json()["shape"]
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    expected = shipped_classifier.predict_proba(REVIEWS)[:, 1]
    for index, value in results.items():
        text = REVIEWS[index % 3]
        if index % 4 == 0:
            # Merged with other requests into batches of another size: bf16 products may round differently.
            assert value == pytest.approx(expected[index % 3], abs=1e-3)
        elif index % 4 == 1:
            assert value == len(encode_texts(service.model, [text])[0])
        elif index % 4 == 2:
            unit = defaults.sentiment_unit()
            assert value == visualize.generate(service.model, text, unit.unit, 12, layer=unit.layer).generated_text
        else:
            assert value == [1, 1024]
    assert len(results) == 16


# ---- the command


def test_serve_refuses_a_port_in_use(capsys):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: cannot listen on 127.0.0.1:{port} (") and error.endswith(
        "); pass another --port or --host"
    )


def test_the_page_is_self_contained(shipped):
    _, client = shipped
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Nothing fetched from elsewhere: every request the page makes is to its own server.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)
    assert set(re.findall(r"""fetch\("(/[a-z_]*)""", page.text)) == {"/info", "/generate"}
    assert set(re.findall(r"""postJSON\("(/[a-z_]*)""", page.text)) == {"/unit_values", "/classify"}


def test_serve_without_the_serve_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: serve needs the serve extra (uvicorn is missing): pip install 'sentiment-discovery[serve]'"
    )


def test_serve_checks_its_limits(capsys):
    assert cli.main(["serve", "--max-texts", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --max-texts must be at least 1, not 0"


# ---- issue 26: a hold past what a cell state can take, blank texts, Ctrl-C


@pytest.mark.parametrize("hold", [1e308, -1e39, 2e6])
def test_a_hold_out_of_range_is_a_422_before_the_stream(tiny, hold):
    with TestClient(create_app(tracing_service(tiny))) as client:
        answer = client.post("/generate", json={"prompt": "It was", "hold": hold, "new_bytes": 8})
        assert answer.status_code == 422
        assert answer.json()["error"] == (
            f"hold must be in [-1e+06, 1e+06] (a cell state: +1 or -1 steer), not {hold:g}"
        )
        assert client.post("/generate", json={"prompt": "It was", "hold": 1e6, "new_bytes": 8}).status_code == 200


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_classify_refuses_a_blank_text_as_the_command_does(tiny, text):
    with TestClient(create_app(tracing_service(tiny))) as client:
        answer = client.post("/classify", json={"texts": ["good", text]})
        assert (answer.status_code, answer.json()["error"]) == (422, "text 1 is empty; there is nothing to label")
        assert client.post("/classify", json={"texts": ["good"]}).status_code == 200


@pytest.mark.parametrize("background", [False, True])
def test_ctrl_c_stops_serve_with_one_line_and_status_130(tiny, background):
    """Also when started as a shell's background job (``serve &``), which starts with SIGINT ignored:
    uvicorn then stopped on the signal and the command exited 0."""
    import os
    import signal
    import subprocess
    import urllib.request

    command = [sys.executable, "-m", "sentiment_discovery", "serve", "--port", "0", "--model",
               str(tiny / "model"), "--classifier", str(tiny / "classifier"), "--precision", "fp32"]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              preexec_fn=ignore)
    try:
        started = server.stderr.readline()
        while started.startswith("notice: "):  # on a CPU without native bf16, the precision chosen
            started = server.stderr.readline()
        assert started.startswith("serving model ("), started
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", started).group(1))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # uvicorn takes the signals over once it serves
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        server.send_signal(signal.SIGINT)
        _, rest = server.communicate(timeout=60)
    finally:
        server.kill()
    assert "Traceback" not in rest
    assert (server.returncode, rest) == (130, "interrupted\n")
