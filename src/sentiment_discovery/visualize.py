"""One unit's cell state, byte by byte: reading it, steering generation with it, drawing it.

:func:`unit_values` runs a text through the model and records the chosen unit after every
byte; :func:`generate` continues a prompt, optionally holding the unit at a fixed value so
the continuation is steered. Both return a :class:`Trace`, which :func:`render_png` and
:func:`render_html` draw as a Karpathy-style heatmap: one cell per character, red for
negative, green for positive, a character coloured by its last byte.

Why this module is long: reading a unit, steering generation and drawing a trace are one
idea seen from three sides; they share the :class:`Trace`, the byte-to-character mapping and
the colour scale, which the heatmap (PNG and HTML), the live page and the recipe all use.
"""

import contextlib
import dataclasses
import functools
import hashlib
import html
import re
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .features import CHUNK_LENGTH
from .foundation import storage
from .foundation.choices import MAX_HOLD
from .foundation.errors import UserError
from .foundation.figures import colormap, new_figure
from .foundation.text import preprocess_text
from .model import CellOverwrite
from .precision import products_autocast

# The 2017 heatmaps used this diverging colour map on [-1, 1] and rows of 74 characters.
COLOUR_MAP = "RdYlGn"
VALUE_RANGE = (-1.0, 1.0)
BACKGROUND = (255, 255, 255)

# Characters that have no visible glyph get one, so that every character has a readable cell.
_VISIBLE = {"\n": "\u21b5", "\t": "\u2192", "\r": "\u2190"}
# Path separators, characters Windows forbids, control characters and the replacement character.
_UNSAFE_IN_FILE_NAMES = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\ufffd]')
_RESERVED_FILE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"{port}{i}" for port in ("COM", "LPT") for i in range(1, 10))}
FILE_NAME_CHARACTERS = 100
_MAX_FILE_NAME_BYTES = 200


@dataclasses.dataclass(eq=False)
class Trace:
    """Bytes the model read, and the unit's cell-state value after reading each of them.

    ``data[:prompt_length]`` came from the caller, the rest was generated.
    """

    data: bytes
    values: np.ndarray  # float32 [len(data)]
    prompt_length: int
    # A classifier's P(positive) of the text up to each byte (its sentiment trace), when there is one.
    probabilities: np.ndarray | None = None
    # What ``probabilities`` are, as the page's hover text names them.
    probability_name: str = "P(positive)"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.shape != (len(self.data),):
            raise ValueError(f"{len(self.data)} bytes but values of shape {self.values.shape}")
        if self.probabilities is not None:
            self.probabilities = np.asarray(self.probabilities, dtype=np.float64)
            if self.probabilities.shape != (len(self.data),):
                raise ValueError(f"{len(self.data)} bytes but probabilities of shape {self.probabilities.shape}")

    @functools.cached_property
    def characters(self) -> list[tuple[str, int]]:
        """``(character, index of its last byte)`` pairs; see :func:`utf8_characters`."""
        return utf8_characters(self.data)

    @property
    def text(self) -> str:
        return "".join(character for character, _ in self.characters)

    @property
    def generated_text(self) -> str:
        return "".join(character for character, last in self.characters if last >= self.prompt_length)

    def character_values(self) -> np.ndarray:
        """The value of each character: the unit after the character's last byte."""
        return self.values[[last for _, last in self.characters]]

    def character_probabilities(self) -> np.ndarray | None:
        """P(positive) of the text up to and including each character, if a classifier was run."""
        if self.probabilities is None:
            return None
        return self.probabilities[[last for _, last in self.characters]]


def utf8_characters(data: bytes) -> list[tuple[str, int]]:
    """Split bytes into characters, each with the index of its last byte.

    A byte that does not belong to a valid UTF-8 character (a stray continuation byte, a
    character cut off by the end of generation) becomes its own U+FFFD, so any bytes at all
    can be shown.
    """
    characters = []
    start = 0
    while start < len(data):
        for length in range(1, 5):
            try:
                character = data[start : start + length].decode("utf-8")
            except UnicodeDecodeError:
                continue
            # The shortest prefix that decodes is exactly one character.
            characters.append((character, start + length - 1))
            start += length
            break
        else:
            characters.append(("\ufffd", start))
            start += 1
    return characters


