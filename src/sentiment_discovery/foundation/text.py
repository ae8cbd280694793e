"""Text to bytes, as section 4 of the paper and the published release prepared reviews."""

import dataclasses
import html
import re
import sys
import unicodedata

from unidecode import unidecode

from .errors import UserError
from .storage import dataclass_from_dict

_TAG = re.compile(r"<[^<>]{0,200}>")
# The 2017 PyTorch reproduction's tag pattern: the shortest run from "<" to ">" on one line,
# so "<<b>>" leaves ">" and a tag that spans a line end stays.
_TAG_2017 = re.compile(r"<.*?>")
TAG_PATTERNS = {"bounded": _TAG, "2017": _TAG_2017}
# Collapses every whitespace run to one space, like r"\s+", but skips the single spaces
# between words (most of a text): the collapse runs about twice as fast.
_WHITESPACE = re.compile(r"[^\S ]\s*| \s+")


@dataclasses.dataclass(frozen=True)
class TextOptions:
    """Switches of :func:`preprocess_text`; stored in each model's ``config.json``.

    The defaults are what the published release did before featurizing: unescape HTML
    entities, turn newlines into spaces, strip, pad to ``"\\n " + text + " "`` (but a
    carriage return becomes a space too, where the release kept it: see
    :data:`OPENAI_TEXT_OPTIONS`). docs/importing.md says what each switch means.
    """

    strip_tags: bool = False
    # "bounded": a tag is "<", at most 200 characters other than "<" and ">", then ">";
    # "2017": the 2017 PyTorch reproduction's "<.*?>" (see _TAG_2017).
    tag_pattern: str = "bounded"
    unescape_html: bool = True
    to_ascii: bool = False
    # Transliterate to ASCII before unescaping HTML (the 2017 PyTorch reproduction's order),
    # so that non-ASCII characters written as entities survive.
    to_ascii_first: bool = False
    newlines_to_spaces: bool = True
    # With newlines_to_spaces: "\r" becomes a space too (False: kept, as OpenAI's release did).
    carriage_returns_to_spaces: bool = True
    collapse_whitespace: bool = False
    front_pad: str = "\n "
    end_pad: str = " "
    max_length: int | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "TextOptions":
        options = dataclass_from_dict(cls, values, "text preprocessing option")
        if options.max_length is not None and options.max_length < 1:  # a slice: -5 would drop the last 5 bytes
            raise UserError(f"text preprocessing option max_length is {options.max_length}; give a number of bytes "
                            "of at least 1, or null for no limit")
        if options.tag_pattern not in TAG_PATTERNS:
            raise UserError(
                f"text preprocessing option tag_pattern is {options.tag_pattern!r}; choose one of {', '.join(TAG_PATTERNS)}"
            )
        return options


# Switches added after models, corpora and classifiers first recorded their text options: at
# these values they do what was done before they existed.
LATER_SWITCHES = {"tag_pattern": "bounded", "to_ascii_first": False, "carriage_returns_to_spaces": True}


def recorded_text_options(options: TextOptions) -> dict:
    """``options`` as the dict that feature-cache keys, classifiers and corpus manifests record:
    the later switches left out where they have their old meaning, so that what was recorded
    before they existed still matches."""
    values = dataclasses.asdict(options)
    return {key: value for key, value in values.items() if key not in LATER_SWITCHES or value != LATER_SWITCHES[key]}


# The paper's review cleaning (markup removed, whitespace normalised) on top of the release's.
PAPER_TEXT_OPTIONS = TextOptions(strip_tags=True, collapse_whitespace=True)

# OpenAI's utils.preprocess, byte for byte: unescape HTML, "\n" -> " " ("\r" kept), strip, pad.
OPENAI_TEXT_OPTIONS = TextOptions(carriage_returns_to_spaces=False)

# The 2017 PyTorch reproduction's process_str and transform: tags removed with "<.*?>", then
# unidecode, then HTML unescaped, whitespace collapsed; the feature is the state after the
# text's last byte (their transform stops one step short of the trailing pad), hence no end pad.
NVIDIA_2017_TEXT_OPTIONS = TextOptions(
    strip_tags=True, tag_pattern="2017", to_ascii=True, to_ascii_first=True, collapse_whitespace=True, end_pad=""
)


def preprocess_text(text: str, options: TextOptions = TextOptions()) -> bytes:
    """Clean one text and return its UTF-8 bytes, padded as the model saw text in training.

    Tags are removed before entities are unescaped, so an escaped ``&lt;b&gt;`` survives as
    text. ``max_length`` caps the cleaned text in bytes (before padding) without splitting
    a UTF-8 character.
    """
    if options.strip_tags:
        text = TAG_PATTERNS[options.tag_pattern].sub(" ", text)
    if options.to_ascii and options.to_ascii_first:
        text = unidecode(text)
    if options.unescape_html:
        text = html.unescape(text)
    if options.to_ascii and not options.to_ascii_first:
        text = unidecode(text)
    if options.newlines_to_spaces:
        if options.carriage_returns_to_spaces:
            text = text.replace("\r", " ")
        text = text.replace("\n", " ")
    if options.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text)
    text = text.strip()
    body = text.encode("utf-8", errors="replace")
    if options.max_length is not None and len(body) > options.max_length:
        body = body[: options.max_length].decode("utf-8", errors="ignore").encode("utf-8")
    return options.front_pad.encode("utf-8") + body + options.end_pad.encode("utf-8")


def escape_control(text: str, keep: str = "") -> str:
    """``text`` with its control characters (Unicode category Cc: escape sequences, newlines,
    tabs, ...) written as Python escapes (``\\x1b``, ``\\n``), so that printing it cannot
    drive the terminal or break a line-per-record output; characters in ``keep`` stay."""
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" and c not in keep else c
        for c in text
    )


def print_result(line: str) -> None:
    """Print a result line on stdout; a character the terminal's encoding cannot show becomes
    "?" rather than a crash (classify's rows, visualize's generated text)."""
    encoding = sys.stdout.encoding or "utf-8"
    print(line.encode(encoding, errors="replace").decode(encoding))
