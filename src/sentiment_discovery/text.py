"""Text to bytes, as section 4 of the paper and the published release prepared reviews."""

import dataclasses
import html
import re
import unicodedata

from .errors import UserError
from .storage import dataclass_from_dict

_TAG = re.compile(r"<[^<>]{0,200}>")
# Collapses every whitespace run to one space, like r"\s+", but skips the single spaces
# between words (most of a text): the collapse runs about twice as fast.
_WHITESPACE = re.compile(r"[^\S ]\s*| \s+")


@dataclasses.dataclass(frozen=True)
class TextOptions:
    """Switches of :func:`preprocess_text`; stored in each model's ``config.json``.

    The defaults are what the published release did before featurizing: unescape HTML
    entities, turn newlines into spaces, strip, pad to ``"\\n " + text + " "``.
    """

    strip_tags: bool = False
    unescape_html: bool = True
    to_ascii: bool = False
    newlines_to_spaces: bool = True
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
        return options


# The paper's review cleaning (markup removed, whitespace normalised) on top of the release's.
PAPER_TEXT_OPTIONS = TextOptions(strip_tags=True, collapse_whitespace=True)


def preprocess_text(text: str, options: TextOptions = TextOptions()) -> bytes:
    """Clean one text and return its UTF-8 bytes, padded as the model saw text in training.

    Tags are removed before entities are unescaped, so an escaped ``&lt;b&gt;`` survives as
    text. ``max_length`` caps the cleaned text in bytes (before padding) without splitting
    a UTF-8 character.
    """
    if options.strip_tags:
        text = _TAG.sub(" ", text)
    if options.unescape_html:
        text = html.unescape(text)
    if options.to_ascii:
        from unidecode import unidecode

        text = unidecode(text)
    if options.newlines_to_spaces:
        text = text.replace("\r", " ").replace("\n", " ")
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