def prompt_bytes(model, text: str | bytes, generate: bool = False, preprocess: bool = True) -> bytes:
    """The bytes fed to the model for ``text``; ``bytes`` are taken as already prepared.

    A text is prepared as the model saw text in training (its ``text_options``). A prompt
    to generate from gets the front padding but not the end padding: the end padding marks
    where a text stops, and generation continues the text instead.
    """
    if isinstance(text, bytes):
        data = text
    elif not preprocess:
        data = text.encode("utf-8")
    else:
        options = dataclasses.replace(model.text_options, end_pad="") if generate else model.text_options
        data = preprocess_text(text, options)
    if not data:
        raise UserError("the text is empty; give some text (or turn preprocessing on, which pads it)")
    return data


def layer_index(model, layer: int) -> int:
    """``layer`` as an index from 0 (``-1`` is the top layer), checked against the model."""
    layers = model.config.layers
    if not -layers <= layer < layers:
        raise UserError(
            f"-layer {layer} does not exist: the model has {layers} layer(s) (0..{layers - 1}, or -1 for the top)"
        )
    return layer % layers


def check_unit(model, unit: int) -> int:
    size = model.config.rnn_size
    if not 0 <= unit < size:
        raise UserError(f"-neuron {unit} does not exist: the model has {size} units (0..{size - 1})")
    return unit


@contextlib.contextmanager
def inference(model, precision: str = "fp32"):
    """Gradients and dropout off, products in ``precision``, for the duration; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), products_autocast(precision, model.device):
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def weights_computed_once(model):
    """Each layer's effective (weight-normed) weights computed once, not at every step.

    Generation calls the model one byte at a time, and recomputing weight norm over a
    4096-unit layer costs ten times the step itself. Only valid while the weights cannot
    change, i.e. under :func:`inference`.
    """
    # Layers cached by an enclosing use (a server's worker) stay as they are, and stay cached.
    cached = [
        layer for layer in model.layers
        if hasattr(layer, "effective_weights") and "effective_weights" not in vars(layer)
    ]
    for layer in cached:
        layer.effective_weights = functools.cache(layer.effective_weights)
    try:
        yield
    finally:
        for layer in cached:
            del layer.effective_weights  # the class's method shows through again


def _run(model, data: bytes, layer: int, unit: int, state=None):
    """Run ``data`` from ``state``; the unit after each byte, and the final state."""
    tokens = torch.tensor([list(data)], dtype=torch.int64, device=model.device)
    values = []
    for start in range(0, tokens.shape[1], CHUNK_LENGTH):
        encoded = model.encode(tokens[:, start : start + CHUNK_LENGTH], state, return_cell_sequences=True)
        values.append(encoded.cell_sequences[layer][0, :, unit].float().cpu())
        state = encoded.state.float()  # carried in float32 whatever the products' precision
    values = torch.cat(values).numpy() if values else np.zeros(0, dtype=np.float32)
    return values, state


def unit_values(
    model, text: str | bytes, unit: int, layer: int = -1, preprocess: bool = True, precision: str = "auto"
) -> Trace:
    """Cell-state value of ``unit`` in ``layer`` after each byte of ``text``.

    ``text`` is prepared with the model's text options (padding included, so the trace
    shows every byte the model read) unless ``preprocess`` is false; ``bytes`` are used as
    they are. ``precision``: that of the matrix products (see :mod:`sentiment_discovery.precision`).
    """
    layer, unit = layer_index(model, layer), check_unit(model, unit)
    data = prompt_bytes(model, text, preprocess=preprocess)
    with inference(model, precision):
        values, _ = _run(model, data, layer, unit)
    return Trace(data, values, len(data))


def _next_byte(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    if temperature == 0:
        return int(logits.argmax())
    # Sampled on the CPU so that a seed gives the same text on every device.
    probabilities = torch.softmax(logits.float().cpu() / temperature, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))


class SteeredGeneration:
    """Generation one byte at a time, for callers that show the text as it is written.

    Construction runs the prompt (prepared bytes, see :func:`prompt_bytes`) and reads its
    last byte, so :attr:`prompt_trace` holds the unit after every prompt byte; each
    :meth:`step` then picks one byte and reads it. Run it under :func:`inference`; the unit
    is held at ``overwrite`` (when given) from the step that reads the prompt's last byte.
    :func:`generate` is this loop run to the end.
    """

    def __init__(
        self,
        model,
        data: bytes,
        unit: int,
        *,
        layer: int = -1,
        temperature: float = 0.0,
        overwrite: float | None = None,
        seed: int | None = None,
    ):
        if temperature < 0:
            raise UserError(f"-temperature must be 0 (greedy) or more, not {temperature}")
        if not data:
            raise UserError("the prompt is empty; give some text to continue")
        if overwrite is not None:
            check_hold(overwrite)
        self.model, self.temperature = model, temperature
        self.layer, self.unit = layer_index(model, layer), check_unit(model, unit)
        self.held = CellOverwrite(self.layer, self.unit, float(overwrite)) if overwrite is not None else None
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        values, self.state = _run(model, data[:-1], self.layer, self.unit)
        self.logits, last_value = self._read(data[-1])
        self.prompt_trace = Trace(data, np.append(values, np.float32(last_value)), len(data))

    def _read(self, byte: int) -> tuple[torch.Tensor, float]:
        encoded = self.model.encode(torch.tensor([[byte]], device=self.model.device), self.state, overwrite=self.held)
        self.state = encoded.state.float()
        return self.model.decode(encoded.hidden[0, -1]), float(self.state.cell[self.layer][0, self.unit])

    def step(self) -> tuple[int, float]:
        """The next byte and the unit's value after reading it."""
        byte = _next_byte(self.logits, self.temperature, self.generator)
        self.logits, value = self._read(byte)
        return byte, value


