"""The byte-level language model: embedding -> stacked mLSTM/LSTM layers -> 256-way output.

Everything about the network is here: its config, the recurrent state, the two layer types
and the plain per-step mLSTM cell that the fast recurrence is checked against.

Weights of the recurrent layers are stored [in, out], as in the published release, so a
step is ``x @ W``. With weight normalisation each such weight has a gain per output unit
and is used as ``W / ||W||_col * g`` (norm over the input axis), as the release did.
"""

import dataclasses
import math
from typing import NamedTuple

import torch
from torch import nn

from .fast_mlstm import ByteInput, mlstm_layer_forward
from .features import featurize
from .foundation.errors import UserError
from .foundation.model_config import ModelConfig  # declared there, torch-free; model.ModelConfig stays public
from .foundation.text import TextOptions

VOCAB_SIZE = 256


@dataclasses.dataclass
class RNNState:
    """Recurrent state of every layer: ``hidden[i]`` and ``cell[i]`` are [batch, rnn_size].

    It is a plain value: callers carry it across batches (persisted state), reset rows of
    it, read the cell state (features) and overwrite single units (steered generation).
    """

    hidden: list[torch.Tensor]
    cell: list[torch.Tensor]

    def detach(self) -> "RNNState":
        return RNNState([h.detach() for h in self.hidden], [c.detach() for c in self.cell])

    def clone(self) -> "RNNState":
        return RNNState([h.clone() for h in self.hidden], [c.clone() for c in self.cell])

    def float(self) -> "RNNState":
        """The state in float32 (the cell state after bf16 products is carried in fp32)."""
        return RNNState([h.float() for h in self.hidden], [c.float() for c in self.cell])

    def reset_rows(self, rows: torch.Tensor) -> "RNNState":
        """A state with the rows where ``rows`` (bool [batch]) is true set to zero."""
        keep = (~rows).to(self.hidden[0].dtype).unsqueeze(1)
        return RNNState([h * keep for h in self.hidden], [c * keep for c in self.cell])

    def set_unit(self, layer: int, unit: int, value: float) -> None:
        """Overwrite one unit of one layer's cell state, in place, in every row."""
        self.cell[layer][:, unit] = value

    @property
    def batch_size(self) -> int:
        return self.hidden[0].shape[0]


def weight_normed(weight: torch.Tensor, gain: torch.Tensor | None) -> torch.Tensor:
    """``weight`` [in, out] with each output column scaled to norm ``gain`` (release epsilon)."""
    if gain is None:
        return weight
    return weight * (gain * torch.rsqrt(weight.pow(2).sum(0).clamp_min(1e-12)))


class MLSTMWeights(NamedTuple):
    """An mLSTM layer's weights with weight norm already applied."""

    wx: torch.Tensor  # [in, 4H]
    wh: torch.Tensor  # [H, 4H]
    wmx: torch.Tensor  # [in, H]
    wmh: torch.Tensor  # [H, H]
    b: torch.Tensor  # [4H]


