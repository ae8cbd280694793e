import html.parser
import re

import numpy as np
import pytest
import torch

from sentiment_discovery import UserError, cli, preprocess_text, save_model
from sentiment_discovery.model import mlstm_cell_step
from sentiment_discovery.visualize import (
    HeatmapGeometry,
    Trace,
    generate,
    heatmap_file_stem,
    prompt_bytes,
    render_html,
    render_png,
    unit_values,
    utf8_characters,
    value_colours,
)

from conftest import make_model

RED, GREEN, WHITE = (165, 0, 38), (0, 104, 55), (255, 255, 255)  # ends of RdYlGn, background


def test_unit_values_equal_a_manual_step_by_step_run():
    model = make_model(weight_norm=True)
    text = "Not bad at all. " * 20  # longer than one chunk of the batched run
    trace = unit_values(model, text, unit=3)
    assert trace.data == preprocess_text(text, model.text_options)
    weights = model.layers[0].effective_weights()
    hidden = cell = torch.zeros(1, 16)
    expected = []
    with torch.no_grad():
        for byte in trace.data:
            hidden, cell = mlstm_cell_step(model.embedding.weight[byte][None], hidden, cell, weights)
            expected.append(cell[0, 3].item())
    assert trace.values.shape == (len(trace.data),)
    np.testing.assert_allclose(trace.values, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rnn_type", ["mlstm", "lstm"])
def test_unit_values_of_each_layer(rnn_type):
    model = make_model(rnn_type=rnn_type, layers=2)
    data = b"Caf\xc3\xa9 ok"
    state, expected = None, {0: [], 1: []}
    with torch.no_grad():
        for byte in data:
            state = model.encode(torch.tensor([[byte]]), state).state
            for layer in expected:
                expected[layer].append(state.cell[layer][0, 7].item())
    np.testing.assert_allclose(unit_values(model, data, 7, layer=0).values, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(unit_values(model, data, 7).values, expected[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match=r"^-layer 2 does not exist: the model has 2 layer\(s\)"):
        unit_values(model, data, 7, layer=2)
    with pytest.raises(UserError, match=r"^-neuron 16 does not exist: the model has 16 units \(0..15\)$"):
        unit_values(model, data, 16)


def test_prompt_keeps_front_padding_but_not_end_padding(small_model):
    assert prompt_bytes(small_model, "  Sean Connery is ", generate=True) == b"\n Sean Connery is"
    assert prompt_bytes(small_model, "Sean Connery is") == b"\n Sean Connery is "
    trace = generate(small_model, "Sean Connery is", unit=0, new_bytes=0)
    assert trace.data == b"\n Sean Connery is" and trace.prompt_length == len(trace.data)
    with pytest.raises(UserError, match="the text is empty"):
        unit_values(small_model, b"", 0)


@pytest.mark.parametrize("weight_norm", [False, True])
def test_greedy_generation_is_deterministic_and_takes_the_likeliest_byte(weight_norm):
    small_model = make_model(weight_norm=weight_norm)
    first = generate(small_model, "The meaning of life is", unit=2, new_bytes=24, temperature=0)
    again = generate(small_model, "The meaning of life is", unit=2, new_bytes=24, temperature=0, seed=5)
    assert again.data == first.data
    np.testing.assert_array_equal(again.values, first.values)
    assert len(first.data) == first.prompt_length + 24
    with torch.no_grad():
        logits, _ = small_model(torch.tensor([list(first.data)]))
    predicted = logits[0, first.prompt_length - 1 : -1].argmax(-1).tolist()
    assert predicted == list(first.data[first.prompt_length :])
    # Without overwrite, the recorded values are those of reading the whole text afresh.
    reread = unit_values(small_model, first.data, 2)
    np.testing.assert_allclose(first.values, reread.values, rtol=1e-5, atol=1e-6)
    assert "effective_weights" not in vars(small_model.layers[0])  # the per-generation cache is gone


def test_sampling_is_reproducible_with_a_seed(small_model):
    def sample(seed):
        return generate(small_model, "Great", unit=0, new_bytes=40, temperature=1.0, seed=seed).data

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_overwrite_holds_the_unit_and_steers_the_output(small_model):
    unit = 4
    with torch.no_grad():
        # Make the unit decide between 'a' (positive) and 'b' (negative).
        small_model.output.weight[:, unit] = 0.0
        small_model.output.weight[ord("a"), unit] = 50.0
        small_model.output.weight[ord("b"), unit] = -50.0
    free = generate(small_model, "It was", unit, new_bytes=12)
    for value, byte in ((2.0, b"a"), (-2.0, b"b")):
        held = generate(small_model, "It was", unit, new_bytes=12, overwrite=value)
        assert held.data[held.prompt_length :] == byte * 12
        # Held from the step that reads the prompt's last byte, which predicts the first new one.
        assert (held.values[held.prompt_length - 1 :] == np.float32(value)).all()
        np.testing.assert_array_equal(held.values[: held.prompt_length - 1], free.values[: free.prompt_length - 1])
    assert not np.isin(free.values, [2.0, -2.0]).any()


def test_characters_keep_invalid_utf8_visible():
    data = b"a\xe2\x82\xacb\xff\xe2\x82"  # a, euro sign, b, a stray byte, a cut-off character
    assert utf8_characters(data) == [("a", 0), ("\u20ac", 3), ("b", 4), ("\ufffd", 5), ("\ufffd", 6), ("\ufffd", 7)]
    trace = Trace(data, np.arange(8) / 10, prompt_length=2)
    assert trace.text == "a\u20acb\ufffd\ufffd\ufffd"
    assert trace.generated_text == "\u20acb\ufffd\ufffd\ufffd"
    np.testing.assert_allclose(trace.character_values(), [0.0, 0.3, 0.4, 0.5, 0.6, 0.7], rtol=1e-6)


def test_file_name_rule():
    assert heatmap_file_stem("\n Hello/world: a*b?  <ok>|\"x\"\\ \n") == "Hello_world_ a_b_ _ok___x__"
    assert heatmap_file_stem("x" * 150) == "x" * 100
    assert heatmap_file_stem("\n " + "ab " * 60) == ("ab " * 34)[:100].rstrip()
    assert heatmap_file_stem("..a\ufffd\x01b. .") == "a__b"  # no hidden files, no trailing dots
    assert heatmap_file_stem(" \n ") == "heatmap"
    assert heatmap_file_stem("con") == "con_"
    assert len(heatmap_file_stem("\u4e2d" * 100).encode()) <= 200


# ' ', 'A', newline | ' ', euro sign (3 bytes), 'B': the euro sign takes its last byte's value.
HEATMAP_DATA = b" A\n \xe2\x82\xacB"
HEATMAP_VALUES = [-1.0, 0.3, 0.0, 1.0, 9.0, 9.0, -0.2, 0.6]
HEATMAP_CELLS = [(0, 0, -1.0), (0, 1, 0.3), (0, 2, 0.0), (1, 0, 1.0), (1, 1, -0.2), (1, 2, 0.6)]


def _pixel(image, x, y):
    return tuple(int(round(channel * 255)) for channel in image[y, x, :3])


def _assert_colour(actual, expected):
    assert max(abs(a - int(e)) for a, e in zip(actual, expected)) <= 1, (actual, expected)


@pytest.mark.parametrize("negate", [False, True])
def test_png_has_one_coloured_cell_per_character(tmp_path, negate):
    from matplotlib.image import imread

    geometry = HeatmapGeometry(columns=5)
    path = render_png(Trace(HEATMAP_DATA, HEATMAP_VALUES, 3), tmp_path / "h.png", negate=negate, geometry=geometry)
    image = imread(path)
    width, height = geometry.image_size(rows=2)
    assert image.shape[:2] == (height, width)
    # Two known cells, read at their centres (both are spaces): red at -1 and green at +1, or negated.
    for row, expected in ((0, GREEN if negate else RED), (1, RED if negate else GREEN)):
        left, top, right, bottom = geometry.cell_box(row, 0)
        _assert_colour(_pixel(image, (left + right) // 2, (top + bottom) // 2), expected)
    # Every character's cell is coloured by its value (read beside the glyph); the rest is background.
    colours = value_colours(np.array([value for _, _, value in HEATMAP_CELLS]), negate)
    for (row, column, _), colour in zip(HEATMAP_CELLS, colours):
        left, top, _, _ = geometry.cell_box(row, column)
        _assert_colour(_pixel(image, left + 1, top + 1), colour)
    for row, column in ((0, 3), (0, 4), (1, 3), (1, 4)):
        left, top, _, _ = geometry.cell_box(row, column)
        _assert_colour(_pixel(image, left + 1, top + 1), WHITE)


class _Spans(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.spans, self.open = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self.open = dict(attrs) | {"text": ""}
            self.spans.append(self.open)

    def handle_endtag(self, tag):
        self.open = None

    def handle_data(self, data):
        if self.open is not None:
            self.open["text"] += data


@pytest.mark.parametrize("negate", [False, True])
def test_html_has_one_span_per_character_with_its_colour(tmp_path, negate):
    data = HEATMAP_DATA + b"<&"
    trace = Trace(data, HEATMAP_VALUES + [0.5, -0.5], prompt_length=4)
    page = render_html(trace, tmp_path / "h.html", negate=negate, caption="unit 3").read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=|https?:|<script|<link", page)  # self-contained
    parser = _Spans()
    parser.feed(page)
    assert [span["text"] for span in parser.spans] == [" ", "A", "\u21b5", " ", "\u20ac", "B", "<", "&"]
    values = [-1.0, 0.3, 0.0, 1.0, -0.2, 0.6, 0.5, -0.5]
    assert [span["title"] for span in parser.spans] == [f"{v:+.4f}" for v in values]
    expected = ["#{:02x}{:02x}{:02x}".format(*c) for c in value_colours(np.array(values), negate)]
    assert [re.search(r"background:(#[0-9a-f]{6})", span["style"]).group(1) for span in parser.spans] == expected
    assert expected[0] == ("#006837" if negate else "#a50026")
    assert [span.get("class") for span in parser.spans] == [None] * 4 + ["generated"] * 4
    assert page.count("\n<span") == 1  # the newline starts the second row


def _experiment(tmp_path, metadata):
    model = make_model()
    model.metadata = metadata
    save_model(model, tmp_path / "mlstm" / "model" / "e0")
    return ["visualize", "-experiment_dir", str(tmp_path), "-load_model", "e0.pt"]


def test_command_writes_png_and_html_named_after_the_text(tmp_path, capsys):
    base = _experiment(tmp_path, {"sentiment_unit": 3})
    text = "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is one of the all time greats I have been"
    assert cli.main(base + ["-text", text]) == 0
    heatmaps = tmp_path / "mlstm" / "heatmaps"
    stem = "25 August 2003 League of Extraordinary Gentlemen_ Sean Connery is one of the all time greats I have"
    assert sorted(p.name for p in heatmaps.iterdir()) == [f"{stem}.html", f"{stem}.png"]
    expected = unit_values(make_model(), text, 3)
    page = (heatmaps / f"{stem}.html").read_text(encoding="utf-8")
    assert re.findall(r'title="([^"]+)"', page) == [f"{v:+.4f}" for v in expected.values]
    assert f"wrote {heatmaps / stem}.png" in capsys.readouterr().err


def test_command_generates_steered_text(tmp_path, capsys):
    base = _experiment(tmp_path, {})
    args = base + ["-neuron", "5", "-text", "It was", "-generate", "-seq_length", "30", "-temperature", "0"]
    assert cli.main(args + ["-negate", "-overwrite", "+1"]) == 0
    printed = capsys.readouterr().out
    held = generate(make_model(), "It was", 5, 30 - len(b"\n It was"), overwrite=-1.0)
    assert printed.startswith("It was")
    page = (tmp_path / "mlstm" / "heatmaps" / f"{heatmap_file_stem(held.text)}.html").read_text(encoding="utf-8")
    titles = re.findall(r'title="([^"]+)"', page)
    assert len(titles) == len(held.characters)
    # -negate flips the held value: the unit reads back -1 on every generated character.
    assert titles[len(b"\n It wa") :] == ["-1.0000"] * (len(titles) - len(b"\n It wa"))
    assert cli.main(args + ["-overwrite", "-1"]) == 0
    assert cli.build_parser().parse_args(args + ["-overwrite", "-1"]).overwrite == -1.0
    assert cli.build_parser().parse_args(args + ["--overwrite", "+1"]).overwrite == 1.0


def test_command_errors(tmp_path, capsys):
    base = _experiment(tmp_path, {})
    assert cli.main(base) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no -neuron given and model e0.pt has no sentiment_unit in its metadata; "
        "pass -neuron N or -classifier DIR (the results directory transfer wrote)"
    )
    assert cli.main(base + ["-neuron", "1", "-overwrite", "1"]) == 2
    assert capsys.readouterr().err.strip() == "error: -overwrite steers generated text only; add -generate"
    assert cli.main(base + ["-neuron", "1", "-generate", "-seq_length", "4", "-text", "hello"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: -seq_length 4 leaves nothing to generate after the 7-byte prompt; raise it"
    )


def test_printed_text_escapes_control_bytes(capsys):
    from sentiment_discovery.recipes.visualize import print_safely

    print_safely("good\x1b[2J film\tyes\n\ufffd")
    assert capsys.readouterr().out == "good\\x1b[2J film\tyes\n\ufffd\n"


def test_step_by_step_generation_is_generate(small_model):
    from sentiment_discovery.visualize import SteeredGeneration, inference

    whole = generate(small_model, "Great", unit=3, new_bytes=20, temperature=0.8, overwrite=-0.5, seed=11)
    data = prompt_bytes(small_model, "Great", generate=True)
    with inference(small_model):
        generation = SteeredGeneration(small_model, data, 3, temperature=0.8, overwrite=-0.5, seed=11)
        steps = [generation.step() for _ in range(20)]
    assert generation.prompt_trace.data == data
    assert data + bytes(byte for byte, _ in steps) == whole.data
    np.testing.assert_array_equal(
        np.append(generation.prompt_trace.values, np.float32([value for _, value in steps])), whole.values
    )
    with pytest.raises(UserError, match="^the prompt is empty; give some text to continue$"):
        SteeredGeneration(small_model, b"", 3)


def test_the_weights_cache_nests(small_model):
    from sentiment_discovery.visualize import weights_computed_once

    with weights_computed_once(small_model):
        cached = vars(small_model.layers[0])["effective_weights"]
        generate(small_model, "ab", unit=0, new_bytes=3)  # a generation inside a server's worker
        assert vars(small_model.layers[0])["effective_weights"] is cached
    assert "effective_weights" not in vars(small_model.layers[0])