def generate(
    model,
    prompt: str | bytes,
    unit: int,
    new_bytes: int,
    *,
    layer: int = -1,
    temperature: float = 0.0,
    overwrite: float | None = None,
    seed: int | None = None,
    preprocess: bool = True,
    progress: bool = False,
    precision: str = "auto",
) -> Trace:
    """Continue ``prompt`` by ``new_bytes`` bytes, recording ``unit`` all along.

    ``temperature`` 0 picks the likeliest byte; above 0 bytes are sampled from the softmax
    of logits / temperature, reproducibly for a given ``seed``. With ``overwrite`` the
    unit's cell state is held at that value from the step that reads the prompt's last byte
    (the step that predicts the first new byte) to the end, so every generated byte is
    steered and the trace shows the held value there. The prompt is prepared by
    :func:`prompt_bytes` with ``generate=True`` (no end padding). ``precision``: that of
    the matrix products (see :mod:`sentiment_discovery.precision`).
    """
    if new_bytes < 0:
        raise UserError(f"cannot generate {new_bytes} bytes; ask for 0 or more")
    data = prompt_bytes(model, prompt, generate=True, preprocess=preprocess)
    with inference(model, precision), weights_computed_once(model):
        generation = SteeredGeneration(
            model, data, unit, layer=layer, temperature=temperature, overwrite=overwrite, seed=seed
        )
        steps = [generation.step() for _ in tqdm(range(new_bytes), unit="byte", desc="generate", disable=not progress)]
    text = data + bytes(byte for byte, _ in steps)
    values = np.append(generation.prompt_trace.values, np.array([value for _, value in steps], dtype=np.float32))
    return Trace(text, values, len(data))


def heatmap_file_stem(text: str) -> str:
    """The heatmap's file name without extension: the first 100 characters of ``text``.

    Whitespace runs (newlines included) become one space, characters unsafe in file names
    become ``_``, leading and trailing spaces and dots go, and the name is kept under 200
    UTF-8 bytes; an empty result is ``heatmap``.
    """
    name = " ".join(text.split())[:FILE_NAME_CHARACTERS]
    name = _UNSAFE_IN_FILE_NAMES.sub("_", name).strip(" .")
    name = name.encode("utf-8")[:_MAX_FILE_NAME_BYTES].decode("utf-8", errors="ignore").strip(" .")
    if name.upper() in _RESERVED_FILE_NAMES:
        name += "_"
    return name or "heatmap"