def mlstm_cell_step(
    x: torch.Tensor,
    hidden: torch.Tensor,
    cell: torch.Tensor,
    weights: MLSTMWeights,
    overwrite: "CellOverwrite | None" = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the published multiplicative LSTM; gates split in the order i, f, o, u.

    With ``overwrite`` the unit's new cell value is replaced before the output is computed
    from it, so the held value drives both this step's output and the next step.
    """
    m = (x @ weights.wmx) * (hidden @ weights.wmh)
    z = x @ weights.wx + m @ weights.wh + weights.b
    i, f, o, u = z.chunk(4, dim=1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(u)
    if overwrite is not None:
        cell = cell.clone()
        cell[:, overwrite.unit] = overwrite.value
    hidden = torch.sigmoid(o) * torch.tanh(cell)
    return hidden, cell


class LayerOutput(NamedTuple):
    hidden: torch.Tensor  # [B, T, H]
    final_hidden: torch.Tensor  # [B, H]
    final_cell: torch.Tensor  # [B, H]
    cell_sequence: torch.Tensor | None  # [B, T, H] when asked for


class CellOverwrite(NamedTuple):
    """Hold ``unit`` of ``layer``'s cell state at ``value`` at every step (steered generation)."""

    layer: int
    unit: int
    value: float


def _init_uniform(tensor: torch.Tensor, fan: int) -> None:
    bound = 1.0 / math.sqrt(fan)
    nn.init.uniform_(tensor, -bound, bound)


class MLSTMLayer(nn.Module):
    """Multiplicative LSTM (Krause et al. 2016), exactly the cell of the published release.

    ``implementation`` picks how a sequence is run: ``"reference"`` is the plain per-step
    cell (weight norm recomputed and every product taken at every step, autograd through
    the Python loop); ``"loop"`` computes weight norm and the input projections once per
    sequence. Both give the same numbers; the fast recurrence registers a third.
    """

    def __init__(self, input_size: int, rnn_size: int, weight_norm: bool = False):
        super().__init__()
        self.input_size, self.rnn_size = input_size, rnn_size
        h4 = 4 * rnn_size
        self.wx = nn.Parameter(torch.empty(input_size, h4))
        self.wh = nn.Parameter(torch.empty(rnn_size, h4))
        self.wmx = nn.Parameter(torch.empty(input_size, rnn_size))
        self.wmh = nn.Parameter(torch.empty(rnn_size, rnn_size))
        self.b = nn.Parameter(torch.zeros(h4))
        self.weight_norm = weight_norm
        if weight_norm:
            self.wx_g = nn.Parameter(torch.ones(h4))
            self.wh_g = nn.Parameter(torch.ones(h4))
            self.wmx_g = nn.Parameter(torch.ones(rnn_size))
            self.wmh_g = nn.Parameter(torch.ones(rnn_size))
        self.implementation = "fast"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name in ("wx", "wmx"):
            _init_uniform(getattr(self, name), self.input_size)
        for name in ("wh", "wmh"):
            _init_uniform(getattr(self, name), self.rnn_size)
        with torch.no_grad():
            self.b.zero_()
            # Forget gate starts open, as is usual for LSTMs trained on long byte streams.
            self.b[self.rnn_size : 2 * self.rnn_size] = 1.0
            if self.weight_norm:
                for name in ("wx", "wh", "wmx", "wmh"):
                    getattr(self, f"{name}_g").copy_(getattr(self, name).norm(dim=0))

    def effective_weights(self) -> MLSTMWeights:
        gain = (lambda name: getattr(self, f"{name}_g")) if self.weight_norm else (lambda name: None)
        return MLSTMWeights(
            weight_normed(self.wx, gain("wx")),
            weight_normed(self.wh, gain("wh")),
            weight_normed(self.wmx, gain("wmx")),
            weight_normed(self.wmh, gain("wmh")),
            self.b,
        )

    def forward(
        self,
        inputs: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor,
        reset: torch.Tensor | None = None,
        return_cell_sequence: bool = False,
        overwrite: CellOverwrite | None = None,
    ) -> LayerOutput:
        """Run a sequence ``inputs`` [B, T, in] from state (hidden, cell) [B, H].

        ``reset`` [B, T] (bool): zero the state of a row before it reads step t. The "fast"
        implementation also takes a ``fast_mlstm.ByteInput`` (bytes and their embedding).
        """
        implementation = MLSTM_IMPLEMENTATIONS[self.implementation]
        return implementation(self, inputs, hidden, cell, reset, return_cell_sequence, overwrite)


def _reset_keep(reset: torch.Tensor | None, t: int, dtype: torch.dtype) -> torch.Tensor | None:
    if reset is None:
        return None
    return (~reset[:, t]).to(dtype).unsqueeze(1)


def _mlstm_reference(layer, inputs, hidden, cell, reset, return_cell_sequence, overwrite):
    hiddens, cells = [], []
    for t in range(inputs.shape[1]):
        keep = _reset_keep(reset, t, hidden.dtype)
        if keep is not None:
            hidden, cell = hidden * keep, cell * keep
        hidden, cell = mlstm_cell_step(inputs[:, t], hidden, cell, layer.effective_weights(), overwrite)
        hiddens.append(hidden)
        cells.append(cell)
    return _stack(inputs, hidden, cell, hiddens, cells, return_cell_sequence)


def _stack(inputs, hidden, cell, hiddens, cells, return_cell_sequence):
    if hiddens:
        hidden_sequence = torch.stack(hiddens, dim=1)
    else:
        hidden_sequence = inputs.new_zeros(inputs.shape[0], 0, hidden.shape[1])
    cell_sequence = None
    if return_cell_sequence:
        cell_sequence = torch.stack(cells, dim=1) if cells else hidden_sequence.clone()
    return LayerOutput(hidden_sequence, hidden, cell, cell_sequence)


def _mlstm_loop(layer, inputs, hidden, cell, reset, return_cell_sequence, overwrite):
    weights = layer.effective_weights()
    batch, steps, _ = inputs.shape
    # Input-side products for the whole sequence at once: one large matmul each.
    x_gates = torch.addmm(weights.b, inputs.reshape(batch * steps, -1), weights.wx).view(batch, steps, -1)
    x_mult = (inputs.reshape(batch * steps, -1) @ weights.wmx).view(batch, steps, -1)
    hiddens, cells = [], []
    for t in range(steps):
        keep = _reset_keep(reset, t, hidden.dtype)
        if keep is not None:
            hidden, cell = hidden * keep, cell * keep
        m = x_mult[:, t] * (hidden @ weights.wmh)
        z = x_gates[:, t] + m @ weights.wh
        i, f, o, u = z.chunk(4, dim=1)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(u)
        if overwrite is not None:
            cell = cell.clone()
            cell[:, overwrite.unit] = overwrite.value
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        hiddens.append(hidden)
        cells.append(cell)
    return _stack(inputs, hidden, cell, hiddens, cells, return_cell_sequence)


MLSTM_IMPLEMENTATIONS = {"reference": _mlstm_reference, "loop": _mlstm_loop, "fast": mlstm_layer_forward}


class LSTMLayer(nn.Module):
    """A standard LSTM layer (PyTorch's gate order i, f, g, o) with the same interface.

    ``torch.nn.LSTM`` runs plain sequences; the Python loop is used where nn.LSTM cannot
    express what is asked (per-step resets, held units, per-step cell states, weight norm).
    """

    def __init__(self, input_size: int, rnn_size: int, weight_norm: bool = False):
        super().__init__()
        self.input_size, self.rnn_size = input_size, rnn_size
        self.lstm = nn.LSTM(input_size, rnn_size, batch_first=True)
        self.weight_norm = weight_norm
        if weight_norm:
            self.weight_ih_g = nn.Parameter(self.lstm.weight_ih_l0.detach().norm(dim=1))
            self.weight_hh_g = nn.Parameter(self.lstm.weight_hh_l0.detach().norm(dim=1))

    def effective_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(w_ih [4H, in], w_hh [4H, H], bias [4H]) with weight norm applied per output row."""
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        if self.weight_norm:
            w_ih = weight_normed(w_ih.t(), self.weight_ih_g).t()
            w_hh = weight_normed(w_hh.t(), self.weight_hh_g).t()
        return w_ih, w_hh, self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0

    def forward(self, inputs, hidden, cell, reset=None, return_cell_sequence=False, overwrite=None) -> LayerOutput:
        if reset is None and overwrite is None and not return_cell_sequence and not self.weight_norm:
            output, (h, c) = self.lstm(inputs, (hidden.unsqueeze(0).contiguous(), cell.unsqueeze(0).contiguous()))
            return LayerOutput(output, h[0], c[0], None)
        w_ih, w_hh, bias = self.effective_weights()
        batch, steps, _ = inputs.shape
        x_gates = torch.addmm(bias, inputs.reshape(batch * steps, -1), w_ih.t()).view(batch, steps, -1)
        hiddens, cells = [], []
        for t in range(steps):
            keep = _reset_keep(reset, t, hidden.dtype)
            if keep is not None:
                hidden, cell = hidden * keep, cell * keep
            i, f, g, o = (x_gates[:, t] + hidden @ w_hh.t()).chunk(4, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            if overwrite is not None:
                cell = cell.clone()
                cell[:, overwrite.unit] = overwrite.value
            hidden = torch.sigmoid(o) * torch.tanh(cell)
            hiddens.append(hidden)
            cells.append(cell)
        return _stack(inputs, hidden, cell, hiddens, cells, return_cell_sequence)


class EncoderOutput(NamedTuple):
    hidden: torch.Tensor  # [B, T, H]: what the output layer reads
    state: RNNState
    cell_sequences: list[torch.Tensor] | None  # per layer [B, T, H] when asked for


class ByteLM(nn.Module):
    """Byte embedding -> recurrent layers -> linear output over the 256 byte values.

    Stacking follows the 2017 PyTorch release: layer 0's output feeds layer 1, and from
    layer 1 on each layer's output is added to its input (``x = x + h_i``); dropout is
    applied to each layer's output; the output layer reads the final ``x``.
    """

    def __init__(self, config: ModelConfig, text_options: TextOptions = TextOptions()):
        super().__init__()
        self.config = config
        self.text_options = text_options
        self.metadata: dict = {}  # saved with the model: e.g. its sentiment unit
        self.embedding = nn.Embedding(VOCAB_SIZE, config.embed_size)
        layer_class = MLSTMLayer if config.rnn_type == "mlstm" else LSTMLayer
        self.layers = nn.ModuleList(
            layer_class(config.embed_size if i == 0 else config.rnn_size, config.rnn_size, config.weight_norm)
            for i in range(config.layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.rnn_size, VOCAB_SIZE)
        if config.normalize_output:
            self.output_g = nn.Parameter(self.output.weight.detach().norm(dim=1))

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def set_implementation(self, name: str) -> None:
        """Choose how mLSTM layers run a sequence (see ``MLSTM_IMPLEMENTATIONS``)."""
        if name not in MLSTM_IMPLEMENTATIONS:
            raise UserError(f"unknown mLSTM implementation {name!r}; known: {', '.join(MLSTM_IMPLEMENTATIONS)}")
        for layer in self.layers:
            if isinstance(layer, MLSTMLayer):
                layer.implementation = name

    def init_state(self, batch_size: int, device: torch.device | None = None) -> RNNState:
        device = self.device if device is None else device
        shape = (batch_size, self.config.rnn_size)
        zeros = lambda: torch.zeros(shape, device=device)  # noqa: E731
        return RNNState([zeros() for _ in self.layers], [zeros() for _ in self.layers])

    def encode(
        self,
        tokens: torch.Tensor,
        state: RNNState | None = None,
        reset: torch.Tensor | None = None,
        return_cell_sequences: bool = False,
        overwrite: CellOverwrite | None = None,
    ) -> EncoderOutput:
        """Run bytes ``tokens`` [B, T] (int64) through the recurrent layers."""
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        x = self.embedding(tokens)
        hiddens, cells, cell_sequences = [], [], []
        for index, layer in enumerate(self.layers):
            layer_overwrite = overwrite if overwrite is not None and overwrite.layer == index else None
            layer_input = x
            if index == 0 and getattr(layer, "implementation", None) == "fast":
                # The fast recurrence takes layer 0's input products from per-byte tables.
                layer_input = ByteInput(tokens, self.embedding.weight)
            layer_state = (state.hidden[index], state.cell[index])
            out = layer(layer_input, *layer_state, reset, return_cell_sequences, layer_overwrite)
            h = self.dropout(out.hidden)
            x = h if index == 0 else x + h
            hiddens.append(out.final_hidden)
            cells.append(out.final_cell)
            cell_sequences.append(out.cell_sequence)
        return EncoderOutput(x, RNNState(hiddens, cells), cell_sequences if return_cell_sequences else None)

    def output_weight(self) -> torch.Tensor:
        if self.config.normalize_output:
            return weight_normed(self.output.weight.t(), self.output_g).t()
        return self.output.weight

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the next byte, [..., 256], from the encoder's output."""
        return nn.functional.linear(hidden, self.output_weight(), self.output.bias)

    def forward(
        self, tokens: torch.Tensor, state: RNNState | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RNNState]:
        """Next-byte logits [B, T, 256] and the state after the last step."""
        encoded = self.encode(tokens, state, reset)
        return self.decode(encoded.hidden), encoded.state

    def featurize(self, texts, batch_size: int = 64, **kwargs):
        """Final cell state of the top layer for each text; see :func:`features.featurize`."""
        return featurize(self, texts, batch_size=batch_size, **kwargs)

    def flops_per_char(self, training: bool = True) -> float:
        """Matrix-multiply FLOPs per byte: input projections, recurrent products, output layer."""
        cfg = self.config
        gates = 5 if cfg.rnn_type == "mlstm" else 4
        flops = 2 * (cfg.embed_size * gates * cfg.rnn_size + gates * cfg.rnn_size**2 + cfg.rnn_size * VOCAB_SIZE)
        flops += 2 * (cfg.layers - 1) * (cfg.rnn_size * gates * cfg.rnn_size + gates * cfg.rnn_size**2)
        return 3 * flops if training else flops
