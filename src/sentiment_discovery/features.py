"""The one featurize loop: texts -> the (final or mean) cell state of a layer, used by every job."""

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import tqdm.auto  # read at each call: tests and applications may swap the bar class

from .data.batching import length_sorted_batches
from .foundation.choices import POOLINGS
from .foundation.errors import UserError
from .foundation.text import preprocess_text
from .precision import products_autocast, resolve_precision
from .prepared_weights import prepared_weights

# Long reviews are run in time chunks so memory does not grow with text length.
CHUNK_LENGTH = 256


def pooled_width(rnn_size: int, pooling: str) -> int:
    """Length of a text's feature vector: ``concat`` joins the final, max and mean states."""
    return 3 * rnn_size if pooling == "concat" else rnn_size


def check_pooling(pooling: str) -> None:
    """One of :data:`~sentiment_discovery.foundation.choices.POOLINGS`, or an error naming them."""
    if pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")


def pool(pooling: str, final: torch.Tensor, maximum: Callable[[], torch.Tensor], mean: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A text's feature from its cell states' final value, maximum and mean [..., H]: one of them,
    or ``concat``, the three joined as [final, max, mean] (:func:`pooled_width` wide).

    ``maximum`` and ``mean`` are called only when the pooling reads them: a fine-tuning step or
    a trace with ``final`` pooling computes neither.
    """
    check_pooling(pooling)
    if pooling == "final":
        return final
    if pooling == "max":
        return maximum()
    if pooling == "mean":
        return mean()
    return torch.cat([final, maximum(), mean()], dim=-1)


def pool_sequence(cells: torch.Tensor, is_text: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool whole sequences of states [B, T, H] over the positions where ``is_text`` [B, T] holds.

    Texts are left-padded, so the last position is every text's last byte. Differentiable:
    fine-tuning trains through it.
    """
    mask = is_text[:, :, None]
    return pool(
        pooling,
        cells[:, -1],
        lambda: cells.masked_fill(~mask, float("-inf")).amax(dim=1),
        lambda: (cells * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1),
    )


def prefix_pooled(cells: torch.Tensor, pooling: str) -> torch.Tensor:
    """Row t: the pooled feature of the text's first t + 1 bytes, from one text's states [T, H]."""
    counts = torch.arange(1, cells.shape[0] + 1, device=cells.device, dtype=cells.dtype)[:, None]
    return pool(pooling, cells, lambda: cells.cummax(dim=0).values, lambda: cells.cumsum(dim=0) / counts)


def encode_texts(model, texts: Sequence[str | bytes], preprocess: bool = True) -> list[bytes]:
    """Texts as the byte strings the model reads (bytes are taken as already prepared)."""
    encoded = []
    for index, text in enumerate(texts):
        if isinstance(text, bytes):
            data = text
        elif isinstance(text, str):
            data = preprocess_text(text, model.text_options) if preprocess else text.encode("utf-8")
        else:
            raise UserError(f"text {index} is a {type(text).__name__}, not a str or bytes")
        if not data:
            raise UserError(f"text {index} is empty; remove it or turn preprocessing on (it pads every text)")
        encoded.append(data)
    return encoded


def left_padded_batch(byte_strings: Sequence[bytes], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bytes [B, T] left-padded with zeros, and the reset mask marking each text's first byte.

    Resetting the state at the first real byte makes the padding before it irrelevant, so a
    text gives the same final state in any batch as alone.
    """
    width = max(len(b) for b in byte_strings)
    tokens = np.zeros((len(byte_strings), width), dtype=np.int64)
    reset = np.zeros((len(byte_strings), width), dtype=bool)
    for row, data in enumerate(byte_strings):
        tokens[row, width - len(data) :] = np.frombuffer(data, dtype=np.uint8)
        reset[row, width - len(data)] = True
    return torch.from_numpy(tokens).to(device), torch.from_numpy(reset).to(device)


def iter_pooled_cells(
    model,
    byte_strings: Sequence[bytes],
    batch_size: int,
    *,
    layer: int = -1,
    poolings: Sequence[str] = ("final",),
    progress: bool = False,
    precision: str = "auto",
    batches: Sequence[np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield (indices, {pooling: pooled cell state of ``layer`` [B, width] float32}) per length-sorted batch.

    The mean and maximum are taken over each text's own bytes only (the left padding is
    excluded), and are accumulated chunk by chunk, so memory stays flat however long a text
    is. Several poolings come from one pass over the texts. ``batches`` (index arrays from
    :func:`length_sorted_batches` of all the texts) runs only those batches: a share of the work
    that gives the same numbers as the whole run (``sharding.py``).
    """
    for pooling in poolings:
        check_pooling(pooling)
    over_sequence = any(pooling != "final" for pooling in poolings)
    precision = resolve_precision(precision, model.device)
    autocast = products_autocast(precision, model.device)
    if batches is None:
        batches = length_sorted_batches([len(b) for b in byte_strings], batch_size)
    # Counted in bytes, chunk by chunk: one long text moves the bar (and its rate and ETA) too.
    total = sum(len(byte_strings[i]) for indices in batches for i in indices)
    bar = tqdm.auto.tqdm(total=total, unit="B", unit_scale=True, disable=not progress, desc="featurize")
    with torch.no_grad(), autocast, prepared_weights():
        for indices in batches:
            batch = [byte_strings[i] for i in indices]
            tokens, reset = left_padded_batch(batch, model.device)
            lengths = torch.tensor([len(b) for b in batch], device=model.device)
            is_text = torch.arange(tokens.shape[1], device=model.device) >= (tokens.shape[1] - lengths)[:, None]
            state = model.init_state(len(indices))
            cell_sum = torch.zeros(len(indices), model.config.rnn_size, device=model.device)
            cell_max = torch.full_like(cell_sum, float("-inf"))
            width = tokens.shape[1]
            first_byte = width - np.array([len(b) for b in batch])
            for start in range(0, width, CHUNK_LENGTH):
                stop = start + CHUNK_LENGTH
                encoded = model.encode(tokens[:, start:stop], state, reset[:, start:stop], over_sequence)
                state = encoded.state
                if precision != "fp32":  # carry the state between chunks in float32
                    state = state.float()
                if over_sequence:
                    cells = encoded.cell_sequences[layer].float()
                    chunk_mask = is_text[:, start:stop, None]
                    cell_sum += (cells * chunk_mask).sum(dim=1)
                    cell_max = torch.maximum(cell_max, cells.masked_fill(~chunk_mask, float("-inf")).amax(dim=1))
                bar.update(int(np.clip(min(stop, width) - np.maximum(first_byte, start), 0, None).sum()))
            final, mean = state.cell[layer].float(), cell_sum / lengths[:, None]
            yield indices, {pooling: pool(pooling, final, lambda: cell_max, lambda: mean) for pooling in poolings}
    bar.close()


def featurize(
    model,
    texts: Sequence[str | bytes],
    batch_size: int = 64,
    preprocess: bool = True,
    layer: int = -1,
    progress: bool = False,
    precision: str = "auto",
    pooling: str = "final",
) -> np.ndarray:
    """The cell state of ``layer`` for each text: float32 [N, rnn_size] (``concat``: [N, 3 x rnn_size]).

    ``pooling`` "final" is the state after the last byte (the paper's feature); "mean" is
    its average over the text's bytes, which transfers much better from small or briefly
    trained models (docs/results.md), since the final state mostly remembers the last words;
    "max" is the per-unit maximum, "concat" joins final, max and mean (3 x rnn_size wide).
    Texts are prepared with the model's text options (as the published release did)
    unless ``preprocess`` is false; ``bytes`` items are used as they are. ``precision``
    (:data:`sentiment_discovery.precision.PRECISIONS`) is that of the matrix products:
    "auto" runs them in bfloat16 where the hardware does so natively (about twice as fast
    on CPUs with bf16 instructions), else in float32; the cell state and the features
    stay float32.
    """
    return featurize_poolings(
        model, texts, (pooling,), batch_size=batch_size, preprocess=preprocess, layer=layer, progress=progress,
        precision=precision,
    )[pooling]


def featurize_poolings(
    model,
    texts: Sequence[str | bytes],
    poolings: Sequence[str],
    *,
    batch_size: int = 64,
    preprocess: bool = True,
    layer: int = -1,
    progress: bool = False,
    precision: str = "auto",
) -> dict[str, np.ndarray]:
    """:func:`featurize` for several poolings at the cost of one: ``{pooling: float32 [N, width]}``."""
    byte_strings = encode_texts(model, texts, preprocess)
    if not -model.config.layers <= layer < model.config.layers:
        raise UserError(f"layer {layer} does not exist: the model has {model.config.layers} layer(s)")
    features = {
        pooling: np.zeros((len(byte_strings), pooled_width(model.config.rnn_size, pooling)), dtype=np.float32)
        for pooling in poolings
    }
    was_training = model.training
    model.eval()
    try:
        for indices, pooled in iter_pooled_cells(
            model, byte_strings, batch_size, layer=layer, poolings=poolings, progress=progress, precision=precision
        ):
            for pooling, values in pooled.items():
                features[pooling][indices] = values.cpu().numpy()
    finally:
        model.train(was_training)
    return features