def check_hold(value: float, name: str = "-overwrite") -> float:
    """A value to hold a cell state at: finite and within ``MAX_HOLD`` (beyond, the products overflow)."""
    if not -MAX_HOLD <= value <= MAX_HOLD:  # NaN fails too
        raise UserError(f"{name} must be in [-{MAX_HOLD:g}, {MAX_HOLD:g}] (a cell state: +1 or -1 steer), not {value:g}")
    return value


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def heatmap_file_stem_in(directory: str | Path, text: str) -> str:
    """The name :func:`heatmap_file_stem` gives, unless a heatmap of another text already has it in ``directory``.

    Two texts that share their first 100 characters (or that both clean to nothing) would
    overwrite each other: the later one is ``<name>-<first 12 hex digits of its sha256>``.
    A heatmap of the same text (its page records the text's sha256) is replaced, as before.
    """
    stem = heatmap_file_stem(text)
    directory = Path(directory)
    if not ((directory / f"{stem}.png").exists() or (directory / f"{stem}.html").exists()):
        return stem
    digest = text_sha256(text)
    try:
        page = (directory / f"{stem}.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        page = ""
    if f'name="sentiment-discovery-text-sha256" content="{digest}"' in page:
        return stem
    return f"{stem}-{digest[:12]}"


def display_values(values: np.ndarray, negate: bool = False) -> np.ndarray:
    """Values as coloured: sign flipped with ``negate``, clipped to [-1, 1]."""
    values = np.asarray(values, dtype=np.float64)
    return np.clip(-values if negate else values, *VALUE_RANGE)


def value_colours(values: np.ndarray, negate: bool = False) -> np.ndarray:
    """RGB uint8 [N, 3]: red (-1) through yellow (0) to green (+1)."""
    position = (display_values(values, negate) - VALUE_RANGE[0]) / (VALUE_RANGE[1] - VALUE_RANGE[0])
    return np.round(colormap(COLOUR_MAP)(position)[:, :3] * 255).astype(np.uint8)


def _text_colour(rgb: Sequence[int]) -> str:
    # Dark cells at both ends of the colour map need light text to stay readable.
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return "#000000" if luminance > 0.5 else "#ffffff"


def _glyph(character: str) -> str:
    if character in _VISIBLE:
        return _VISIBLE[character]
    if unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp"):
        return "\u00b7"
    return character


@dataclasses.dataclass(frozen=True)
class HeatmapGeometry:
    """Pixel layout of the PNG: ``columns`` cells a row, a new row after each newline.

    The image is exactly :meth:`image_size` pixels; cell (row, column) covers
    :meth:`cell_box`, so the colour of any character can be read back at known pixels.
    """

    columns: int = 74
    cell_width: int = 12
    cell_height: int = 20
    margin: int = 4
    font_size: float = 14.0  # pixels
    dpi: int = 100
    # Under each row of characters, a strip of this height coloured by the sentiment trace (0: none).
    strip_height: int = 0

    def layout(self, characters: Sequence[str]) -> list[tuple[int, int]]:
        """(row, column) of each character."""
        positions = []
        row = column = 0
        for character in characters:
            positions.append((row, column))
            column += 1
            if character == "\n" or column == self.columns:
                row, column = row + 1, 0
        return positions

    def rows(self, characters: Sequence[str]) -> int:
        positions = self.layout(characters)
        return positions[-1][0] + 1 if positions else 1

    @property
    def row_height(self) -> int:
        return self.cell_height + self.strip_height

    def image_size(self, rows: int) -> tuple[int, int]:
        """(width, height) in pixels of an image with ``rows`` rows."""
        return self.columns * self.cell_width + 2 * self.margin, rows * self.row_height + 2 * self.margin

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) pixel edges of a cell; right and bottom are exclusive."""
        left = self.margin + column * self.cell_width
        top = self.margin + row * self.row_height
        return left, top, left + self.cell_width, top + self.cell_height

    def strip_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """Pixel edges of the sentiment-trace strip under a cell."""
        left, _, right, bottom = self.cell_box(row, column)
        return left, bottom, right, bottom + self.strip_height


def probability_colours(probabilities: np.ndarray) -> np.ndarray:
    """RGB uint8 [N, 3] of P(positive): red (0) through yellow (0.5) to green (1), the heatmap's colours."""
    return value_colours(2.0 * np.asarray(probabilities, dtype=np.float64) - 1.0)


TRACE_STRIP_HEIGHT = 7


