"""The live page in a real headless Chromium, against `sentiment-discovery serve` as a user starts it.

Skipped where no Chromium is installed; .ci/run installs Debian's and sets
$SENTIMENT_DISCOVERY_REQUIRE_BROWSER, so that there they fail instead. The screenshot is saved
in the test's directory, and also to $SENTIMENT_DISCOVERY_SCREENSHOT when set (that is how
docs/images/serve.png is made).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or shutil.which("chromium-browser"))
if os.environ.get("SENTIMENT_DISCOVERY_REQUIRE_BROWSER"):  # set by .ci/run: never skip there
    if CHROMIUM is None:
        raise RuntimeError("SENTIMENT_DISCOVERY_REQUIRE_BROWSER is set but no Chromium is installed")
    import playwright.sync_api  # noqa: F401 (an ImportError here, not a skip)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")

# The unit the shipped default shows (its sentiment_unit.json), read as the server reads it.
SHIPPED = json.loads((Path(__file__).resolve().parents[1] / "src" / "sentiment_discovery" / "default_model"
                      / "sentiment_unit.json").read_text())
SHIPPED_UNIT, SHIPPED_NEGATE = SHIPPED["unit"], SHIPPED["negate"]

# Chromium in a container, offline: no sandbox (no user namespaces), nothing fetched in the background,
# shared memory in /tmp (a container's /dev/shm may be tiny).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
SENTENCE = "I wanted to like it, but it was a boring, tedious mess."
START_LIMIT_S = 60  # with the shipped model it starts in a few seconds; the margin is for a busy machine


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server():
    """`sentiment-discovery serve --port 0` with the shipped model, and its URL."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "sentiment_discovery", "serve", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        printed = []  # notices (the precision chosen) may come before the address
        while (line := process.stderr.readline()) and not (found := re.search(r"on (http://127\.0\.0\.1:\d+/)", line)):
            printed.append(line)
        assert found, f"serve printed {''.join(printed)!r}"
        url = found.group(1)
        while True:  # listening already; answering once uvicorn runs
            try:
                with urllib.request.urlopen(url + "health", timeout=5) as response:
                    assert json.loads(response.read())["status"] == "ok"
                break
            except OSError:
                assert time.monotonic() - started < START_LIMIT_S and process.poll() is None
                time.sleep(0.1)
        yield url, time.monotonic() - started, line
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
def page():
    # Playwright gives each launch a fresh, temporary profile (its --user-data-dir).
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 560})
        finally:
            browser.close()


def classified_has_trace() -> bool:
    from sentiment_discovery.transfer import SentimentClassifier

    return callable(getattr(SentimentClassifier, "probability_trace", None))


def rgb(hex_colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)))


def test_serve_starts_in_seconds(server):
    url, seconds, line = server
    assert seconds < START_LIMIT_S
    assert f"the model shipped with the package (1024 units, unit {SHIPPED_UNIT} shown)" in line


def test_typing_shows_the_heatmap_and_the_probability(server, page, tmp_path):
    url, _, _ = server
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#about").inner_text().startswith(f"the model shipped with the package: 1024-unit mlstm, unit {SHIPPED_UNIT}")
    page.type("#text", SENTENCE, delay=15)  # keystrokes, as a person types: the page waits for a pause

    expected = post(url + "unit_values", {"text": SENTENCE})
    classified = post(url + "classify", {"texts": [SENTENCE]})
    cells = expected["characters"]
    page.wait_for_function("n => document.querySelectorAll('#heatmap span').length === n", arg=len(cells))
    page.wait_for_function("() => document.getElementById('probability').textContent !== '–'")
    spans = page.locator("#heatmap span")
    assert "".join(spans.all_inner_texts()) == "".join(cell["glyph"] for cell in cells)
    shown = spans.evaluate_all("spans => spans.map(s => [s.style.backgroundColor, s.title])")
    assert shown == [[rgb(c["background"]), f"{'+' if c['value'] >= 0 else '-'}{abs(c['value']):.4f}"] for c in cells]
    assert page.locator("#probability").inner_text() == f"{classified['probabilities'][0]:.3f}"
    assert page.locator("#label").inner_text() == classified["labels"][0]
    # The trace is shown where the classifier has one (tests below), hidden where it has not.
    assert page.locator("#trace-box").is_visible() is classified_has_trace()

    # Write on steered positive: streamed in, every written character's unit held at +1 (at -1 for a
    # unit that fires low on positive text, such as the shipped one may be).
    page.fill("#new-bytes", "160")
    page.click("#write-positive")
    page.wait_for_selector("#generated[data-done=true]", timeout=60_000)
    written = page.locator("#generated span.generated")
    assert written.count() > 100
    assert set(written.evaluate_all("spans => spans.map(s => s.title)")) == {"-1.0000" if SHIPPED_NEGATE else "+1.0000"}
    assert page.locator("#status").inner_text() == ""

    screenshot = page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SENTIMENT_DISCOVERY_SCREENSHOT"):
        Path(os.environ["SENTIMENT_DISCOVERY_SCREENSHOT"]).write_bytes(screenshot)


def test_a_bad_request_shows_its_error_on_the_page(server, page):
    url, _, _ = server
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#unit", "99999")
    page.fill("#text", "hello")
    page.wait_for_function("() => document.getElementById('status').textContent !== ''")
    assert page.locator("#status").inner_text() == "unit 99999 does not exist: the model has 1024 units (0..1023)"


@pytest.fixture
def tracing_server(tmp_path):
    """A server in this process whose classifier has a per-character trace (tests/test_serve.py's stand-in)."""
    import uvicorn

    from sentiment_discovery.serve.app import create_app
    from test_serve import fit_tiny, tracing_service

    service = tracing_service(fit_tiny(tmp_path))
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
    listening = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(30)
        listening.close()


def test_the_probability_trace_is_drawn_under_the_text(tracing_server, page):
    url = tracing_server
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#trace-box").is_visible()
    page.fill("#text", "great fun")
    expected = post(url + "classify", {"texts": ["great fun"], "trace": True})["traces"][0]["characters"]
    page.wait_for_function("n => document.querySelectorAll('#trace span').length === n", arg=len(expected))
    titles = page.locator("#trace span").evaluate_all("spans => spans.map(s => s.title)")
    assert titles == [f"P(positive) {cell['probability']:.4f}" for cell in expected]
    colours = page.locator("#trace span").evaluate_all("spans => spans.map(s => s.style.backgroundColor)")
    assert colours == [rgb(cell["background"]) for cell in expected]
