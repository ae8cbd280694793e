"""Will it fit? The big allocations of a run, estimated from its flags, against the machine's free memory.

``train``, ``finetune`` and ``featurize`` allocate in proportion to streams x length x units
(the states each update keeps for its backward pass, or a featurize batch's cell states), and
training holds four copies of the weights (the weights, their gradients, Adam's two moments).
A request that cannot fit (``-batch_size 1000000000``, ``-rnn_size 1000000``) is refused
before anything is allocated or written, with the estimate and the machine's memory in the
message, rather than failing minutes later on an allocation, or being killed. The estimates
are lower bounds (fp32 throughout; what a library adds on top is not counted), so a run they
let through may still be too big, but one they refuse cannot fit.
"""

import os

from .errors import UserError

# fp32: 4 bytes a value.
FLOAT_BYTES = 4
# Weights, their gradients and Adam's two moments.
TRAINING_COPIES = 4
# Values kept per unit, layer and byte for the backward pass: the four gates, the
# multiplicative state, the cell state, its tanh and the output.
SAVED_PER_UNIT = 8
# The 256-way output of every byte and its gradient.
OUTPUT_VALUES = 2 * 256
# A featurize batch: each layer's hidden and cell states over a chunk, and the pooled copies.
FEATURIZE_PER_UNIT = 6


def available_bytes() -> int | None:
    """Memory a new allocation can take now (``MemAvailable`` of /proc/meminfo); None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def total_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def human(count: float) -> str:
    """``137438953472`` as ``128 GiB``: bytes in binary units, three significant digits."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} EiB"  # not reached


def recurrent_parameters(rnn_type: str, embed_size: int, rnn_size: int, layers: int) -> int:
    """Weights of the byte model: the embedding, each layer's recurrence, the 256-way output."""
    total = 256 * embed_size + 256 * rnn_size + 256
    for layer in range(layers):
        inputs = embed_size if layer == 0 else rnn_size
        if rnn_type == "lstm":
            total += (inputs + rnn_size) * 4 * rnn_size + 4 * rnn_size
        else:  # mLSTM: the LSTM's four gates read the multiplicative state m = (W_mx x) * (W_mh h)
            total += (inputs + rnn_size) * 5 * rnn_size + 4 * rnn_size
    return total


def training_bytes(parameters: int, streams: int, length: int, rnn_size: int, layers: int) -> int:
    """Weights with their gradients and Adam's moments, and what one update keeps for its backward pass."""
    saved = streams * length * (layers * rnn_size * SAVED_PER_UNIT + OUTPUT_VALUES)
    return FLOAT_BYTES * (TRAINING_COPIES * parameters + saved)


def featurize_bytes(texts: int, streams: int, length: int, rnn_size: int, layers: int, width: int) -> int:
    """A featurize batch's states over one chunk of bytes, and the [texts, width] features."""
    return FLOAT_BYTES * (streams * length * layers * rnn_size * FEATURIZE_PER_UNIT + texts * width)


def check_fits(estimate: int, what: str, advice: str, available: int | None = None, where: str = "this machine") -> None:
    """Refuse (one :class:`UserError`) a run whose ``estimate`` of bytes is over the memory ``available``.

    ``available``: the free memory of the device that will hold it (default: this machine's
    free memory now); unknown, nothing is refused.
    """
    free = available_bytes() if available is None else available
    if free is None or estimate <= free:
        return
    total = total_bytes() if available is None else None
    shown = f"{human(free)} {where} has free" + (f" ({human(total)} in all)" if total else "")
    raise UserError(f"{what} needs at least {human(estimate)} of memory, more than the {shown}; {advice}")