def render_png(
    trace: Trace, path: str | Path, negate: bool = False, geometry: HeatmapGeometry | None = None
) -> Path:
    """Draw the heatmap of ``trace`` to a PNG at ``path``: coloured cells, monospace characters.

    With a sentiment trace, a strip under each character shows P(positive) of the text so far
    (red 0, yellow 0.5, green 1).
    """
    probabilities = trace.character_probabilities()
    if geometry is None:
        geometry = HeatmapGeometry(strip_height=TRACE_STRIP_HEIGHT if probabilities is not None else 0)
    characters = [character for character, _ in trace.characters]
    colours = value_colours(trace.character_values(), negate)
    positions = geometry.layout(characters)
    width, height = geometry.image_size(geometry.rows(characters))
    # The cells are painted into an image at one array element per pixel, so their colours are exact.
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    figure = new_figure(figsize=(width / geometry.dpi, height / geometry.dpi), dpi=geometry.dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    font_points = geometry.font_size * 72 / geometry.dpi
    if probabilities is not None and geometry.strip_height:
        for (row, column), colour in zip(positions, probability_colours(probabilities)):
            left, top, right, bottom = geometry.strip_box(row, column)
            image[top:bottom, left:right] = colour
    for character, (row, column), colour in zip(characters, positions, colours):
        left, top, right, bottom = geometry.cell_box(row, column)
        image[top:bottom, left:right] = colour
        axes.text(
            (left + right) / 2,
            (top + bottom) / 2,
            _glyph(character),
            ha="center",
            va="center_baseline",
            fontsize=font_points,
            family=["DejaVu Sans Mono", "monospace"],
            color=_text_colour(colour),
        )
    axes.imshow(image, extent=(0, width, height, 0), interpolation="nearest", aspect="auto", zorder=0)
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    path = Path(path)
    with warnings.catch_warnings(), storage.atomic_file(path, "wb") as handle:
        # Characters the monospace font lacks (e.g. CJK) are drawn as boxes; one warning each is noise.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
        figure.savefig(handle, format="png", dpi=geometry.dpi)
    return path


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="sentiment-discovery-text-sha256" content="{text_sha256}">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
pre {{ font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 15px; line-height: 1.45; }}
pre span {{ padding: 0.1em 0; }}
pre span.generated {{ text-decoration: underline; }}
</style>
</head>
<body>
<p>{caption}</p>
<pre>{cells}</pre>
</body>
</html>
"""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One character of a heatmap as a page draws it."""
    character: str
    glyph: str  # what is shown: the character, or a visible stand-in for a control character
    value: float  # the unit after the character's last byte, before clipping or negating
    background: str  # "#rrggbb"
    colour: str  # the text's colour, readable on that background
    generated: bool
    # With a sentiment trace: the classifier's P(positive) of the text so far, and its colour.
    probability: float | None = None
    probability_colour: str | None = None


def character_cells(trace: Trace, negate: bool = False) -> list[Cell]:
    """The heatmap's cells, one per character; the HTML page and the live page both draw these."""
    values = trace.character_values()
    colours = value_colours(values, negate)
    probabilities = trace.character_probabilities()
    probability_colours_ = [None] * len(values) if probabilities is None else probability_colours(probabilities)
    return [
        Cell(
            character,
            _glyph(character),
            float(value),
            "#{:02x}{:02x}{:02x}".format(*colour),
            _text_colour(colour),
            last >= trace.prompt_length,
            None if probabilities is None else float(probabilities[index]),
            None if bar is None else "#{:02x}{:02x}{:02x}".format(*bar),
        )
        for index, ((character, last), value, colour, bar) in enumerate(
            zip(trace.characters, values, colours, probability_colours_)
        )
    ]


def render_html(
    trace: Trace,
    path: str | Path,
    negate: bool = False,
    caption: str = "",
    geometry: HeatmapGeometry = HeatmapGeometry(),
) -> Path:
    """Write the heatmap as one self-contained HTML page: a coloured span per character.

    Hovering a character shows the unit's value after it (and, with a sentiment trace,
    P(positive) of the text so far, also drawn as the colour of a bar under the character);
    generated characters are underlined; rows break where the PNG's do.
    """
    cells = character_cells(trace, negate)
    positions = geometry.layout([cell.character for cell in cells])
    parts = []
    for index, (cell, (_, column)) in enumerate(zip(cells, positions)):
        if index and column == 0:
            parts.append("\n")
        generated = ' class="generated"' if cell.generated else ""
        title, bar = f"{cell.value:+.4f}", ""
        if cell.probability is not None:
            title += f", {trace.probability_name} so far {cell.probability:.3f}"
            bar = f";border-bottom:6px solid {cell.probability_colour}"
        parts.append(
            f'<span{generated} style="background:{cell.background};color:{cell.colour}{bar}" '
            f'title="{title}">{html.escape(cell.glyph)}</span>'
        )
    page = _HTML_PAGE.format(
        title=html.escape(heatmap_file_stem(trace.text)), caption=html.escape(caption), cells="".join(parts),
        text_sha256=text_sha256(trace.text),
    )
    return storage.write_text(path, page)
