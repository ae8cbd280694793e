"""Imported models read text exactly as their authors' code did.

Each reference below is a transcription, written for this test, of the authors' own
function: OpenAI's ``utils.preprocess`` (generating-reviews-discovering-sentiment) and the
2017 PyTorch reproduction's ``process_str`` plus the step of its ``transform`` that stops
one byte short (``timesteps = length - 1`` in ``neuron_transfer/fit.py``, December 2017).
"""

import html
import re

import pytest
import torch
from unidecode import unidecode

from sentiment_discovery import TextOptions, UserError, cli, load_model
from sentiment_discovery.importers import load_openai_weights, load_pytorch_checkpoint
from sentiment_discovery.foundation.text import NVIDIA_2017_TEXT_OPTIONS, OPENAI_TEXT_OPTIONS, preprocess_text

from test_importers import first_release_state, openai_params, write_release


def openai_preprocess(text, front_pad="\n ", end_pad=" "):
    """OpenAI's utils.preprocess: unescape, newlines to spaces, strip, pad, encode (strict UTF-8)."""
    text = html.unescape(text)
    text = text.replace("\n", " ").strip()
    return (front_pad + text + end_pad).encode()


def nvidia_2017_bytes(text, front_pad="\n ", end_pad=" "):
    """The 2017 reproduction's process_str, then all its bytes but the last (the state its transform takes)."""
    text = re.sub(re.compile("<.*?>"), " ", text)
    text = unidecode(text)
    text = html.unescape(text)
    text = " ".join(text.split())
    return (front_pad + text + end_pad).encode("utf-8")[:-1]


EDGE_TEXTS = {
    "cr": "first line\rsecond line",
    "crlf": "a review\r\nwith Windows line ends\r\n",
    "tabs": "\ttabbed\tcolumns\t and  double  spaces ",
    "entities": "Fish &amp; chips &lt;3 &eacute;t&eacute; &#8217;s &#13;done&nbsp;",
    "markup": "<b>bold</b> and <br /> breaks <<b>> and <a\nhref='x'>link</a>",
    "empty": "",
    "blank": " \n\r\t ",
    "non-ascii": "café — naïve ☃ 日本語 \u2028 next \x85 end",
    "control": "bell\x07 escape\x1b[31m red",
    "very long": "This film is long. " * 400 + "The end.",
}


@pytest.mark.parametrize("case", EDGE_TEXTS)
def test_openai_text_is_utils_preprocess_byte_for_byte(case):
    text = EDGE_TEXTS[case]
    assert preprocess_text(text, OPENAI_TEXT_OPTIONS) == openai_preprocess(text)


def test_openai_keeps_carriage_returns_where_the_project_default_does_not():
    text = EDGE_TEXTS["crlf"]
    assert preprocess_text(text, OPENAI_TEXT_OPTIONS) == b"\n a review\r with Windows line ends "
    assert preprocess_text(text, TextOptions()) == b"\n a review  with Windows line ends "


def test_a_lone_surrogate_becomes_a_question_mark_where_openai_raises():
    text = "broken \ud800 half"
    with pytest.raises(UnicodeEncodeError):
        openai_preprocess(text)
    assert preprocess_text(text, OPENAI_TEXT_OPTIONS) == b"\n broken ? half "


@pytest.mark.parametrize("case", EDGE_TEXTS)
def test_nvidia_2017_text_is_process_str_without_the_pad_byte(case):
    text = EDGE_TEXTS[case]
    assert preprocess_text(text, NVIDIA_2017_TEXT_OPTIONS) == nvidia_2017_bytes(text)


def test_nvidia_2017_quirks():
    options = NVIDIA_2017_TEXT_OPTIONS
    assert preprocess_text("a <<b>> c", options) == b"\n a > c"  # "<.*?>" takes "<<b>", leaving ">"
    assert preprocess_text("a <b\nc> d", options) == b"\n a <b c> d"  # a tag over a line end stays
    # unidecode runs before the entities are unescaped, so "&eacute;" survives as "é" (not "e").
    assert preprocess_text("&eacute;t&eacute; café", options) == "\n été cafe".encode()
    # The project's own cleaning drops both tags, and unescapes before transliterating.
    paper = TextOptions(strip_tags=True, to_ascii=True, collapse_whitespace=True)
    assert preprocess_text("a <<b>> c &eacute;", paper) == b"\n a < > c e "


def test_an_unknown_tag_pattern_is_an_error():
    with pytest.raises(UserError, match="tag_pattern is 'greedy'; choose one of bounded, 2017"):
        TextOptions.from_dict({"tag_pattern": "greedy"})


def test_the_importers_record_their_authors_text_options(tmp_path):
    folder = write_release(tmp_path / "release", openai_params(seed=1))
    assert load_openai_weights(folder).text_options == OPENAI_TEXT_OPTIONS
    path = tmp_path / "e0.pt"
    torch.save(first_release_state("mlstm", 1), path)
    assert load_pytorch_checkpoint(path).text_options == NVIDIA_2017_TEXT_OPTIONS
    # --text chooses another preparation, recorded in config.json.
    assert cli.main(["import-pytorch", str(path), str(tmp_path / "paper"), "--text", "paper"]) == 0
    assert load_model(tmp_path / "paper").text_options == TextOptions(strip_tags=True, collapse_whitespace=True)
    assert cli.main(["import-openai", str(folder), str(tmp_path / "openai")]) == 0
    assert load_model(tmp_path / "openai").text_options == OPENAI_TEXT_OPTIONS


def test_records_made_before_the_new_switches_still_match():
    """Classifiers, feature caches and corpora record text options; at their old meaning the
    switches added for the imported models are left out, so those records stay valid."""
    from sentiment_discovery.foundation.text import recorded_text_options

    before = {"strip_tags": False, "unescape_html": True, "to_ascii": False, "newlines_to_spaces": True,
              "collapse_whitespace": False, "front_pad": "\n ", "end_pad": " ", "max_length": None}
    assert recorded_text_options(TextOptions()) == before
    assert recorded_text_options(OPENAI_TEXT_OPTIONS) == {**before, "carriage_returns_to_spaces": False}
    assert recorded_text_options(NVIDIA_2017_TEXT_OPTIONS)["tag_pattern"] == "2017"
